"""Times flashkmeans against the peers that are importable, on the same data and initial centroids
and the same fixed number of iterations (tol = 0).

CPU (--device cpu): scikit-learn (Lloyd, n_init=1, one fit per batch) and faiss-cpu. GPU
(--device cuda): naive batched PyTorch (distances by a matrix product, argmin, scatter-add update).
Prints, per method, the mean time +- std over --runs timed fits (after --warmup untimed ones), the
iterations, the inertia (in float64, of the points assigned to the method's final centroids), ms per iteration and the
speedup of flashkmeans over each peer.

    python -m flashkmeans.benchmark --n 50000 --d 128 --k 256 --max-iters 20 --runs 5 --warmup 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

import numpy as np

import flashkmeans


def _inertia(x: np.ndarray, labels: np.ndarray, centroids: np.ndarray) -> float:
    """Sum over all batches and points of ||x - c[label]||^2, in float64."""
    total = 0.0
    for b in range(x.shape[0]):
        c = centroids[b].astype(np.float64)
        for s in range(0, x.shape[1], 8192):
            diff = x[b, s:s + 8192].astype(np.float64) - c[labels[b, s:s + 8192]]
            total += float(np.einsum("ij,ij->", diff, diff))
    return total


def _time(fn: Callable[[], object], runs: int, warmup: int, sync: Callable[[], None] = lambda: None):
    for _ in range(warmup):
        fn()
    sync()
    times, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - t)
    return times, out


def _naive_torch(x, c0, iters: int):
    """Batched Lloyd in plain PyTorch: the (B, N, K) score matrix, argmin, scatter-add update."""
    import torch
    c = c0.clone()
    b, n, d = x.shape
    k = c.shape[1]
    labels = None
    for _ in range(iters):
        scores = (c * c).sum(-1)[:, None, :] - 2 * torch.bmm(x, c.transpose(1, 2))
        labels = scores.argmin(-1)
        sums = torch.zeros(b, k, d, device=x.device, dtype=torch.float32)
        sums.scatter_add_(1, labels[..., None].expand(b, n, d), x.float())
        counts = torch.zeros(b, k, device=x.device, dtype=torch.float32)
        counts.scatter_add_(1, labels, torch.ones_like(labels, dtype=torch.float32))
        new = sums / counts.clamp_min(1)[..., None]
        c = torch.where(counts[..., None] > 0, new, c.float()).to(x.dtype)
    return labels, c


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m flashkmeans.benchmark", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50_000, help="points per batch")
    ap.add_argument("--d", type=int, default=128, help="dimensions")
    ap.add_argument("--k", type=int, default=256, help="clusters")
    ap.add_argument("--max-iters", type=int, default=20, help="iterations (all run: tol = 0)")
    ap.add_argument("--batch", type=int, default=1, help="independent problems B")
    ap.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default="float32",
                    help="flashkmeans' input dtype (CPU peers get the same values in float32)")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda[:i] (needs torch)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads for every method (0: all)")
    ap.add_argument("--skip-sklearn", action="store_true")
    ap.add_argument("--skip-faiss", action="store_true")
    ap.add_argument("--skip-torch", action="store_true")
    a = ap.parse_args(argv)
    if min(a.n, a.d, a.k, a.max_iters, a.batch, a.runs) < 1 or a.warmup < 0 or a.k > a.n:
        ap.error("--n, --d, --k, --max-iters, --batch, --runs must be >= 1, --warmup >= 0 and --k <= --n")

    rng = np.random.default_rng(0)
    x32 = rng.standard_normal((a.batch, a.n, a.d), dtype=np.float32)
    c0 = np.stack([x32[b][rng.choice(a.n, a.k, replace=False)] for b in range(a.batch)])
    gpu = a.device != "cpu"
    print(f"flashkmeans {flashkmeans.__version__} benchmark: B={a.batch} N={a.n} D={a.d} K={a.k} "
          f"iters={a.max_iters} dtype={a.dtype} device={a.device} runs={a.runs} warmup={a.warmup}")
    results: Dict[str, dict] = {}

    if gpu:
        try:
            import torch
        except ImportError:
            print("error: --device cuda needs torch", file=sys.stderr)
            return 2
        if not torch.cuda.is_available():
            print("error: torch sees no CUDA device", file=sys.stderr)
            return 2
        dev = torch.device(a.device)
        tdt = getattr(torch, a.dtype)
        x = torch.from_numpy(x32).to(dev, tdt)
        c = torch.from_numpy(c0).to(dev, tdt)

        def sync():
            torch.cuda.synchronize(dev)

        def host(t):
            return t.float().cpu().numpy()

        if flashkmeans.cuda_available():
            ts, (ids, cen, _) = _time(lambda: flashkmeans.batch_kmeans_Euclid(x, a.k, a.max_iters, 0.0, c),
                                      a.runs, a.warmup, sync)
            results["flashkmeans"] = dict(times=ts, centroids=host(cen))
        else:
            print("note: this flashkmeans build has no CUDA backend (or sees no device): flashkmeans skipped")
        if not a.skip_torch:
            ts, (ids, cen) = _time(lambda: _naive_torch(x, c, a.max_iters), a.runs, a.warmup, sync)
            results["torch (naive)"] = dict(times=ts, centroids=host(cen))
        xin = host(x)
    else:
        xin = x32
        if a.dtype == "float32":
            xf = x32
        elif a.dtype == "float16":
            xf = x32.astype(np.float16)
        else:
            try:
                import ml_dtypes
            except ImportError:
                print("error: --dtype bfloat16 on the CPU needs ml_dtypes (pip install ml_dtypes)", file=sys.stderr)
                return 2
            xf = x32.astype(ml_dtypes.bfloat16)
        if a.dtype != "float32":
            xin = xf.astype(np.float32)  # the values every method sees
        ts, (ids, cen, _) = _time(lambda: flashkmeans.batch_kmeans_Euclid(xf, a.k, a.max_iters, 0.0, c0,
                                                                          n_threads=a.threads), a.runs, a.warmup)
        results["flashkmeans"] = dict(times=ts, centroids=np.asarray(cen, dtype=np.float32))
        limits = None
        try:
            from threadpoolctl import threadpool_limits
            if a.threads:
                limits = threadpool_limits(limits=a.threads)
        except ImportError:
            pass
        if not a.skip_sklearn:
            try:
                from sklearn.cluster import KMeans
            except ImportError:
                print("note: scikit-learn not importable: skipped")
            else:
                def sk():
                    fits = [KMeans(n_clusters=a.k, init=c0[b], n_init=1, max_iter=a.max_iters, tol=0.0,
                                   algorithm="lloyd").fit(xin[b]) for b in range(a.batch)]
                    return (np.stack([f.labels_ for f in fits]), np.stack([f.cluster_centers_ for f in fits]),
                            [f.n_iter_ for f in fits])
                ts, (ids, cen, its) = _time(sk, a.runs, a.warmup)
                results["scikit-learn"] = dict(times=ts, centroids=cen, iters=max(its))
        if not a.skip_faiss:
            try:
                import faiss
            except ImportError:
                print("note: faiss not importable: skipped")
            else:
                if a.threads:
                    faiss.omp_set_num_threads(a.threads)

                def fa():
                    cs = []
                    for b in range(a.batch):
                        km = faiss.Kmeans(a.d, a.k, niter=a.max_iters, seed=0, max_points_per_centroid=1 << 30,
                                          min_points_per_centroid=1)
                        km.train(np.ascontiguousarray(xin[b]), init_centroids=c0[b])
                        cs.append(km.centroids.copy())
                    return np.stack(cs)
                ts, cen = _time(fa, a.runs, a.warmup)
                results["faiss-cpu"] = dict(times=ts, centroids=cen)
        if limits is not None:
            limits.restore_original_limits()

    if not results:
        print("nothing was timed")
        return 1
    ref = results.get("flashkmeans")
    print(f"{'method':<16} {'time (ms)':>20} {'iters':>6} {'ms/iter':>9} {'inertia':>16} {'speedup':>9}")
    for name, r in results.items():
        ms = [1e3 * t for t in r["times"]]
        mean = statistics.mean(ms)
        std = statistics.stdev(ms) if len(ms) > 1 else 0.0
        it = r.get("iters", a.max_iters)
        cen = np.asarray(r["centroids"], dtype=np.float32)
        labels = np.stack([_assign(xin[b], cen[b]) for b in range(a.batch)])
        inertia = _inertia(xin, labels, cen)
        speed = "" if name == "flashkmeans" or ref is None else \
            f"{mean / (1e3 * statistics.mean(ref['times'])):.2f}x"
        print(f"{name:<16} {mean:>12.2f} +- {std:<5.2f} {it:>6} {mean / it:>9.3f} {inertia:>16.6g} {speed:>9}")
    if ref is not None and len(results) > 1:
        print("speedup: the peer's mean time / flashkmeans' mean time (> 1: flashkmeans is faster)")
    return 0


def _assign(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Labels of x against c (the compiled core's assignment), for peers that return centroids only."""
    from ._arrays import prepare
    from ._kmeans import predict_core
    labels, _ = predict_core(prepare(np.ascontiguousarray(x, dtype=np.float32)),
                             np.ascontiguousarray(c, dtype=np.float32), metric="euclidean")
    return labels


if __name__ == "__main__":
    sys.exit(main())
