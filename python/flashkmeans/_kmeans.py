"""The seed's API: batch_kmeans_Euclid / _Cosine / _Dot and the FlashKMeans class, on the compiled core."""

from __future__ import annotations

import operator
import sys
import time
from typing import Any, Callable, List, Optional, Tuple

import numpy as np

from . import _arrays as A
from . import _core

_METRICS = ("euclidean", "cosine", "dot")
_ALGORITHMS = ("auto", "lloyd", "elkan")


def _index(value: Any, name: str) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None


def _check_choice(value: Any, name: str, choices: Tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"Unknown {name} {value!r}: expected one of {', '.join(repr(c) for c in choices)}")
    return value


def _seed(seed: Optional[int]) -> int:
    """A 64-bit seed for the core; None draws one from NumPy's global generator (np.random.seed
    makes such runs repeatable)."""
    if seed is None:
        return int(np.random.randint(0, np.iinfo(np.int64).max, dtype=np.int64))
    s = _index(seed, "seed")
    if s < 0 or s >= 1 << 64:
        raise ValueError(f"seed = {s} is not allowed: expected 0 <= seed < 2**64")
    return s


def progress_printer(metric: str, batches: int, start: Optional[float] = None,
                     file: Any = None) -> Callable[[int, int, float, float, int], None]:
    """The callback behind verbose=True: one line per iteration (and per batch when B > 1) with the
    centroid shift, the inertia against the updated centroids, the points that changed label and the
    time since the fit started. The line starts as the seed's does: 'Iter {it}, center shift: ...'."""
    t0 = time.perf_counter() if start is None else start
    tag = " (dot)" if metric == "dot" else ""

    def report(batch: int, iteration: int, shift: float, inertia: float, changed: int) -> None:
        where = f"[batch {batch}] " if batches > 1 else ""
        print(f"{where}Iter {iteration}{tag}, center shift: {shift:.6f}, inertia: {inertia:.6f}, "
              f"changed: {changed}, elapsed: {time.perf_counter() - t0:.3f}s", file=file or sys.stdout, flush=True)

    return report


class FitOutput:
    """What one call of the core's fit produced, in the input's framework and on its device."""

    __slots__ = ("labels", "centroids", "distances", "n_iter", "inertia", "converged")

    def __init__(self, labels, centroids, distances, n_iter, inertia, converged):
        self.labels, self.centroids, self.distances = labels, centroids, distances
        self.n_iter: List[int] = n_iter
        self.inertia: List[float] = inertia
        self.converged: List[bool] = converged


def fit_core(x: A.Prepared, n_clusters: int, *, max_iter: int, tol: float, metric: str, init: str = "random",
             init_centroids: Any = None, seed: int = 0, empty_clusters: str = "relocate", algorithm: str = "auto",
             n_threads: int = 0, final_assignment: bool = True, precision: str = "exact",
             on_iteration: Optional[Callable] = None, distances: bool = False) -> FitOutput:
    """Runs the compiled fit on a prepared (N, D) or (B, N, D) input; outputs are allocated by the
    input's framework on its device, labels (N,) / (B, N) int32 and centroids (K, D) / (B, K, D) float32."""
    shape = x.shape
    if len(shape) not in (2, 3):
        raise ValueError(f"x has {len(shape)} dimensions (shape {shape}): expected (N, D) or (B, N, D)")
    k = _index(n_clusters, "n_clusters")
    n, d = shape[-2], shape[-1]
    if k < 1:
        raise ValueError(f"n_clusters = {k} is not allowed: expected n_clusters >= 1")
    if k > n:
        raise ValueError(f"n_clusters = {k} is larger than the number of points N = {n}: expected 1 <= n_clusters <= N")
    lead = shape[:-2]
    ic = None
    if init_centroids is not None:
        ic = A.like(x, init_centroids, "init_centroids")
    labels = A.empty(x, lead + (n,), "int32")
    cent = A.empty(x, lead + (k, d), "float32")
    dist = A.empty(x, lead + (n,), "float32") if distances else None
    n_iter, inertia, converged = _core.fit(
        x.array, x.bf16_bits, labels, cent, dist, k, _index(max_iter, "max_iter"), float(tol), metric, init,
        None if ic is None else ic.array, False if ic is None else ic.bf16_bits, seed, empty_clusters, algorithm,
        _index(n_threads, "n_threads"), bool(final_assignment), precision, A.cuda_stream(x), on_iteration)
    return FitOutput(labels, cent, dist, list(n_iter), list(inertia), list(converged))


