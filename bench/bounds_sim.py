#!/usr/bin/env python3
"""How many points per-point distance bounds (Hamerly's: an upper bound on the distance to the own
centroid, a lower bound on the distance to the second closest, both moved by the centroid shifts)
would let a Lloyd iteration skip, against how many points actually change cluster. Standard normal
data and K random rows as the initial centroids, as bench/bench_gpu.py draws them; float32.

  python3 bench/bounds_sim.py N D K ITERS
"""
import sys

import numpy as np


def simulate(n, d, k, iters, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d), dtype=np.float32)
    c = x[rng.choice(n, k, replace=False)].copy()
    xx = (x * x).sum(1)
    upper = np.full(n, np.inf, np.float32)
    lower = np.zeros(n, np.float32)
    labels = np.zeros(n, np.int64)
    evaluated, moved = [], []
    for it in range(iters):
        active = np.nonzero(upper > lower)[0] if it else np.arange(n)
        evaluated.append(len(active) / n)
        before = labels.copy()
        cc = (c * c).sum(1)
        for s in range(0, len(active), 65536):  # blocks of rows: the distance matrix stays small
            idx = active[s:s + 65536]
            dist = np.maximum(xx[idx, None] + cc[None, :] - 2 * x[idx] @ c.T, 0)
            two = np.sort(np.partition(dist, 1, axis=1)[:, :2], axis=1)
            labels[idx] = dist.argmin(1)
            upper[idx], lower[idx] = np.sqrt(two[:, 0]), np.sqrt(two[:, 1])
        if it:
            moved.append(float((labels != before).mean()))
        counts = np.bincount(labels, minlength=k)
        sums = np.zeros((k, d))
        np.add.at(sums, labels, x)
        new = c.copy()
        full = counts > 0
        new[full] = (sums[full] / counts[full, None]).astype(np.float32)
        shift = np.sqrt(((new - c) ** 2).sum(1))
        c = new
        top = shift.argmax()
        second = np.partition(shift, -2)[-2] if k > 1 else 0.0
        upper += shift[labels]
        lower -= np.where(labels == top, second, shift[top])  # the largest shift of another centroid
    return evaluated, moved


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    n, d, k, iters = map(int, sys.argv[1:])
    evaluated, moved = simulate(n, d, k, iters)
    print(f"{n} x {d}, K = {k}: share of points the bounds cannot skip, iterations 1..{iters}: "
          + " ".join(f"{e:.2f}" for e in evaluated) + f" (mean {np.mean(evaluated):.3f})")
    print("share of points that changed cluster, iterations 2..: " + " ".join(f"{m:.3f}" for m in moved))


if __name__ == "__main__":
    main()
