"""flashkmeans: exact batched k-means (euclidean, cosine, dot) on CPUs and NVIDIA GPUs.

Three ways in:

- the functional API of flash-kmeans-mlx / Flash-KMeans: ``batch_kmeans_Euclid``,
  ``batch_kmeans_Cosine``, ``batch_kmeans_Dot`` on (B, N, D) data, returning
  ``(cluster_ids, centers, n_iters)``;
- the class ``FlashKMeans(d, k, niter, tol, ...)`` with fit / train / predict / fit_predict on
  (N, D) or (B, N, D) data;
- ``KMeans``, a scikit-learn estimator (needs scikit-learn).

Arrays: NumPy, PyTorch and CuPy tensors, or any DLPack producer, on the CPU or a CUDA device, in
float32, float16 or bfloat16; read in place, results of the same kind on the same device.
"""

from ._core import __version__, cpu_isa, cuda_available
from ._kmeans import FlashKMeans, batch_kmeans_Cosine, batch_kmeans_Dot, batch_kmeans_Euclid

__all__ = [
    "FlashKMeans",
    "batch_kmeans_Cosine",
    "batch_kmeans_Dot",
    "batch_kmeans_Euclid",
    "cpu_isa",
    "cuda_available",
    "__version__",
]


def __getattr__(name):
    # The estimator needs scikit-learn, which is optional: imported on first use (and so not in
    # __all__, which would make `from flashkmeans import *` need scikit-learn).
    if name == "KMeans":
        try:
            from ._sklearn import KMeans
        except ImportError as e:
            raise ImportError("flashkmeans.KMeans needs scikit-learn: pip install 'flashkmeans[sklearn]' "
                              f"({e})") from e
        globals()["KMeans"] = KMeans
        return KMeans
    raise AttributeError(f"module 'flashkmeans' has no attribute {name!r}")