def predict_core(x: A.Prepared, centroids: Any, *, metric: str, n_threads: int = 0, precision: str = "exact",
                 distances: bool = False):
    """Labels (and, when asked, each point's distance) of x against centroids (K, D) or (B, K, D),
    in x's framework and on its device."""
    shape = x.shape
    if len(shape) not in (2, 3):
        raise ValueError(f"x has {len(shape)} dimensions (shape {shape}): expected (N, D) or (B, N, D)")
    c = A.like(x, centroids, "centroids")
    labels = A.empty(x, shape[:-1], "int32")
    dist = A.empty(x, shape[:-1], "float32") if distances else None
    _core.predict(x.array, x.bf16_bits, c.array, c.bf16_bits, labels, dist, metric, _index(n_threads, "n_threads"),
                  precision, A.cuda_stream(x))
    return labels, dist


def _batch_kmeans(metric: str, x: Any, n_clusters: int, max_iters: int, tol: float, init_centroids: Any,
                  verbose: bool, seed: Optional[int], algorithm: str, n_threads: int, precision: str):
    xp = A.prepare(x)
    if xp.ndim != 3:
        raise ValueError(f"x has shape {xp.shape}: expected (B, N, D) (for (N, D) data pass x[None], "
                         "or use FlashKMeans, which takes both)")
    _check_choice(algorithm, "algorithm", _ALGORITHMS)
    b = xp.shape[0]
    if init_centroids is not None:
        ic = A.like(xp, init_centroids, "init_centroids")
        k = _index(n_clusters, "n_clusters")
        init_centroids = A.reshape(ic, (b, k, xp.shape[2]), "init_centroids")
    out = fit_core(xp, n_clusters, max_iter=max_iters, tol=tol, metric=metric,
                   init="random" if init_centroids is None else "given", init_centroids=init_centroids,
                   seed=_seed(seed), empty_clusters="keep", algorithm=algorithm, n_threads=n_threads,
                   final_assignment=False, precision=precision,
                   on_iteration=progress_printer(metric, b) if verbose else None)
    return out.labels, A.as_out_dtype(xp, out.centroids), max(out.n_iter)


_SEED_DOC = """Batched k-means with the {what}, every batch of x clustered independently.

    Parameters
    ----------
    x : array (B, N, D)
        float32, float16 or bfloat16 (float64 is computed in float32): a NumPy array, a torch or
        CuPy tensor on the CPU or a CUDA device, or any DLPack producer. Read in place, whatever its
        strides. (N, D) data: pass x[None], or use FlashKMeans.
    n_clusters : int
        K, 1 <= K <= N.
    max_iters : int
        Iterations (assignment + update) at most.
    tol : float
        Stop once the largest centroid move of an iteration, max ||c_new - c_old||_2, is below tol
        (absolute). 0 runs all max_iters; each batch stops on its own.
    init_centroids : array, optional
        Initial centroids, reshaped to (B, K, D). Default: per batch, K rows of x drawn uniformly
        with replacement.
    verbose : bool
        Print one line per iteration: shift, inertia, points that changed label, elapsed time.
    seed : int, optional (keyword)
        Seeds the random initialisation; None draws a seed from NumPy's global generator.
    algorithm : {{'auto', 'lloyd', 'elkan'}} (keyword)
        How the assignment is computed; all give Lloyd's labels.
    n_threads : int (keyword)
        CPU threads, 0 = all cores; results do not depend on it.
    precision : {{'exact', 'tf32'}} (keyword)
        How a CUDA device multiplies float32 data.
    compiled, max_mem_gb, use_heuristic : (keyword)
        Accepted for compatibility with flash-kmeans-mlx and Flash-KMeans; no effect (memory here
        never grows with N x K).

    Returns
    -------
    cluster_ids : int32 array (B, N)
        Labels of the last assignment.
    centers : array (B, K, D), in x's dtype
        When max_iters was reached, the last updated centroids (the labels are one update behind);
        when a batch stopped on tol, the centroids its labels were assigned against.{extra}
    n_iters : int
        Iterations run (the largest over the batches), counting the one that met tol.

    Results are of x's kind and on x's device (NumPy in, NumPy out; a CUDA tensor in, CUDA tensors
    out, with no copy through the host).
    """


def batch_kmeans_Euclid(x: Any, n_clusters: int, max_iters: int = 100, tol: float = 0.0, init_centroids: Any = None,
                        verbose: bool = False, *, seed: Optional[int] = None, algorithm: str = "auto",
                        n_threads: int = 0, precision: str = "exact", compiled: bool = True, max_mem_gb: float = 0,
                        use_heuristic: bool = True):
    return _batch_kmeans("euclidean", x, n_clusters, max_iters, tol, init_centroids, verbose, seed, algorithm,
                         n_threads, precision)


