#!/usr/bin/env python3
"""CPU benchmark: flashkmeans (through the C++ runner build/bench/fk_run) beside scikit-learn (Lloyd) and
faiss-cpu, in one run, on the same data, the same initial centroids and the same fixed iterations (tol = 0);
the peers are set up as ../shared/bench/peers_cpu.py does. Times are medians of --runs rounds, each round
timing every method in turn (a slow spell of a shared machine falls on all of them), each right after its
own warm-up (two fits, and fits for 0.2 s at least): one fit a round, or for fits of a few milliseconds the
median of ~0.1 s of fits;
correctness is computed afterwards in numpy/float64, outside the timings. Prints JSON lines as it
goes, then a Markdown table.

Agreement is reported against two references started from the same centroids: scikit-learn on float64 data
("sk64": Lloyd in float64, the exact trajectory) and scikit-learn on the float32 data it is timed on ("sk32").
Over 20 iterations on structureless Gaussian data a single float32 near-tie flipped early moves a centroid
and the flips cascade, so two correct float32 implementations can drift apart; the float64 run says which
one stayed on the exact trajectory.
  python3 bench/bench_cpu.py [--configs 0,2 | --configs 20000,64,100,10 ...] [--threads T] [--runs R]
                             [--algorithms "automatic lloyd"] [--json out.jsonl] [--runner PATH]"""
import argparse, datetime, json, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CFGS = [(5_000, 64, 50, 10), (50_000, 128, 256, 20), (100_000, 128, 1000, 20), (70_000, 784, 10, 20)]  # N, D, K, iters


def parse_configs(tokens):
    """Each token is either indices into CFGS ("0,2") or one config "N,D,K,iters"."""
    out = []
    for tok in tokens:
        vals = [int(v) for v in tok.split(",") if v.strip()]
        if len(vals) == 4 and max(vals) >= len(CFGS):  # 4 numbers that cannot all be indices
            out.append(tuple(vals))
        else:
            out += [CFGS[i] for i in vals]
    return out


ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--configs", nargs="+", default=[",".join(map(str, range(len(CFGS))))])
ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
ap.add_argument("--runs", type=int, default=3)
ap.add_argument("--algorithms", default="automatic lloyd", help="space-separated: automatic lloyd elkan")
ap.add_argument("--json", help="also write the JSON rows to this file")
ap.add_argument("--runner", default=str(REPO / "build" / "bench" / "fk_run"))
ap.add_argument("--data", choices=("gauss", "blobs"), default="gauss",
                help="gauss: standard normal, as MEASURED.md (no structure, the worst case for pruning); "
                     "blobs: K Gaussian blobs plus noise, structure like real embeddings")
ap.add_argument("--keep-blas-env", action="store_true", help="keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE")
args = ap.parse_args()

# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE may be set on this machine (tuned for some other CPU). OpenBLAS reads
# them once, when it is loaded, and a wrong core type or cache size makes it pick slower GEMM kernels, which
# would slow numpy and scikit-learn and flatter flashkmeans. So drop them before numpy is imported.
removed = [] if args.keep_blas_env else [v for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
                                         if os.environ.pop(v, None) is not None]
import numpy as np  # noqa: E402  (after the environment clean-up, on purpose)

notes = []
try:
    from threadpoolctl import threadpool_info, threadpool_limits
except ImportError:
    threadpool_info, threadpool_limits = (lambda: []), None
    notes.append("threadpoolctl not importable: scikit-learn's threads are not limited")
try:
    import sklearn
    from sklearn.cluster import KMeans
except ImportError:
    sklearn = None
    notes.append("scikit-learn not importable: skipped")
try:
    import faiss
    faiss.omp_set_num_threads(args.threads)
except ImportError:
    faiss = None
    notes.append("faiss not importable: skipped")

runner = Path(args.runner)
if not (runner.is_file() and os.access(runner, os.X_OK)):
    sys.exit(f"bench_cpu: no flashkmeans runner at {runner}.\nBuild it first, from {REPO}:\n"
             "  cmake -S . -B build && cmake --build build -j\n(or pass --runner PATH)")
algos = args.algorithms.split()
fk_methods = [f"flashkmeans_{a}" for a in algos]


def run_fk(xf, cf, n, d, k, it, runs, algos, labels_prefix=None):
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    if labels_prefix:
        env["FK_RUN_LABELS"] = labels_prefix
    cmd = [str(runner), xf, str(n), str(d), str(k), str(it), cf, str(runs), *algos]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode:
        sys.exit(f"bench_cpu: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr.strip()}")
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]


