"""Property-based tests (Hypothesis): for random shapes, dtypes, metrics, inits and algorithms,
- every label is a nearest centroid (argmin of the distance, argmax of the similarity for cosine and
  dot) among the returned centroids, up to float32 rounding;
- the inertia and per-point distances match a float64 recomputation from the labels;
- the seed's functions return centroids that are the means (normalised for cosine and dot) of the
  members of their labels, after exactly max_iters iterations when tol = 0;
- predict with the returned centroids gives nearest-centroid labels too."""

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

import flashkmeans as fk  # noqa: E402
from flashkmeans import _arrays, _kmeans  # noqa: E402

SETTINGS = settings(max_examples=50, deadline=None, derandomize=True)
FIT = {"euclidean": fk.batch_kmeans_Euclid, "cosine": fk.batch_kmeans_Cosine, "dot": fk.batch_kmeans_Dot}


@st.composite
def problems(draw):
    b = draw(st.integers(1, 3))
    n = draw(st.integers(1, 60))
    d = draw(st.integers(1, 12))
    k = draw(st.integers(1, min(n, 9)))
    metric = draw(st.sampled_from(["euclidean", "cosine", "dot"]))
    algorithm = draw(st.sampled_from(["auto", "lloyd"] if metric == "dot" else ["auto", "lloyd", "elkan"]))
    dtype = draw(st.sampled_from([np.float32, np.float16]))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["gauss", "integers", "blobs"]))
    if kind == "gauss":
        x = rng.standard_normal((b, n, d)) * draw(st.sampled_from([1e-3, 1.0, 100.0]))
    elif kind == "integers":  # many duplicate points and exact ties
        x = rng.integers(-2, 3, (b, n, d)).astype(np.float64)
    else:
        centres = rng.standard_normal((b, k, d)) * 10
        x = np.take_along_axis(centres, rng.integers(0, k, (b, n, 1)), axis=1) + rng.standard_normal((b, n, d))
    x = x.astype(dtype)
    if metric == "cosine":  # a row without direction is an error under cosine (test_errors.py)
        x[np.abs(x).max(axis=-1) == 0, 0] = 1
    return dict(x=x, k=k, metric=metric, algorithm=algorithm, max_iter=draw(st.integers(1, 6)),
                n_threads=draw(st.integers(1, 3)), init=draw(st.sampled_from(["random", "kmeans++", "given"])),
                seed=seed)


def prepared(x, metric):
    x = x.astype(np.float64)
    if metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    return x


def distances(x, c, metric):
    """(N, K) float64 distances as the library defines them: squared L2, 1 - x.c, -x.c."""
    if metric == "euclidean":
        return ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)
    s = x @ c.T
    return 1 - s if metric == "cosine" else -s


def tolerance(x, c, metric):
    """Per point: a bound on the float32 error of comparing two distances (see tests/reference.hpp)."""
    d = x.shape[-1]
    x2, c2 = (x * x).sum(-1), (c * c).sum(-1).max()
    u = 2.0 ** -24
    if metric == "euclidean":
        return (4 * d + 8) * u * (x2 + c2) + 1e-30
    return (4 * d + 16) * u * np.sqrt(x2 * c2) + 1e-30


def check_nearest(x, c, labels, metric):
    assert labels.dtype == np.int32 and labels.min() >= 0 and labels.max() < len(c)
    dist = distances(x, c, metric)
    mine = dist[np.arange(len(x)), labels]
    tol = tolerance(x, c, metric)
    assert np.all(mine - dist.min(axis=1) <= tol), (mine - dist.min(axis=1) - tol).max()
    return mine, tol


@given(problems())
@SETTINGS
def test_labels_nearest_and_inertia_recomputed(p):
    x, metric = p["x"], p["metric"]
    b, n, d = x.shape
    init_centroids = None
    if p["init"] == "given":
        init_centroids = np.random.default_rng(p["seed"] + 1).standard_normal((b, p["k"], d)).astype(np.float32)
    out = _kmeans.fit_core(_arrays.prepare(x), p["k"], max_iter=p["max_iter"], tol=0.0, metric=metric,
                           init=p["init"], init_centroids=init_centroids, seed=p["seed"], algorithm=p["algorithm"],
                           n_threads=p["n_threads"], final_assignment=True, distances=True)
    assert out.labels.shape == (b, n) and out.centroids.shape == (b, p["k"], d)
    assert out.n_iter == [p["max_iter"]] * b and not any(out.converged)
    for i in range(b):
        xb = prepared(x[i], metric)
        c = out.centroids[i].astype(np.float64)
        if metric != "euclidean":
            np.testing.assert_allclose(np.linalg.norm(c, axis=-1), 1, rtol=1e-5)
        mine, tol = check_nearest(xb, c, out.labels[i], metric)
        np.testing.assert_allclose(out.distances[i], mine, rtol=1e-4, atol=float(tol.max()))
        assert abs(out.inertia[i] - mine.sum()) <= 1e-4 * np.abs(mine).sum() + tol.sum()
        labels, dist = _kmeans.predict_core(_arrays.prepare(x[i]), out.centroids[i], metric=metric,
                                            n_threads=p["n_threads"], distances=True)
        mine, tol = check_nearest(xb, c, labels, metric)
        np.testing.assert_allclose(dist, mine, rtol=1e-4, atol=float(tol.max()))


@given(problems())
@SETTINGS
def test_seed_api_centroids_are_means_of_their_members(p):
    x, metric, k = p["x"], p["metric"], p["k"]
    labels, centres, n_iter = FIT[metric](x, k, max_iters=p["max_iter"], seed=p["seed"], algorithm=p["algorithm"],
                                          n_threads=p["n_threads"])
    assert n_iter == p["max_iter"]  # tol = 0 runs every iteration
    assert labels.shape == x.shape[:2] and centres.shape == (x.shape[0], k, x.shape[2])
    assert centres.dtype == x.dtype
    for i in range(x.shape[0]):
        xb = prepared(x[i], metric)
        for j in np.unique(labels[i]):
            members = xb[labels[i] == j]
            mean = members.mean(axis=0)
            scale = np.abs(members).mean(axis=0)
            if metric != "euclidean":
                norm = max(np.linalg.norm(mean), 1e-12)
                mean, scale = mean / norm, scale / norm
            got = centres[i, j].astype(np.float64)
            rounding = 4 * np.finfo(x.dtype).eps * np.maximum(1, np.abs(mean))  # the cast to x's dtype
            assert np.all(np.abs(got - mean) <= 1e-4 * scale + rounding), (j, got, mean)