def batch_kmeans_Cosine(x: Any, n_clusters: int, max_iters: int = 100, tol: float = 0.0, init_centroids: Any = None,
                        verbose: bool = False, *, seed: Optional[int] = None, algorithm: str = "auto",
                        n_threads: int = 0, precision: str = "exact", compiled: bool = True, max_mem_gb: float = 0,
                        use_heuristic: bool = True):
    return _batch_kmeans("cosine", x, n_clusters, max_iters, tol, init_centroids, verbose, seed, algorithm,
                         n_threads, precision)


def batch_kmeans_Dot(x: Any, n_clusters: int, max_iters: int = 100, tol: float = 0.0, init_centroids: Any = None,
                     verbose: bool = False, *, seed: Optional[int] = None, algorithm: str = "auto",
                     n_threads: int = 0, precision: str = "exact", compiled: bool = True, max_mem_gb: float = 0,
                     use_heuristic: bool = True):
    return _batch_kmeans("dot", x, n_clusters, max_iters, tol, init_centroids, verbose, seed, algorithm,
                         n_threads, precision)


batch_kmeans_Euclid.__doc__ = _SEED_DOC.format(
    what="Euclidean metric (squared L2 distance; the update is the mean of the members)", extra="")
batch_kmeans_Cosine.__doc__ = _SEED_DOC.format(
    what="cosine metric (points and centroids L2-normalised; label = argmax of the dot product; the update\n    "
         "is the normalised mean)", extra="\n        Unit vectors.")
batch_kmeans_Dot.__doc__ = _SEED_DOC.format(
    what="dot-product metric (label = argmax of the raw inner product x.c; points are not normalised;\n    "
         "the update is the normalised mean of the members)",
    extra="\n        Unit vectors after the first update (initial centroids are used as given).")


