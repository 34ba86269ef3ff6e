"""Arrays in and out: which framework an input belongs to, the view handed to the compiled core, and
outputs allocated by the same framework on the same device.

Inputs are passed to the core without a copy when they are float32, float16 or bfloat16 with
non-negative strides that are whole elements (the core reads any such strides). A copy is made only
to change the dtype (float64 and integer array-likes are computed in float32), for negative or
fractional strides, or for a byte order that is not the machine's.
"""

from __future__ import annotations

import sys
from typing import Any, Tuple

import numpy as np

_NUMPY, _TORCH, _CUPY = "numpy", "torch", "cupy"
_DLPACK_CPU, _DLPACK_CUDA, _DLPACK_CUDA_HOST = 1, 2, 3


def _torch():
    return sys.modules.get("torch")


def _cupy():
    return sys.modules.get("cupy")


def _is_torch(x: Any) -> bool:
    t = _torch()
    return t is not None and isinstance(x, t.Tensor)


def _is_cupy(x: Any) -> bool:
    c = _cupy()
    return c is not None and isinstance(x, c.ndarray)


def _np_bfloat16():
    """ml_dtypes' bfloat16 NumPy dtype, or None when ml_dtypes is not installed. Called only where a
    bfloat16 array is at hand (a NumPy bfloat16 dtype exists only once ml_dtypes is imported), so
    float32 and float16 work never imports ml_dtypes."""
    try:
        import ml_dtypes
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    return np.dtype(ml_dtypes.bfloat16)


class Prepared:
    """An input ready for the core: `array` (NumPy, torch or CuPy), its framework `kind`, whether it
    holds bfloat16 bit patterns in a uint16 NumPy array (`bf16_bits`), whether it lives on a CUDA
    device, and `out_dtype`: the framework dtype results should be returned in."""

    __slots__ = ("array", "kind", "bf16_bits", "cuda", "out_dtype")

    def __init__(self, array, kind, bf16_bits, cuda, out_dtype):
        self.array, self.kind, self.bf16_bits, self.cuda, self.out_dtype = array, kind, bf16_bits, cuda, out_dtype

    @property
    def shape(self) -> Tuple[int, ...]:
        return tuple(int(s) for s in self.array.shape)

    @property
    def ndim(self) -> int:
        return len(self.array.shape)


def _dtype_error(what: str, dtype: Any) -> TypeError:
    return TypeError(f"{what} has dtype {dtype}: expected float32, float16 or bfloat16 "
                     "(float64 is accepted and computed in float32)")


def _from_numpy(x: np.ndarray, what: str) -> Prepared:
    bf16 = _np_bfloat16() if x.dtype.name == "bfloat16" else None
    out_dtype = x.dtype
    if bf16 is not None and x.dtype == bf16:
        x = x.view(np.uint16)
        bits = True
    elif x.dtype.kind == "f" and x.dtype.itemsize in (2, 4):
        bits = False
        if not x.dtype.isnative:
            x = x.astype(x.dtype.newbyteorder("="))
    elif x.dtype.kind == "f":  # float64, longdouble
        x, bits = x.astype(np.float32), False
    else:
        raise _dtype_error(what, x.dtype)
    if any(s < 0 or s % x.itemsize for s in x.strides):
        x = np.ascontiguousarray(x)
    return Prepared(x, _NUMPY, bits, False, out_dtype)


def _from_torch(x, what: str) -> Prepared:
    torch = _torch()
    if x.requires_grad:
        x = x.detach()
    if x.is_conj():
        x = x.resolve_conj()
    if x.is_neg():
        x = x.resolve_neg()
    if x.device.type not in ("cpu", "cuda"):
        raise TypeError(f"{what} is a torch tensor on device '{x.device}': expected a CPU or CUDA tensor")
    out_dtype = x.dtype
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        if not x.dtype.is_floating_point:
            raise _dtype_error(what, x.dtype)
        x = x.to(torch.float32)
    return Prepared(x, _TORCH, False, x.device.type == "cuda", out_dtype)


def _from_cupy(x, what: str) -> Prepared:
    cp = _cupy()
    out_dtype = x.dtype
    if x.dtype.kind != "f":
        raise _dtype_error(what, x.dtype)
    if x.dtype.itemsize not in (2, 4):
        x = x.astype(cp.float32)
    if any(s < 0 or s % x.itemsize for s in x.strides):
        x = cp.ascontiguousarray(x)
    return Prepared(x, _CUPY, False, True, out_dtype)


def prepare(x: Any, what: str = "x") -> Prepared:
    """Classifies x and returns what the core can read. NumPy arrays, torch tensors and CuPy arrays
    are used as they are; any other DLPack producer is imported without a copy (through NumPy on the
    CPU, torch or CuPy on a GPU); other array-likes go through numpy.asarray."""
    if isinstance(x, Prepared):
        return x
    if isinstance(x, np.ndarray):
        return _from_numpy(x if type(x) is np.ndarray else np.asarray(x), what)
    if _is_torch(x):
        return _from_torch(x, what)
    if _is_cupy(x):
        return _from_cupy(x, what)
    if hasattr(x, "__dlpack__") and hasattr(x, "__dlpack_device__"):
        dev_type = int(x.__dlpack_device__()[0])
        if dev_type in (_DLPACK_CPU, _DLPACK_CUDA_HOST):
            return _from_numpy(np.from_dlpack(x), what)
        if dev_type == _DLPACK_CUDA:
            try:
                import torch
                return _from_torch(torch.from_dlpack(x), what)
            except ImportError:
                pass
            try:
                import cupy
                return _from_cupy(cupy.from_dlpack(x), what)
            except ImportError:
                raise TypeError(f"{what} is a CUDA array of type {type(x).__name__}: install torch or cupy "
                                "so that results can be returned on the GPU") from None
        raise TypeError(f"{what} is on DLPack device type {dev_type}: expected CPU or CUDA memory")
    arr = np.asarray(x)
    if arr.dtype.kind in "iub":
        arr = arr.astype(np.float32)
    return _from_numpy(arr, what)