def inertia(x, labels, c):
    """Sum over the points of ||x_i - c[label_i]||^2, in float64, in chunks."""
    c, tot = np.asarray(c, np.float64), 0.0
    for s in range(0, len(x), 8192):
        diff = x[s:s + 8192].astype(np.float64) - c[labels[s:s + 8192]]
        tot += float(np.einsum("ij,ij->", diff, diff))
    return tot


with tempfile.TemporaryDirectory(prefix="bench_cpu_") as tmp:
    # A tiny fit first: checks that the runner works and gives the ISA for the header.
    rng = np.random.default_rng(0)
    rng.standard_normal((64, 4), dtype=np.float32).tofile(f"{tmp}/p.x")
    rng.standard_normal((2, 4), dtype=np.float32).tofile(f"{tmp}/p.c")
    isa = run_fk(f"{tmp}/p.x", f"{tmp}/p.c", 64, 4, 2, 1, 1, ["automatic"])[0]["isa"]

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"# flashkmeans CPU benchmark, {datetime.datetime.now().isoformat(timespec='seconds')}")
    print(f"CPU: {cpu}; threads used: {args.threads} of {os.cpu_count()}; flashkmeans ISA: {isa}; runs: {args.runs}; "
          f"data: {args.data}")
    print(f"numpy {np.__version__}, scikit-learn {sklearn.__version__ if sklearn else '-'}, "
          f"faiss {faiss.__version__ if faiss else '-'}; removed from env: {', '.join(removed) or 'none'}")
    for i in threadpool_info():
        if i["user_api"] == "blas":
            print(f"BLAS: {i['internal_api']} {i.get('version')} ({i.get('architecture', '?')}) {Path(i['filepath']).name}")
    for note in notes:
        print("note:", note)
    sys.stdout.flush()

    jf = open(args.json, "w") if args.json else None
    table = []
    for n, d, k, it in parse_configs(args.configs):
        rng = np.random.default_rng(0)
        if args.data == "blobs":
            centers = rng.standard_normal((k, d), dtype=np.float32)
            x = centers[rng.integers(0, k, n)] + np.float32(0.6) * rng.standard_normal((n, d), dtype=np.float32)
        else:
            x = rng.standard_normal((n, d), dtype=np.float32)
        c0 = x[rng.choice(n, k, replace=False)].copy()
        x.tofile(f"{tmp}/x"), c0.tofile(f"{tmp}/c0")
        res = {}  # method -> ms, n_iter, inertia (labels against the method's own centroids), labels
        limits = threadpool_limits(limits=args.threads) if threadpool_limits else None

        def fit_sklearn():
            return KMeans(n_clusters=k, init=c0, n_init=1, max_iter=it, tol=0.0, algorithm="lloyd").fit(x)

        def fit_faiss():
            fk = faiss.Kmeans(d, k, niter=it, seed=0, max_points_per_centroid=1 << 30, min_points_per_centroid=1)
            fk.train(x, init_centroids=c0)
            return fk

        def warm(fn):  # two fits, and fits for 0.2 s at least, as the flashkmeans runner warms up
            t = time.perf_counter()
            fn(), fn()
            while time.perf_counter() - t < 0.2:
                fn()

        # Rounds of one timed fit per method, interleaved, so that a slow spell of a shared machine
        # falls on every method alike; every method warms up right before its timed fit.
        times = {m: [] for m in fk_methods + ["sklearn_lloyd", "faiss_cpu"]}
        km = fkm = fk_last = None
        # Fits of a few milliseconds are timed several to a round (the round's median), so that one
        # hiccup of the machine does not make a round: about 0.1 s of fits at 50 GFLOP/s.
        reps = max(1, min(20, int(0.1 / (2.0 * n * k * d * it / 50e9))))

        def timed_median(fn):
            ts, out = [], None
            for _ in range(reps):
                t = time.perf_counter()
                out = fn()
                ts.append(1e3 * (time.perf_counter() - t))
            return statistics.median(ts), out

        for rnd in range(args.runs):
            last = rnd == args.runs - 1
            fk_last = run_fk(f"{tmp}/x", f"{tmp}/c0", n, d, k, it, reps, algos, f"{tmp}/labels" if last else None)
            for r in fk_last:
                times[r["method"]].append(r["ms"])
            if sklearn:
                warm(fit_sklearn)
                ms, km = timed_median(fit_sklearn)
                times["sklearn_lloyd"].append(ms)
            if faiss:
                warm(fit_faiss)
                ms, fkm = timed_median(fit_faiss)
                times["faiss_cpu"].append(ms)
        for r in fk_last:
            prefix = f"{tmp}/labels.{r['method'].split('_', 1)[1]}"
            labels = np.fromfile(prefix, dtype=np.int32)
            centroids = np.fromfile(prefix + ".centroids", dtype=np.float32).reshape(k, d)
            res[r["method"]] = dict(ms=round(statistics.median(times[r["method"]]), 3), n_iter=r["n_iter"],
                                    labels=labels, inertia=inertia(x, labels, centroids))
        if sklearn:
            res["sklearn_lloyd"] = dict(ms=round(statistics.median(times["sklearn_lloyd"]), 3), n_iter=int(km.n_iter_),
                                        labels=km.labels_.astype(np.int32),
                                        inertia=inertia(x, km.labels_, km.cluster_centers_))
        if faiss:
            labels = fkm.index.search(x, 1)[1][:, 0].astype(np.int32)  # not timed
            res["faiss_cpu"] = dict(ms=round(statistics.median(times["faiss_cpu"]), 3), n_iter=it, labels=labels,
                                    inertia=inertia(x, labels, fkm.centroids))
        sk64 = None
        if sklearn:  # the float64 reference: run once, untimed
            km64 = KMeans(n_clusters=k, init=c0.astype(np.float64), n_init=1, max_iter=it, tol=0.0,
                          algorithm="lloyd").fit(x.astype(np.float64))
            sk64 = dict(labels=km64.labels_, inertia=float(km64.inertia_))
        if limits:
            limits.restore_original_limits()

        sk = res.get("sklearn_lloyd")
        for m in fk_methods + ["faiss_cpu"]:
            if m in res and sk64:
                res[m]["agree_sk64"] = float(np.mean(res[m]["labels"] == sk64["labels"]))
                res[m]["inertia_rel_diff_sk64"] = (res[m]["inertia"] - sk64["inertia"]) / sk64["inertia"]
            if m in res and sk:
                res[m]["agree_sk32"] = float(np.mean(res[m]["labels"] == sk["labels"]))
        for m, r in res.items():
            row = dict(N=n, D=d, K=k, iters=it, method=m, threads=args.threads, runs=args.runs,
                       **{key: v for key, v in r.items() if key != "labels"}, **({"isa": isa} if m in fk_methods else {}))
            line = json.dumps(row)
            print(line, flush=True)
            if jf:
                jf.write(line + "\n"), jf.flush()
        table.append(((n, d, k, it), res))

