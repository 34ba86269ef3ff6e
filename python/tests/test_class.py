"""FlashKMeans: fit / train / predict / fit_predict on (N, D) and (B, N, D), attributes, errors."""

import pydoc

import numpy as np
import pytest

import flashkmeans as fk
from flashkmeans import FlashKMeans
from conftest import blobs, gauss, needs_ml_dtypes, ml_dtypes


def test_two_d_data():
    x, _ = blobs(1000, 8, 5)
    model = FlashKMeans(d=8, k=5, niter=20, seed=1)
    assert model.fit(x) is model
    assert model.centroids_b.shape == (1, 5, 8) and model.centroids.shape == (5, 8)
    assert model.cluster_ids_b.shape == (1, 1000) and model.cluster_ids_b.dtype == np.int32
    labels = model.predict(x)
    assert labels.shape == (1000,) and labels.dtype == np.int32
    assert 1 <= model.n_iter <= 20 and len(model.inertia_b) == 1


def test_three_d_data():
    x = gauss((3, 400, 6))
    model = FlashKMeans(d=6, k=4, niter=5)
    labels = model.fit_predict(x)
    assert labels.shape == (3, 400)
    np.testing.assert_array_equal(labels, model.cluster_ids_b)
    assert model.centroids_b.shape == (3, 4, 6) and model.centroids.shape == (3, 4, 6)
    assert model.predict(x).shape == (3, 400)


def test_train_returns_none_and_matches_fit():
    x = gauss((500, 4))
    a, b = FlashKMeans(4, 6, seed=3), FlashKMeans(4, 6, seed=3)
    assert a.train(x) is None
    b.fit(x)
    np.testing.assert_array_equal(a.centroids_b, b.centroids_b)


def test_fit_follows_the_seed_api():
    x = gauss((2, 300, 5))
    model = FlashKMeans(5, 4, niter=7, tol=1e-8, seed=11, metric="cosine").fit(x)
    ids, c, n = fk.batch_kmeans_Cosine(x, 4, 7, 1e-8, seed=11)
    np.testing.assert_array_equal(model.cluster_ids_b, ids)
    np.testing.assert_array_equal(model.centroids_b, c)
    assert model.n_iter == n


def test_predict_assigns_against_the_centroids():
    x, _ = blobs(600, 3, 4)
    model = FlashKMeans(3, 4, niter=10).fit(x)
    c = model.centroids.astype(np.float64)
    expect = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_array_equal(model.predict(x), expect)


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "dot"])
def test_metrics(metric):
    x = gauss((400, 5)) + 0.5
    model = FlashKMeans(5, 3, metric=metric, niter=5).fit(x)
    c = model.centroids.astype(np.float64)
    if metric == "euclidean":
        expect = np.argmin(((x[:, None] - c[None]) ** 2).sum(-1), axis=1)
    else:
        expect = np.argmax(x @ c.T, axis=1)
    np.testing.assert_array_equal(model.predict(x), expect)


def test_dtype_is_the_compute_dtype():
    x = gauss((300, 4))
    model = FlashKMeans(4, 3, dtype="float16").fit(x)
    assert model.centroids_b.dtype == np.float16
    assert FlashKMeans(4, 3).fit(x.astype(np.float16)).centroids_b.dtype == np.float16
    assert FlashKMeans(4, 3, dtype=np.float32).fit(x.astype(np.float16)).centroids_b.dtype == np.float32


@needs_ml_dtypes
def test_dtype_bfloat16():
    x = gauss((300, 4))
    model = FlashKMeans(4, 3, dtype="bfloat16").fit(x)
    assert model.centroids_b.dtype == ml_dtypes.bfloat16
    assert model.predict(x).shape == (300,)


def test_verbose(capsys):
    FlashKMeans(3, 2, niter=4, verbose=True).fit(gauss((100, 3)))
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and out[0].startswith("Iter 1, center shift: ")


def test_errors():
    model = FlashKMeans(4, 3)
    with pytest.raises(RuntimeError, match=r"^Model not trained. Call train\(\) or fit\(\) first.$"):
        model.predict(gauss((10, 4)))
    with pytest.raises(ValueError, match="expected 2-D"):
        model.fit(gauss((10,)))
    with pytest.raises(ValueError, match="expected 2-D"):
        model.fit(gauss((2, 2, 10, 4)))
    with pytest.raises(ValueError, match="d = 4"):
        model.fit(gauss((10, 5)))
    with pytest.raises(ValueError, match="Unknown metric 'manhattan'"):
        FlashKMeans(4, 3, metric="manhattan")
    model.fit(gauss((2, 50, 4)))
    with pytest.raises(ValueError, match="batch size 3 but the model was fitted with batch size 2"):
        model.predict(gauss((3, 50, 4)))
    with pytest.raises(ValueError, match="batch size 1"):
        model.predict(gauss((50, 4)))
    with pytest.raises(ValueError, match="larger than the number of points"):
        FlashKMeans(4, 30).fit(gauss((10, 4)))


def test_compatibility_keywords():
    FlashKMeans(4, 3, compiled=False, max_mem_gb=2, use_triton=False, chunk_size_data=10,
                chunk_size_centroids=10, chunk_size_data_cpu=10).fit(gauss((30, 4)))


def test_device_cpu_keeps_numpy():
    labels = FlashKMeans(4, 3, device="cpu").fit_predict(gauss((30, 4)))
    assert isinstance(labels, np.ndarray)


def test_help_is_useful():
    text = pydoc.render_doc(FlashKMeans, renderer=pydoc.plaintext)
    for word in ("niter", "tol", "metric", "centroids_b", "cluster_ids_b", "fit_predict", "train", "(B, N, D)"):
        assert word in text
    assert "(B, N, D)" in fk.batch_kmeans_Euclid.__doc__
    assert fk.__doc__ and "DLPack" in fk.__doc__


def test_the_seed_readme_class_example_runs_with_only_the_import_changed():
    from flashkmeans import FlashKMeans
    x = gauss((2000, 32))
    x_new = gauss((100, 32), seed=1)
    model = FlashKMeans(d=32, k=20, niter=25, tol=1e-6)
    model.fit(x)
    labels = model.predict(x_new)
    labels = model.fit_predict(x)
    assert labels.shape == (2000,)
