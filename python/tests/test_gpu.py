"""CUDA tensors in, CUDA tensors out, with no copy of the data through the host. Skipped where torch
has no CUDA device or flashkmeans was built without the CUDA backend."""

import numpy as np
import pytest

import flashkmeans as fk
from conftest import gauss, needs_cuda, torch

pytestmark = needs_cuda


def _device_to_host_bytes(fn):
    """Bytes copied device -> host while fn runs, from the CUDA activity the profiler records
    (None when the profiler sees no CUDA activity)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        out = fn()
        torch.cuda.synchronize()
    events = [e for e in prof.events() if getattr(e, "device_type", None) is not None]
    cuda_events = [e for e in events if "cuda" in str(e.device_type).lower()]
    if not cuda_events:
        return out, None
    total = 0
    for e in cuda_events:
        if "DtoH" in e.name or "Device -> Host" in e.name or "Device -> Pageable" in e.name:
            total += int(getattr(e, "bytes", 0) or 1)
    return out, total


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_cuda_tensors_in_and_out(dtype):
    x = torch.from_numpy(gauss((2, 20000, 64))).to("cuda", getattr(torch, dtype))
    c0 = x[:, :50].clone()
    (ids, c, n), dtoh = _device_to_host_bytes(lambda: fk.batch_kmeans_Euclid(x, 50, max_iters=10, init_centroids=c0))
    assert ids.is_cuda and c.is_cuda and ids.device == x.device and c.device == x.device
    assert ids.dtype == torch.int32 and c.dtype == x.dtype and ids.shape == (2, 20000)
    if dtoh is not None:
        assert dtoh < x.numel() * x.element_size() // 100, f"{dtoh} bytes copied device -> host"
    # One assignment from the same centroids: the labels of the CPU backend (16-bit data is multiplied
    # with the centroids rounded to its type, so over many iterations on structureless data the
    # trajectories drift apart; the first assignment shows the kernels agree).
    first = fk.batch_kmeans_Euclid(x, 50, max_iters=1, init_centroids=c0)
    ref = fk.batch_kmeans_Euclid(x.cpu(), 50, max_iters=1, init_centroids=c0.cpu())
    agree = (first[0].cpu() == ref[0]).float().mean().item()
    assert agree >= (0.999 if dtype == "float32" else 0.99)


def test_cuda_class_api_and_predict():
    x = torch.from_numpy(gauss((30000, 32))).cuda()
    model = fk.FlashKMeans(32, 64, niter=10).fit(x)
    assert model.centroids_b.is_cuda and model.cluster_ids_b.is_cuda
    labels = model.predict(x)
    assert labels.is_cuda and labels.shape == (30000,)
    cpu = model.predict(x.cpu())
    assert (labels.cpu() == cpu).float().mean().item() >= 0.999


def test_cuda_runs_on_the_current_stream():
    x = torch.from_numpy(gauss((1, 10000, 32))).cuda()
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        y = x * 1.0  # queued on s: the fit must see it finished
        ids, c, _ = fk.batch_kmeans_Euclid(y, 16, max_iters=5, init_centroids=y[:, :16].clone())
    s.synchronize()
    ref = fk.batch_kmeans_Euclid(x.cpu(), 16, max_iters=5, init_centroids=x[:, :16].cpu())
    assert (ids.cpu() == ref[0]).float().mean().item() >= 0.999


def test_cuda_sklearn_free_paths_reject_mixed_devices():
    x = torch.from_numpy(gauss((1, 1000, 8))).cuda()
    ids, c, _ = fk.batch_kmeans_Euclid(x, 4, max_iters=2, init_centroids=np.asarray(gauss((1, 4, 8))))
    assert c.is_cuda  # host init centroids are moved to the data's device


def test_cupy_if_importable():
    cp = pytest.importorskip("cupy")
    x = cp.asarray(gauss((1, 5000, 16)))
    ids, c, _ = fk.batch_kmeans_Euclid(x, 8, max_iters=5, init_centroids=x[:, :8].copy())
    assert isinstance(ids, cp.ndarray) and isinstance(c, cp.ndarray)


@pytest.mark.parametrize("order", ["flashkmeans, torch", "torch, flashkmeans"])
def test_import_order_with_torch(order):
    """flashkmeans imported before or after torch, and both used on the GPU, in a fresh process.
    (A module built by a toolchain that links the C++ runtime statically exported its symbols, and
    importing it first crashed torch's import; the module now exports only its entry point.)"""
    import subprocess
    import sys
    code = (f"import {order}\n"
            "x = torch.randn(1, 2000, 16, device='cuda')\n"
            "ids, c, n = flashkmeans.batch_kmeans_Euclid(x, 8, max_iters=3)\n"
            "assert ids.is_cuda and c.shape == (1, 8, 16), (ids.device, c.shape)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr[-2000:]}"