def cast(p: Prepared, dtype: Any) -> Prepared:
    """p converted to a compute dtype ('float32', 'float16', 'bfloat16', or a NumPy / torch dtype)."""
    if dtype is None:
        return p
    name = _dtype_name(dtype)
    if name not in ("float32", "float16", "bfloat16"):
        raise TypeError(f"dtype {dtype!r} is not supported: expected float32, float16 or bfloat16")
    a = p.array
    if p.kind == _TORCH:
        torch = _torch()
        return prepare(a.to(getattr(torch, name)))
    if p.kind == _CUPY:
        if name == "bfloat16":
            raise TypeError("CuPy has no bfloat16: pass a torch tensor for bfloat16 on a GPU")
        return prepare(a.astype(name))
    if name == "bfloat16":
        bf16 = _np_bfloat16()
        if bf16 is None:
            raise TypeError("bfloat16 NumPy arrays need the ml_dtypes package (pip install ml_dtypes)")
        return prepare(to_numpy(p).astype(bf16))
    return prepare(to_numpy(p).astype(name))


def _dtype_name(dtype: Any) -> str:
    if isinstance(dtype, str):
        return {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16",
                "float": "float32"}.get(dtype, dtype)
    t = _torch()
    if t is not None and isinstance(dtype, t.dtype):
        return str(dtype).replace("torch.", "")
    try:
        return np.dtype(dtype).name
    except TypeError:
        return str(dtype)


def to_numpy(p: Prepared) -> np.ndarray:
    """The array as NumPy in its own dtype (bfloat16 as ml_dtypes' bfloat16), copied to the host if needed."""
    a = p.array
    if p.kind == _NUMPY:
        return a.view(_np_bfloat16()) if p.bf16_bits else a
    if p.kind == _TORCH:
        torch = _torch()
        if a.dtype == torch.bfloat16:
            bf16 = _np_bfloat16()
            f = a.detach().to("cpu", torch.float32).numpy()
            return f.astype(bf16) if bf16 is not None else f
        return a.detach().cpu().numpy()
    return a.get()


def like(p: Prepared, y: Any, what: str) -> Prepared:
    """y (an array of any kind) moved to p's framework and device, then prepared; a copy only when
    the framework or device differ."""
    q = prepare(y, what)
    if q.kind == p.kind and (p.kind != _TORCH or q.array.device == p.array.device) and \
            (p.kind != _CUPY or q.array.device == p.array.device):
        return q
    host = to_numpy(q)
    if p.kind == _NUMPY:
        return prepare(host, what)
    if p.kind == _TORCH:
        torch = _torch()
        bf16 = _np_bfloat16() if host.dtype.name == "bfloat16" else None
        if bf16 is not None and host.dtype == bf16:
            return prepare(torch.from_numpy(host.astype(np.float32)).to(p.array.device, torch.bfloat16), what)
        return prepare(torch.from_numpy(np.ascontiguousarray(host)).to(p.array.device), what)
    cp = _cupy()
    with cp.cuda.Device(p.array.device.id):
        return prepare(cp.asarray(host), what)


def empty(p: Prepared, shape: Tuple[int, ...], dtype: str):
    """An uninitialised C-contiguous 'int32' or 'float32' array of p's framework on p's device."""
    if p.kind == _NUMPY:
        return np.empty(shape, dtype=dtype)
    if p.kind == _TORCH:
        torch = _torch()
        return torch.empty(shape, dtype=getattr(torch, dtype), device=p.array.device)
    cp = _cupy()
    with cp.cuda.Device(p.array.device.id):
        return cp.empty(shape, dtype=dtype)


def cuda_stream(p: Prepared) -> int:
    """The framework's current CUDA stream on p's device as an integer handle (0 for host arrays)."""
    if not p.cuda:
        return 0
    if p.kind == _TORCH:
        return int(_torch().cuda.current_stream(p.array.device).cuda_stream)
    cp = _cupy()
    with cp.cuda.Device(p.array.device.id):
        return int(cp.cuda.get_current_stream().ptr)


def as_out_dtype(p: Prepared, a: Any):
    """A float32 result converted to the dtype the input came in (float16, bfloat16, float64...)."""
    if p.kind == _NUMPY:
        return a if a.dtype == p.out_dtype else a.astype(p.out_dtype)
    if p.kind == _TORCH:
        return a if a.dtype == p.out_dtype else a.to(p.out_dtype)
    return a if a.dtype == p.out_dtype else a.astype(p.out_dtype)


def reshape(p: Prepared, shape: Tuple[int, ...], what: str) -> Prepared:
    """p reshaped (a view where the framework can, else a copy)."""
    a = p.array
    try:
        r = a.reshape(shape)
    except (ValueError, RuntimeError):
        raise ValueError(f"{what} has shape {tuple(a.shape)}, which cannot be reshaped to {shape}") from None
    return Prepared(r, p.kind, p.bf16_bits, p.cuda, p.out_dtype)


def device_str(p: Prepared) -> str:
    if p.kind == _TORCH:
        return str(p.array.device)
    if p.kind == _CUPY:
        return f"cuda:{p.array.device.id}"
    return "cpu"
