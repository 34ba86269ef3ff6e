#!/usr/bin/env python3
"""How many points change cluster in each Lloyd iteration: the work an incremental centroid update
(add the rows that joined a cluster, subtract those that left) would read, against the whole data
set read by a full update. Standard normal data and K random rows as the initial centroids, as
bench/bench_gpu.py draws them; float32 scores, float64 sums.

  python3 bench/moved_sim.py N D K ITERS
"""
import sys

import numpy as np


def moved_fractions(n, d, k, iters, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d), dtype=np.float32)
    c = x[rng.choice(n, k, replace=False)].copy()
    labels, out = None, []
    for _ in range(iters):
        best = np.empty(n, np.int64)
        for s in range(0, n, 65536):  # blocks of rows: the score matrix stays small
            best[s:s + 65536] = ((c * c).sum(1)[None, :] - 2 * x[s:s + 65536] @ c.T).argmin(1)
        if labels is not None:
            out.append(float((best != labels).mean()))
        labels = best
        counts = np.bincount(labels, minlength=k)
        sums = np.zeros((k, d), np.float64)
        np.add.at(sums, labels, x)
        full = counts > 0
        c[full] = (sums[full] / counts[full, None]).astype(np.float32)
    return out


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    n, d, k, iters = map(int, sys.argv[1:])
    fr = moved_fractions(n, d, k, iters)
    print(f"{n} x {d}, K = {k}: points moved in iterations 2..{iters}: " + " ".join(f"{m:.3f}" for m in fr))
    print(f"mean {np.mean(fr):.3f}")


if __name__ == "__main__":
    main()
