"""Every input kind and dtype: NumPy (float32/float16/bfloat16/float64, any strides, read-only,
byte-swapped), torch CPU tensors, any DLPack producer; results of the input's kind."""

import subprocess
import sys

import numpy as np
import pytest

import flashkmeans as fk
from flashkmeans import FlashKMeans
from conftest import gauss, ml_dtypes, needs_ml_dtypes, needs_torch, torch


def fit(x, k=4, iters=3):
    c0 = np.asarray(x[:, :k] if not hasattr(x, "detach") else x[:, :k].detach().float().cpu().numpy(),
                    dtype=np.float32)
    return fk.batch_kmeans_Euclid(x, k, max_iters=iters, init_centroids=c0)


def reference(x32, k=4, iters=3):
    return fk.batch_kmeans_Euclid(np.ascontiguousarray(x32, dtype=np.float32), k, max_iters=iters,
                                  init_centroids=np.ascontiguousarray(x32[:, :k], dtype=np.float32))


def same(result, ref, tol=1e-6):
    ids, c, n = result
    ids = ids.cpu().numpy() if hasattr(ids, "cpu") else ids
    c = c.float().cpu().numpy() if hasattr(c, "cpu") else np.asarray(c, dtype=np.float32)
    np.testing.assert_array_equal(ids, ref[0])
    np.testing.assert_allclose(c, ref[1], rtol=tol, atol=tol)
    assert n == ref[2]


@pytest.mark.parametrize("make", [
    lambda x: x[:, ::2],                                 # every other row
    lambda x: x[:, :, ::3],                              # every third column
    lambda x: np.swapaxes(np.swapaxes(x, 1, 2).copy(), 1, 2),  # columns contiguous (transposed storage)
    lambda x: np.asfortranarray(x),                      # Fortran order
    lambda x: x[:, ::-1],                                # negative row stride
    lambda x: x[:, :, ::-1],                             # negative column stride
    lambda x: x[::-1],                                   # negative batch stride
], ids=["rows", "cols", "transposed", "fortran", "neg-rows", "neg-cols", "neg-batch"])
def test_non_contiguous_numpy(make):
    base = gauss((2, 300, 12))
    x = make(base)
    assert not x.flags.c_contiguous
    same(fit(x), reference(np.array(x)))


def test_unaligned_byte_strides_are_copied_not_misread():
    raw = np.zeros(2 * 200 * 5 * 4 + 1, dtype=np.uint8)
    x = np.ndarray((2, 200, 5), dtype=np.float32, buffer=raw, offset=1)
    x[...] = gauss((2, 200, 5))
    rec = np.zeros((2, 200), dtype=[("a", np.float32, 5), ("b", np.int8)])  # 21-byte rows
    rec["a"] = x
    same(fit(rec["a"]), reference(np.array(x)))
    same(fit(x), reference(np.array(x)))


def test_numpy_input_is_passed_in_place():
    from flashkmeans import _arrays
    x = gauss((1, 100, 4))
    assert _arrays.prepare(x).array is x  # C-contiguous float32: its own pointer goes to the core
    strided = _arrays.prepare(x[:, ::2, 1:])
    assert np.shares_memory(strided.array, x) and strided.array.strides == x[:, ::2, 1:].strides
    assert not np.shares_memory(_arrays.prepare(x[:, ::-1]).array, x)  # negative strides: copied


def test_read_only_and_byte_swapped():
    x = gauss((1, 200, 6))
    ro = x.copy()
    ro.flags.writeable = False
    same(fit(ro), reference(x))
    same(fit(x.astype(">f4")), reference(x))


def test_float16():
    x = gauss((2, 300, 8)).astype(np.float16)
    ids, c, n = fit(x)
    assert c.dtype == np.float16
    ref = reference(x.astype(np.float32))
    np.testing.assert_array_equal(ids, ref[0])  # the core widens float16 to float32 exactly
    np.testing.assert_allclose(c.astype(np.float32), ref[1], rtol=1e-3, atol=1e-3)


@needs_ml_dtypes
def test_bfloat16_numpy():
    x = gauss((2, 300, 8)).astype(ml_dtypes.bfloat16)
    ids, c, n = fit(x)
    assert c.dtype == ml_dtypes.bfloat16
    ref = reference(x.astype(np.float32))
    np.testing.assert_array_equal(ids, ref[0])
    same(fit(x[:, ::2]), reference(x[:, ::2].astype(np.float32)), tol=1e-2)