if jf:
    jf.close()


def cell(res, m, key, fmt):
    return fmt(res[m][key]) if m in res and key in res[m] else "-"


def ratio(res, peer, m):
    return f"{res[peer]['ms'] / res[m]['ms']:.2f}x" if peer in res and m in res else "-"


a_s = [m.split("_", 1)[1] for m in fk_methods]
hdr = (["N", "D", "K", "iters"] + [f"fk {a} ms" for a in a_s] + ["sklearn ms", "faiss ms"]
       + [f"sklearn/fk {a}" for a in a_s] + [f"faiss/fk {a}" for a in a_s]
       + [f"agree sk64 {a}" for a in a_s] + [f"agree sk32 {a}" for a in a_s]
       + [f"inertia vs sk64 {a}" for a in a_s])
print("\n| " + " | ".join(hdr) + " |\n|" + "---|" * len(hdr))
for cfg, res in table:
    cells = [str(v) for v in cfg]
    cells += [cell(res, m, "ms", "{:.1f}".format) for m in fk_methods + ["sklearn_lloyd", "faiss_cpu"]]
    cells += [ratio(res, "sklearn_lloyd", m) for m in fk_methods] + [ratio(res, "faiss_cpu", m) for m in fk_methods]
    cells += [cell(res, m, "agree_sk64", "{:.4f}".format) for m in fk_methods]
    cells += [cell(res, m, "agree_sk32", "{:.4f}".format) for m in fk_methods]
    cells += [cell(res, m, "inertia_rel_diff_sk64", "{:+.1e}".format) for m in fk_methods]
    print("| " + " | ".join(cells) + " |")
