"""The seed's functional API: shapes, dtypes, the return convention, tol, the metrics' updates."""

import numpy as np
import pytest

import flashkmeans as fk
from conftest import blobs, gauss, normalize, seed_reference

FUNCS = {"euclidean": fk.batch_kmeans_Euclid, "cosine": fk.batch_kmeans_Cosine, "dot": fk.batch_kmeans_Dot}


@pytest.mark.parametrize("metric", FUNCS)
def test_shapes_and_types(metric):
    x = gauss((3, 500, 7))
    ids, centers, n_iters = FUNCS[metric](x, n_clusters=6, max_iters=5, seed=1)
    assert ids.shape == (3, 500) and ids.dtype == np.int32
    assert centers.shape == (3, 6, 7) and centers.dtype == np.float32
    assert type(n_iters) is int and n_iters == 5
    assert ids.min() >= 0 and ids.max() < 6


@pytest.mark.parametrize("metric", FUNCS)
def test_matches_the_seed_loop_when_max_iters_is_reached(metric):
    x = gauss((2, 400, 5), seed=3)
    c0 = np.stack([x[b, :4] for b in range(2)])
    ids, centers, n = FUNCS[metric](x, 4, max_iters=6, tol=0.0, init_centroids=c0)
    assert n == 6
    for b in range(2):
        ref_ids, ref_c, ref_n = seed_reference(x[b], c0[b], 6, 0.0, metric)
        assert ref_n == 6
        np.testing.assert_array_equal(ids[b], ref_ids)
        np.testing.assert_allclose(centers[b], ref_c, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("metric", FUNCS)
def test_one_iteration_returns_the_update_and_labels_one_step_behind(metric):
    x = gauss((1, 300, 4), seed=5)
    c0 = x[:, 10:13].copy()
    ids, centers, n = FUNCS[metric](x, 3, max_iters=1, init_centroids=c0)
    xs = normalize(x[0]) if metric == "cosine" else x[0]
    cs = normalize(c0[0]) if metric == "cosine" else c0[0]
    if metric == "euclidean":
        expect = np.argmin(((xs[:, None] - cs[None]) ** 2).sum(-1), axis=1)
    else:
        expect = np.argmax(xs @ cs.T, axis=1)
    np.testing.assert_array_equal(ids[0], expect)  # assigned against the initial centroids
    means = np.stack([xs[expect == j].mean(0) for j in range(3)])
    if metric != "euclidean":
        means = normalize(means)
    np.testing.assert_allclose(centers[0], means, rtol=1e-5, atol=1e-6)  # ... and updated once
    assert n == 1


@pytest.mark.parametrize("metric", FUNCS)
def test_early_stop_returns_the_centroids_before_the_last_update(metric):
    x = gauss((1, 300, 4), seed=6)
    c0 = x[:, :3].copy()
    ids, centers, n = FUNCS[metric](x, 3, max_iters=50, tol=1e9, init_centroids=c0)
    assert n == 1  # the first shift is below tol: stop, counting that iteration
    expect = normalize(c0[0]) if metric == "cosine" else c0[0]
    np.testing.assert_allclose(centers[0], expect, rtol=1e-6, atol=1e-6)


def test_tol_is_the_absolute_largest_centroid_move():
    x = gauss((1, 400, 5), seed=3)
    c0 = x[:, :4].copy()
    _, _, n_all = fk.batch_kmeans_Euclid(x, 4, max_iters=40, tol=0.0, init_centroids=c0)
    assert n_all == 40  # tol = 0 runs every iteration
    _, _, n_neg = fk.batch_kmeans_Euclid(x, 4, max_iters=40, tol=-1.0, init_centroids=c0)
    assert n_neg == 40
    # The shifts (max_k ||c_new - c_old||) of a float64 run: a tol halfway (geometrically) between
    # two consecutive ones stops right after the smaller.
    shifts = []
    c = c0[0].astype(np.float64)
    for _ in range(6):
        _, new, _ = seed_reference(x[0], c, 1, 0.0, "euclidean")
        shifts.append(np.max(np.linalg.norm(new - c, axis=1)))
        c = new
    j = 2
    assert shifts[j] < 0.5 * shifts[j - 1]
    tol = float(np.sqrt(shifts[j] * shifts[j - 1]))
    _, got, n = fk.batch_kmeans_Euclid(x, 4, max_iters=40, tol=tol, init_centroids=c0)
    assert n == j + 1
    ref = seed_reference(x[0], c0[0], 40, tol, "euclidean")
    assert ref[2] == j + 1
    np.testing.assert_allclose(got[0], ref[1], rtol=1e-5, atol=1e-5)


def test_cosine_centroids_are_unit_vectors():
    x = gauss((2, 500, 8)) * 5 + 1
    _, c, _ = fk.batch_kmeans_Cosine(x, 7, max_iters=10, seed=0)
    np.testing.assert_allclose(np.linalg.norm(c, axis=-1), 1.0, rtol=1e-5)


def test_dot_uses_raw_products_and_normalised_updates():
    x = gauss((1, 400, 3), seed=9)
    x[0, :200] *= 10  # long vectors: the raw dot product differs from the cosine
    c0 = np.array([[[1.0, 0, 0], [0, 3.0, 0], [0, 0, 0.5]]], np.float32)
    ids, c, _ = fk.batch_kmeans_Dot(x, 3, max_iters=1, init_centroids=c0)
    np.testing.assert_array_equal(ids[0], np.argmax(x[0] @ c0[0].T, axis=1))  # c0 used as given
    np.testing.assert_allclose(np.linalg.norm(c, axis=-1), 1.0, rtol=1e-5)


def test_empty_clusters_keep_their_centroid():
    x = gauss((1, 200, 2), seed=1)
    far = np.array([[[100.0, 100.0]]], np.float32)
    c0 = np.concatenate([x[:, :2], far], axis=1)
    _, c, _ = fk.batch_kmeans_Euclid(x, 3, max_iters=3, init_centroids=c0)
    np.testing.assert_array_equal(c[0, 2], far[0, 0])


def test_random_init_is_seeded_and_draws_rows_of_x():
    x = gauss((2, 50, 3), seed=4)
    a = fk.batch_kmeans_Euclid(x, 5, max_iters=1, tol=1e9, seed=7)
    b = fk.batch_kmeans_Euclid(x, 5, max_iters=1, tol=1e9, seed=7)
    np.testing.assert_array_equal(a[1], b[1])
    for bt in range(2):  # early stop on the first iteration returns the initial centroids: rows of x
        for row in a[1][bt]:
            assert np.any(np.all(x[bt] == row, axis=1))
    np.random.seed(3)
    c1 = fk.batch_kmeans_Euclid(x, 5, max_iters=1, tol=1e9)[1]
    np.random.seed(3)
    c2 = fk.batch_kmeans_Euclid(x, 5, max_iters=1, tol=1e9)[1]
    np.testing.assert_array_equal(c1, c2)  # seed=None follows NumPy's global generator


def test_init_centroids_are_reshaped_to_b_k_d():
    x = gauss((2, 100, 3))
    c0 = x[:, :4].reshape(8, 3)  # (B*K, D)
    ids, c, _ = fk.batch_kmeans_Euclid(x, 4, max_iters=2, init_centroids=c0)
    ref, c_ref, _ = fk.batch_kmeans_Euclid(x, 4, max_iters=2, init_centroids=c0.reshape(2, 4, 3))
    np.testing.assert_array_equal(ids, ref)
    np.testing.assert_array_equal(c, c_ref)


def test_batches_are_independent():
    x = gauss((3, 300, 4), seed=8)
    c0 = x[:, :5].copy()
    ids, c, _ = fk.batch_kmeans_Euclid(x, 5, max_iters=4, init_centroids=c0)
    for b in range(3):
        ids1, c1, _ = fk.batch_kmeans_Euclid(x[b:b + 1], 5, max_iters=4, init_centroids=c0[b:b + 1])
        np.testing.assert_array_equal(ids[b], ids1[0])
        np.testing.assert_array_equal(c[b], c1[0])


@pytest.mark.parametrize("metric", FUNCS)
def test_verbose_prints_one_line_per_iteration(metric, capsys):
    x = gauss((1, 200, 3))
    FUNCS[metric](x, 4, max_iters=3, verbose=True, seed=0)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    tag = " (dot)" if metric == "dot" else ""
    for i, line in enumerate(lines, 1):
        assert line.startswith(f"Iter {i}{tag}, center shift: ")
        assert "inertia: " in line and "elapsed: " in line


def test_compatibility_keywords_are_accepted():
    x = gauss((1, 100, 3))
    fk.batch_kmeans_Euclid(x, 3, 2, 0.0, None, False, compiled=True, max_mem_gb=1, use_heuristic=False)
    fk.batch_kmeans_Cosine(x, 3, 2, compiled=False)
    fk.batch_kmeans_Dot(x, 3, 2, max_mem_gb=0)


def test_the_seed_readme_example_runs_with_only_the_import_changed():
    # As in flash-kmeans-mlx's README, with NumPy data (smaller) in place of mx.random.normal.
    from flashkmeans import batch_kmeans_Euclid
    x = np.random.default_rng(0).standard_normal((4, 2000, 32), dtype=np.float32)
    cluster_ids, centers, n_iters = batch_kmeans_Euclid(x, n_clusters=50, tol=1e-4, verbose=False)
    assert cluster_ids.shape == (4, 2000) and centers.shape == (4, 50, 32) and 1 <= n_iters <= 100


@pytest.mark.parametrize("algorithm", ["auto", "lloyd", "elkan"])
def test_algorithms_agree(algorithm):
    x = gauss((1, 3000, 8), seed=11)
    c0 = x[:, :70].copy()
    ids, c, _ = fk.batch_kmeans_Euclid(x, 70, max_iters=5, init_centroids=c0, algorithm=algorithm)
    ref_ids, ref_c, _ = fk.batch_kmeans_Euclid(x, 70, max_iters=5, init_centroids=c0, algorithm="lloyd")
    assert np.mean(ids == ref_ids) > 0.999
    np.testing.assert_allclose(c, ref_c, rtol=1e-4, atol=1e-5)