def test_float64_is_computed_in_float32_and_returned_in_float64():
    x = gauss((1, 200, 5)).astype(np.float64)
    ids, c, n = fit(x)
    assert c.dtype == np.float64
    same((ids, c, n), reference(x))


def test_lists_and_integers():
    x = np.round(gauss((1, 60, 3)) * 10)
    same(fk.batch_kmeans_Euclid(x.tolist(), 3, 2, init_centroids=x[:, :3].tolist()),
         reference(x, 3, 2))
    with pytest.raises(TypeError, match="dtype int64"):
        fk.batch_kmeans_Euclid(x.astype(np.int64), 3)


class Producer:
    """A minimal DLPack producer (not NumPy, torch or CuPy)."""

    def __init__(self, a):
        self.a = a

    def __dlpack__(self, **kwargs):
        return self.a.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self.a.__dlpack_device__()


def test_any_dlpack_producer():
    x = gauss((2, 100, 4))
    ids, c, n = fk.batch_kmeans_Euclid(Producer(x), 4, max_iters=3, init_centroids=Producer(x[:, :4].copy()))
    assert isinstance(ids, np.ndarray)
    same((ids, c, n), reference(x))


@needs_torch
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
def test_torch_cpu(dtype):
    x = torch.from_numpy(gauss((2, 300, 8))).to(getattr(torch, dtype))
    ids, c, n = fit(x)
    assert isinstance(ids, torch.Tensor) and ids.dtype == torch.int32 and ids.device.type == "cpu"
    assert isinstance(c, torch.Tensor) and c.dtype == x.dtype
    ref = reference(x.float().numpy())
    np.testing.assert_array_equal(ids.numpy(), ref[0])
    tol = 1e-6 if dtype in ("float32", "float64") else 1e-2
    np.testing.assert_allclose(c.float().numpy(), ref[1], rtol=tol, atol=tol)


@needs_torch
def test_torch_non_contiguous_and_requires_grad():
    base = torch.from_numpy(gauss((2, 12, 300)))
    x = base.transpose(1, 2)  # (2, 300, 12), column stride 300
    assert not x.is_contiguous()
    same(fit(x), reference(x.contiguous().numpy()))
    g = torch.from_numpy(gauss((1, 100, 4))).requires_grad_()
    same(fit(g), reference(g.detach().numpy()))
    same(fit(x[:, ::3]), reference(x[:, ::3].contiguous().numpy()))


@needs_torch
def test_torch_class_api_and_predict_with_other_kinds():
    x = torch.from_numpy(gauss((500, 6)))
    model = FlashKMeans(6, 5, niter=5).fit(x)
    assert isinstance(model.centroids_b, torch.Tensor) and model.centroids_b.shape == (1, 5, 6)
    labels_t = model.predict(x)
    labels_n = model.predict(x.numpy())  # centroids converted to the data's kind
    assert isinstance(labels_t, torch.Tensor) and isinstance(labels_n, np.ndarray)
    np.testing.assert_array_equal(labels_t.numpy(), labels_n)


@needs_torch
def test_torch_bfloat16_class_dtype():
    x = torch.from_numpy(gauss((400, 6)))
    model = FlashKMeans(6, 4, dtype=torch.bfloat16).fit(x)
    assert model.centroids_b.dtype == torch.bfloat16


@needs_torch
def test_torch_init_centroids_from_numpy():
    x = torch.from_numpy(gauss((1, 200, 4)))
    same(fk.batch_kmeans_Euclid(x, 3, 2, init_centroids=x[:, :3].numpy()), reference(x.numpy(), 3, 2))


def test_float32_work_does_not_import_ml_dtypes():
    # ml_dtypes is needed only for bfloat16 NumPy arrays; a broken ml_dtypes install (it has
    # crashed on import in some environments) must not take float32 and float16 work down with it.
    code = ("import sys, numpy as np, flashkmeans\n"
            "x = np.random.default_rng(0).standard_normal((200, 5)).astype(np.float32)\n"
            "flashkmeans.batch_kmeans_Euclid(x[None], 4, max_iters=3)\n"
            "flashkmeans.FlashKMeans(d=5, k=4, niter=3).fit(x.astype(np.float16))\n"
            "print('ml_dtypes' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