class FlashKMeans:
    """Batched k-means with a FAISS-like interface, as flash-kmeans-mlx's and Flash-KMeans' class.

    Parameters
    ----------
    d : int
        Dimension of the points.
    k : int
        Number of clusters.
    niter : int, default 25
        Iterations at most.
    tol : float, default 1e-8
        Stop once the largest centroid move of an iteration, max ||c_new - c_old||_2, is below tol
        (absolute; each batch stops on its own).
    seed : int, default 0
        Seeds the random initialisation (K rows drawn with replacement, per batch).
    verbose : bool, default False
        Print one line per iteration: shift, inertia, labels changed, elapsed time.
    dtype : None, 'float32', 'float16', 'bfloat16' (or a NumPy / torch dtype)
        Compute dtype the data is cast to; None keeps the data's own.
    metric : {'euclidean', 'cosine', 'dot'}, default 'euclidean'
    algorithm : {'auto', 'lloyd', 'elkan'} (keyword)
        How the assignment is computed; all give Lloyd's labels.
    n_threads : int (keyword)
        CPU threads, 0 = all cores.
    precision : {'exact', 'tf32'} (keyword)
        How a CUDA device multiplies float32 data.
    device : None or a torch device string (keyword)
        None computes where the data lives; 'cpu' or 'cuda[:i]' moves the data there first (through
        torch for a GPU).
    compiled, max_mem_gb, use_triton, chunk_size_data, chunk_size_centroids, chunk_size_data_cpu : (keyword)
        Accepted for compatibility with flash-kmeans-mlx and Flash-KMeans; no effect.

    Attributes (after a fit)
    ------------------------
    centroids_b : array (B, K, D)
        Centroids per batch (B = 1 for (N, D) data), in the compute dtype, of the data's kind and device.
    cluster_ids_b : int32 array (B, N)
        Labels of the fit.
    centroids : array (K, D) for (N, D) data, else (B, K, D)
    n_iter : int
        Iterations run (the largest over the batches).
    inertia_b : list of float
        Per batch: the sum of the points' distances to the returned centroids under the metric
        (squared L2; 1 - cos; -x.c).

    Labels follow the seed's convention: when niter is reached they come from the last assignment,
    made before the last update of the returned centroids. predict() assigns against the returned
    centroids.

    Examples
    --------
    >>> import numpy as np
    >>> from flashkmeans import FlashKMeans
    >>> x = np.random.default_rng(0).standard_normal((1000, 16), dtype=np.float32)
    >>> model = FlashKMeans(d=16, k=10, niter=20).fit(x)
    >>> model.centroids.shape, model.predict(x).shape
    ((10, 16), (1000,))
    """

    def __init__(self, d: int, k: int, niter: int = 25, tol: float = 1e-8, seed: int = 0, verbose: bool = False,
                 dtype: Any = None, metric: str = "euclidean", *, algorithm: str = "auto", n_threads: int = 0,
                 precision: str = "exact", device: Any = None, compiled: bool = True, max_mem_gb: float = 0,
                 use_triton: bool = True, chunk_size_data: int = 32768, chunk_size_centroids: int = 1024,
                 chunk_size_data_cpu: int = 1048576):
        self.d = _index(d, "d")
        self.k = _index(k, "k")
        self.niter = _index(niter, "niter")
        self.tol = float(tol)
        self.seed = _seed(seed)
        self.verbose = bool(verbose)
        self.dtype = dtype
        self.metric = _check_choice(metric, "metric", _METRICS)
        self.algorithm = _check_choice(algorithm, "algorithm", _ALGORITHMS)
        self.n_threads = _index(n_threads, "n_threads")
        self.precision = _check_choice(precision, "precision", ("exact", "tf32"))
        self.device = device
        self.centroids_b = None
        self.cluster_ids_b = None
        self.n_iter = 0
        self.inertia_b: List[float] = []

    def __repr__(self) -> str:
        return (f"FlashKMeans(d={self.d}, k={self.k}, niter={self.niter}, tol={self.tol}, seed={self.seed}, "
                f"metric={self.metric!r})")

    def _prepare(self, data: Any) -> A.Prepared:
        if self.device is not None:
            data = _to_device(data, self.device)
        p = A.cast(A.prepare(data, "data"), self.dtype)
        if p.ndim not in (2, 3):
            raise ValueError(f"data has shape {p.shape}: expected 2-D (N, D) or 3-D (B, N, D)")
        if p.shape[-1] != self.d:
            raise ValueError(f"data has D = {p.shape[-1]} columns: this model was built with d = {self.d}")
        return p

    def fit(self, data: Any) -> "FlashKMeans":
        """Clusters data (N, D) or (B, N, D) (each batch independently); returns self."""
        p = self._prepare(data)
        b = p.shape[0] if p.ndim == 3 else 1
        x3 = p if p.ndim == 3 else A.reshape(p, (1,) + p.shape, "data")
        out = fit_core(x3, self.k, max_iter=self.niter, tol=self.tol, metric=self.metric, init="random",
                       seed=self.seed, empty_clusters="keep", algorithm=self.algorithm, n_threads=self.n_threads,
                       final_assignment=False, precision=self.precision,
                       on_iteration=progress_printer(self.metric, b) if self.verbose else None)
        self.centroids_b = A.as_out_dtype(p, out.centroids)
        self.cluster_ids_b = out.labels
        self.n_iter = max(out.n_iter)
        self.inertia_b = out.inertia
        self._two_d = p.ndim == 2
        return self

    def train(self, data: Any) -> None:
        """Clusters data (N, D) or (B, N, D), as fit, and returns None (FAISS' spelling)."""
        self.fit(data)

    def fit_predict(self, data: Any):
        """Clusters data and returns the fit's labels: (N,) for (N, D) data, (B, N) for (B, N, D)."""
        self.fit(data)
        return self.cluster_ids_b[0] if self._two_d else self.cluster_ids_b

    def predict(self, data: Any):
        """Labels of data (N, D) or (B, N, D) against the fitted centroids: (N,) or (B, N). The batch
        count must be the fit's (1 for (N, D) data)."""
        if self.centroids_b is None:
            raise RuntimeError("Model not trained. Call train() or fit() first.")
        p = self._prepare(data)
        b = p.shape[0] if p.ndim == 3 else 1
        fit_b = int(self.centroids_b.shape[0])
        if b != fit_b:
            raise ValueError(f"data has batch size {b} but the model was fitted with batch size {fit_b}")
        centroids = self.centroids_b if p.ndim == 3 else self.centroids_b[0]
        labels, _ = predict_core(p, centroids, metric=self.metric, n_threads=self.n_threads,
                                 precision=self.precision)
        return labels

    @property
    def centroids(self):
        """The fitted centroids: (K, D) after a fit on (N, D) data, else (B, K, D)."""
        if self.centroids_b is None:
            return None
        return self.centroids_b[0] if getattr(self, "_two_d", False) else self.centroids_b


def _to_device(data: Any, device: Any):
    """data moved to a torch device ('cpu' keeps NumPy input as NumPy)."""
    name = str(device)
    if name == "cpu" and not A._is_torch(data) and not A._is_cupy(data):
        return data
    try:
        import torch
    except ImportError:
        raise ValueError(f"device={device!r} needs torch to move the data") from None
    if A._is_torch(data):
        return data.to(device)
    p = A.prepare(data, "data")
    return A.like(A.Prepared(torch.empty(0, device=device), "torch", False, name.startswith("cuda"), None),
                  p.array if p.kind != "numpy" else A.to_numpy(p), "data").array
