"""Every bad input: the exception type and its message (C++ errors arrive mapped by kind)."""

import numpy as np
import pytest

import flashkmeans as fk
from flashkmeans import _core
from conftest import gauss, needs_torch, torch

X = gauss((1, 50, 4))
XZ = X.copy()
XZ[0, 4] = 0  # a row without direction under cosine


@pytest.mark.parametrize("call, exc, message", [
    (lambda: fk.batch_kmeans_Euclid(X, 0), ValueError, "n_clusters = 0 is not allowed: expected n_clusters >= 1"),
    (lambda: fk.batch_kmeans_Euclid(X, -3), ValueError, "n_clusters = -3 is not allowed"),
    (lambda: fk.batch_kmeans_Euclid(X, 51), ValueError,
     "n_clusters = 51 is larger than the number of points N = 50: expected 1 <= n_clusters <= N"),
    (lambda: fk.batch_kmeans_Euclid(X, 2.5), TypeError, "n_clusters must be an integer"),
    (lambda: fk.batch_kmeans_Euclid(X, 3, max_iters=0), ValueError,
     "max_iter = 0 is not allowed: expected max_iter >= 1"),
    (lambda: fk.batch_kmeans_Euclid(X, 3, tol=float("nan")), ValueError, "tol is NaN"),
    (lambda: fk.batch_kmeans_Euclid(X[0], 3), ValueError, r"expected \(B, N, D\)"),
    (lambda: fk.batch_kmeans_Euclid(X[None], 3), ValueError, r"expected \(B, N, D\)"),
    (lambda: fk.batch_kmeans_Euclid(np.zeros((1, 0, 4), np.float32), 1), ValueError, "larger than the number"),
    (lambda: fk.batch_kmeans_Euclid(np.zeros((1, 5, 0), np.float32), 1), ValueError, "x is empty"),
    (lambda: fk.batch_kmeans_Euclid(np.zeros((0, 5, 3), np.float32), 1), ValueError, "x is empty"),
    (lambda: fk.batch_kmeans_Euclid(X.astype(np.int32), 3), TypeError, "x has dtype int32: expected float32"),
    (lambda: fk.batch_kmeans_Euclid(X.astype(np.complex64), 3), TypeError, "x has dtype complex64"),
    (lambda: fk.batch_kmeans_Euclid(X.astype(bool), 3), TypeError, "x has dtype bool"),
    (lambda: fk.batch_kmeans_Euclid(np.where(np.arange(200).reshape(1, 50, 4) == 37, np.nan, X), 3),
     ValueError, r"x contains NaN or infinity \(first in batch 0, row 9\); expected finite values"),
    (lambda: fk.batch_kmeans_Euclid(np.where(np.arange(200).reshape(1, 50, 4) == 5, np.inf, X), 3),
     ValueError, r"x contains NaN or infinity \(first in batch 0, row 1\)"),
    (lambda: fk.batch_kmeans_Euclid(X, 3, init_centroids=np.zeros((1, 3, 5), np.float32)), ValueError,
     "cannot be reshaped"),
    (lambda: fk.batch_kmeans_Euclid(X, 3, init_centroids=np.full((1, 3, 4), np.nan, np.float32)), ValueError,
     "init_centroids contains NaN or infinity"),
    (lambda: fk.batch_kmeans_Euclid(X, 3, init_centroids=np.zeros((1, 3, 4), np.int64)), TypeError,
     "init_centroids has dtype int64"),
    (lambda: fk.batch_kmeans_Euclid(X, 3, algorithm="fast"), ValueError, "Unknown algorithm 'fast'"),
    (lambda: fk.batch_kmeans_Dot(X, 3, algorithm="elkan"), ValueError,
     "algorithm elkan needs a metric with a triangle inequality"),
    (lambda: fk.batch_kmeans_Euclid(X, 3, precision="fp8"), ValueError, "unknown precision 'fp8'"),
    (lambda: fk.batch_kmeans_Euclid(X, 3, n_threads=-1), ValueError, "n_threads = -1 is not allowed"),
    (lambda: fk.batch_kmeans_Euclid(X, 3, seed=-1), ValueError, "seed = -1 is not allowed"),
    (lambda: fk.batch_kmeans_Euclid(X, 3, seed=2 ** 64), ValueError, "seed = .* is not allowed"),
    (lambda: fk.batch_kmeans_Cosine(XZ, 3), ValueError,
     r"x has a zero row \(norm below 1e-12; first in batch 0, row 4\), which has no direction under the cosine "
     "metric: remove such rows or use the euclidean or dot metric"),
    (lambda: fk.batch_kmeans_Cosine(X, 3, init_centroids=np.zeros((1, 3, 4), np.float32)), ValueError,
     r"init_centroids has a zero row \(norm below 1e-12; first in batch 0, row 0\)"),
    (lambda: fk.FlashKMeans(4, 3, metric="cosine").fit(X[0]).predict(XZ[0]), ValueError,
     r"x has a zero row \(norm below 1e-12; first in batch 0, row 4\)"),
    (lambda: fk.FlashKMeans(4, 3).fit(X[0]).predict(X[0, :, :3]), ValueError,
     "data has D = 3 columns: this model was built with d = 4"),
    (lambda: fk.FlashKMeans(4, 51).fit(X[0]), ValueError, "n_clusters = 51 is larger than the number of points N = 50"),
    (lambda: fk.FlashKMeans(4, 3, algorithm="x"), ValueError, "Unknown algorithm"),
    (lambda: fk.FlashKMeans(4, 3, precision="x"), ValueError, "Unknown precision"),
    (lambda: fk.FlashKMeans(4, 3, dtype="int8").fit(X[0]), TypeError, "dtype 'int8' is not supported"),
])
def test_bad_input(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_core_rejects_bad_buffers():
    x = gauss((20, 3))
    labels, cent = np.empty(20, np.int32), np.empty((2, 3), np.float32)
    args = dict(distances=None, n_clusters=2, max_iter=1, tol=0.0, metric="euclidean", init="random",
                init_centroids=None, init_bf16_bits=False, seed=0, empty_clusters="keep", algorithm="auto",
                n_threads=0, final_assignment=True, precision="exact", cuda_stream=0, on_iteration=None)
    with pytest.raises(TypeError, match="labels buffer has dtype int64: expected int32"):
        _core.fit(x, False, np.empty(20, np.int64), cent, **args)
    with pytest.raises(ValueError, match="labels buffer has 19 elements: expected 20"):
        _core.fit(x, False, np.empty(19, np.int32), cent, **args)
    with pytest.raises(ValueError, match="centroids buffer is not C-contiguous"):
        _core.fit(x, False, labels, np.empty((3, 4), np.float32)[:, :2].T, **args)
    with pytest.raises(ValueError, match="unknown metric 'l1'"):
        _core.fit(x, False, labels, cent, **dict(args, metric="l1"))
    with pytest.raises(ValueError, match="unknown empty_clusters 'drop'"):
        _core.fit(x, False, labels, cent, **dict(args, empty_clusters="drop"))
    with pytest.raises(TypeError, match="x has dtype uint16"):
        _core.fit(x.view(np.uint16), False, labels, cent, **args)
    with pytest.raises(ValueError, match=r"x has 1 dimensions: expected \(N, D\) or \(B, N, D\)"):
        _core.predict(x[0], False, x[:2], False, labels, None, "euclidean", 0, "exact", 0)
    with pytest.raises(ValueError, match="centroids have D = 2 columns but x has D = 3"):
        _core.predict(x, False, x[:2, :2], False, labels, None, "euclidean", 0, "exact", 0)


def test_predict_errors():
    model = fk.FlashKMeans(3, 2).fit(gauss((20, 3)))
    bad = gauss((20, 3))
    bad[4, 1] = np.inf
    with pytest.raises(ValueError, match=r"x contains NaN or infinity \(first in batch 0, row 4\)"):
        model.predict(bad)


def test_callback_errors_propagate():
    def boom(*args):
        raise KeyError("from the callback")
    x = gauss((100, 3))
    labels, cent = np.empty(100, np.int32), np.empty((2, 3), np.float32)
    with pytest.raises(KeyError, match="from the callback"):
        _core.fit(x, False, labels, cent, None, 2, 5, 0.0, "euclidean", "random", None, False, 0, "keep", "auto", 0,
                  True, "exact", 0, boom)


@needs_torch
def test_cuda_tensor_without_the_cuda_backend():
    if not torch.cuda.is_available() or fk.cuda_available():
        pytest.skip("needs a CUDA device and a build without the CUDA backend")
    x = torch.randn(1, 50, 4, device="cuda")
    with pytest.raises(NotImplementedError, match="no CUDA backend"):
        fk.batch_kmeans_Euclid(x, 3)


@needs_torch
def test_torch_errors():
    with pytest.raises(TypeError, match="x has dtype torch.int64"):
        fk.batch_kmeans_Euclid(torch.zeros(1, 5, 2, dtype=torch.int64), 2)
    if hasattr(torch, "device") and torch.device("meta"):
        with pytest.raises(TypeError, match="torch tensor on device 'meta'"):
            fk.batch_kmeans_Euclid(torch.zeros(1, 5, 2, device="meta"), 2)


def test_zero_rows_are_fine_for_euclidean_and_dot():
    for fit in (fk.batch_kmeans_Euclid, fk.batch_kmeans_Dot):
        labels, _, _ = fit(XZ, 3, max_iters=3, seed=0)
        assert labels.shape == (1, 50)


def test_outputs_untouched_on_error():
    """The core writes nothing into the caller's buffers when it rejects the input."""
    x = gauss((20, 3))
    x[7, 2] = np.nan
    labels, cent, dist = np.full(20, 7, np.int32), np.full((2, 3), 5.0, np.float32), np.full(20, 3.0, np.float32)
    with pytest.raises(ValueError, match=r"x contains NaN or infinity \(first in batch 0, row 7\)"):
        _core.fit(x, False, labels, cent, dist, 2, 3, 0.0, "euclidean", "random", None, False, 0, "keep", "auto", 0,
                  True, "exact", 0, None)
    with pytest.raises(ValueError, match="x contains NaN or infinity"):
        _core.predict(x, False, gauss((2, 3)), False, labels, dist, "euclidean", 0, "exact", 0)
    assert (labels == 7).all() and (cent == 5).all() and (dist == 3).all()
