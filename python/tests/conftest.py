"""Shared helpers: optional frameworks, data sets and a NumPy reference of the seed's loop."""

import numpy as np
import pytest

import flashkmeans

try:
    import torch
except ImportError:  # torch is optional: its tests skip
    torch = None

try:
    import ml_dtypes
except ImportError:
    ml_dtypes = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not importable")
needs_ml_dtypes = pytest.mark.skipif(ml_dtypes is None, reason="ml_dtypes is not importable")
needs_cuda = pytest.mark.skipif(
    torch is None or not torch.cuda.is_available() or not flashkmeans.cuda_available(),
    reason="needs torch with a CUDA device and a flashkmeans build with the CUDA backend")


def gauss(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def blobs(n, d, k, seed=0, spread=0.05):
    """n points around k well-separated centres (labels are never near ties)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, d)) * 10
    y = rng.integers(0, k, n)
    return (centres[y] + spread * rng.standard_normal((n, d))).astype(np.float32), y


def normalize(a):
    return a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)


def seed_reference(x, c0, iters, tol, metric):
    """The seed's loop for one batch, in float64: returns (labels, centroids, n_iters) with its
    return convention (early stop: the centroids before the last update)."""
    x = np.asarray(x, np.float64)
    c = np.asarray(c0, np.float64)
    if metric == "cosine":
        x, c = normalize(x), normalize(c)
    for it in range(1, iters + 1):
        if metric == "euclidean":
            labels = np.argmin((c * c).sum(1)[None] - 2 * x @ c.T, axis=1)
        else:
            labels = np.argmax(x @ c.T, axis=1)
        new = c.copy()
        for j in range(len(c)):
            if np.any(labels == j):
                new[j] = x[labels == j].mean(0)
        if metric != "euclidean":
            new = normalize(new)
        shift = np.max(np.linalg.norm(new - c, axis=1))
        if shift < tol:
            return labels, c, it
        c = new
    return labels, c, iters
