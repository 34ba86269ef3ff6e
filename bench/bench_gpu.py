#!/usr/bin/env python3
"""GPU benchmark: flashkmeans (through the C++ runner fk_gpu_run) beside Flash-KMeans (Triton), a naive
batched PyTorch k-means and fast_pytorch_kmeans, in one run on one GPU, on the GPU configurations of
../shared/anchors/MEASURED.md. Every method gets the same data and initial centroids and runs a fixed number of
iterations (no early stop): standard normal data drawn by torch on the GPU (seed 0) and cast to the dtype, the
initial centroids K random rows of it, as ../shared/bench/peers_gpu.py draws them. Times are whole fits, the
median of CUDA-event timed runs after warm-up (flashkmeans: events around fit_into in the runner, the data
already on the device). Afterwards, outside the timings: each method's inertia recomputed in float64 from its
labels and centroids, and flashkmeans' label agreement with the naive torch k-means (and with Flash-KMeans).

Every method returns the labels of its last assignment and the centroids of the update after it (the runner
runs with final_assignment = false), so all do exactly `iters` assignments and the inertia is computed alike.
float32 data: flashkmeans multiplies in tf32 by default (--precision), as Flash-KMeans' Triton kernels do for
float32; the naive torch k-means multiplies in strict float32 (torch's default, as in MEASURED.md); --exact
adds a run of flashkmeans in exact float32.

  python3 bench/bench_gpu.py [--configs 0,2,largeN] [--methods flashkmeans,flash_kmeans_triton,...]
                             [--runs R] [--warmup W] [--exact] [--runner PATH] [--peers-dir DIR] [--json FILE]
Peers: PEERS_DIR (default .peers) holds the source checkouts flash-kmeans (svg-project/flash-kmeans) and
fast_pytorch_kmeans (DeMoriarty/fast_pytorch_kmeans); PEERS_DIR may also be the flash-kmeans checkout itself.
An installed package of either is used when no checkout is found. A peer that cannot be imported is skipped
with a note; a peer that runs out of memory (or fails otherwise) is recorded with its error.
Writes JSON lines to $OUT/bench_gpu.jsonl when OUT is set (and to --json), and prints a Markdown table last."""
import argparse, datetime, json, os, platform, statistics, subprocess, sys, tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# (tag, B, N, D, K, iters, dtype): the GPU configurations of MEASURED.md, in its order.
CONFIGS = [
    ("seed-5k", 1, 5_000, 64, 50, 10, "float32"),
    ("seed-50k", 1, 50_000, 128, 256, 20, "float32"),
    ("seed-100k", 1, 100_000, 128, 1000, 20, "float32"),
    ("seed-500k", 1, 500_000, 128, 1000, 10, "float32"),
    ("fmnist-shape", 1, 70_000, 784, 10, 20, "float32"),
    ("flash-default", 32, 74_256, 128, 1000, 100, "float16"),
    ("svg-like", 32, 16_384, 128, 100, 100, "float16"),
    ("largeN", 1, 8_388_608, 128, 1024, 20, "float16"),
]
METHODS = ["flashkmeans", "flash_kmeans_triton", "torch_naive_batched", "fast_pytorch_kmeans"]
PEER_NAMES = {"flash_kmeans_triton": "Flash-KMeans", "torch_naive_batched": "naive torch",
              "fast_pytorch_kmeans": "fast_pytorch_kmeans"}


def default_runner():
    for build in ("build-cuda", "build"):
        p = REPO / build / "bench" / "fk_gpu_run"
        if p.is_file():
            return str(p)
    return str(REPO / "build" / "bench" / "fk_gpu_run")


ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--configs", default="all",
                help="comma-separated indices (0-7) or tags (" + ", ".join(c[0] for c in CONFIGS) + "), or 'all'")
ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated, from: " + ", ".join(METHODS))
ap.add_argument("--runs", type=int, default=None,
                help="timed runs per method (default 5, and 3 where B*N > 4M, as peers_gpu.py)")
ap.add_argument("--warmup", type=int, default=None, help="warm-up runs (default 2, and 1 where B*N > 4M)")
ap.add_argument("--precision", choices=("tf32", "exact"), default="tf32", help="flashkmeans on float32 data")
ap.add_argument("--exact", action="store_true", help="also run flashkmeans in exact float32 on float32 data")
ap.add_argument("--runner", default=default_runner(), help="the fk_gpu_run executable")
ap.add_argument("--peers-dir", default=os.environ.get("PEERS_DIR", ".peers"))
ap.add_argument("--fpk-max-points", type=int, default=2_500_000,
                help="run fast_pytorch_kmeans (one batch at a time) only up to B*N points (it takes seconds beyond)")
ap.add_argument("--tmp", default=tempfile.gettempdir(), help="where the runner's data files go")
ap.add_argument("--keep-files", action="store_true", help="keep the data files after each configuration")
ap.add_argument("--json", help="also write the JSON rows to this file")
args = ap.parse_args()


def pick_configs(spec):
    if spec == "all":
        return list(CONFIGS)
    out = []
    for tok in (t.strip() for t in spec.split(",") if t.strip()):
        hits = [c for c in CONFIGS if c[0] == tok]
        if not hits and tok.isdigit() and int(tok) < len(CONFIGS):
            hits = [CONFIGS[int(tok)]]
        if not hits:
            sys.exit(f"bench_gpu: unknown configuration {tok!r}")
        out += hits
    return out


configs = pick_configs(args.configs)
methods = [m.strip() for m in args.methods.split(",") if m.strip()]
for m in methods:
    if m not in METHODS:
        sys.exit(f"bench_gpu: unknown method {m!r}; known: {', '.join(METHODS)}")

import torch  # noqa: E402  (after the argument check, so --help works without torch)

if not torch.cuda.is_available():
    sys.exit("bench_gpu: torch sees no CUDA device")

notes = []
rows = []
out_files = []
if os.environ.get("OUT"):
    out_files.append(open(os.path.join(os.environ["OUT"], "bench_gpu.jsonl"), "a"))
if args.json:
    out_files.append(open(args.json, "a"))


def emit(**row):
    rows.append(row)
    line = json.dumps(row)
    for f in out_files:
        f.write(line + "\n")
        f.flush()
    print(line, flush=True)


# ------------------------------------------------------------------------------------------------
# Peers, imported from their checkouts (or installed packages).

peers_dir = Path(args.peers_dir)
for p in (peers_dir / "fast_pytorch_kmeans", peers_dir / "flash-kmeans", peers_dir):
    if p.is_dir():
        sys.path.insert(0, str(p))

peer_fns = {}
if "flash_kmeans_triton" in methods:
    try:
        from flash_kmeans import batch_kmeans_Euclid

        def flash_kmeans_triton(x, c0, iters):
            r = batch_kmeans_Euclid(x, c0.shape[1], max_iters=iters, tol=-1.0, init_centroids=c0.clone())
            return r[0], r[1]

        peer_fns["flash_kmeans_triton"] = flash_kmeans_triton
    except Exception as e:  # missing checkout, missing triton, ...
        notes.append(f"flash_kmeans_triton skipped: cannot import flash_kmeans from {peers_dir} ({e!r:.200})")
if "fast_pytorch_kmeans" in methods:
    try:
        from fast_pytorch_kmeans import KMeans as FastPytorchKMeans

        def fast_pytorch_kmeans(x, c0, iters):
            labels, cents = [], []
            for b in range(x.shape[0]):  # it clusters one (N, D) matrix at a time
                km = FastPytorchKMeans(n_clusters=c0.shape[1], max_iter=iters, tol=-1.0, verbose=0, mode="euclidean")
                labels.append(km.fit_predict(x[b], centroids=c0[b].clone()))
                cents.append(km.centroids)
            return torch.stack(labels), torch.stack(cents)

        peer_fns["fast_pytorch_kmeans"] = fast_pytorch_kmeans
    except Exception as e:
        notes.append(f"fast_pytorch_kmeans skipped: cannot import it from {peers_dir} ({e!r:.200})")


def torch_naive_batched(x, c0, iters):
    """Lloyd in plain batched torch: the full (B, N, K) distance matrix per iteration, argmin, then the
    sums by scatter_add; an empty cluster keeps its centroid. Computes in float32 whatever the input."""
    xf = x.float()
    c = c0.float().clone()
    B, N, D = xf.shape
    K = c.shape[1]
    x_sq = xf.square().sum(-1)[:, :, None]                       # (B, N, 1)
    ones = torch.ones(B, N, device=x.device)
    labels = None
    for _ in range(iters):
        c_sq = c.square().sum(-1)[:, None, :]                    # (B, 1, K)
        dist = torch.baddbmm(x_sq + c_sq, xf, c.transpose(1, 2), alpha=-2.0)
        labels = dist.argmin(dim=-1)                             # (B, N)
        del dist
        sums = torch.zeros(B, K, D, device=x.device).scatter_add_(1, labels[:, :, None].expand(B, N, D), xf)
        counts = torch.zeros(B, K, device=x.device).scatter_add_(1, labels, ones)
        c = torch.where(counts[:, :, None] > 0, sums / counts.clamp_min(1.0)[:, :, None], c)
    return labels, c


if "torch_naive_batched" in methods:
    peer_fns["torch_naive_batched"] = torch_naive_batched


# ------------------------------------------------------------------------------------------------
# Timing and checks.

def cuda_time(fn, warmup, runs):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop))
    return statistics.median(times), min(times), max(times)


def inertia64(x, labels, c):
    """Sum over points of ||x - c[label]||^2 in float64, in chunks of about 256 MB."""
    B, N, D = x.shape
    chunk = max(1, (256 << 20) // (8 * D))
    total = 0.0
    for b in range(B):
        cb = c[b].double()
        lb = labels[b].long()
        for s in range(0, N, chunk):
            diff = x[b, s:s + chunk].double() - cb[lb[s:s + chunk]]
            total += float(diff.square().sum())
    return total


def agreement(a, b):
    return float((a.reshape(-1) == b.reshape(-1).to(a.dtype)).double().mean())


def write_raw(t, path):
    """float32 as float32; float16 / bfloat16 as their 16-bit patterns (the runner takes the dtype)."""
    t = t.contiguous()
    if t.dtype in (torch.float16, torch.bfloat16):
        t = t.view(torch.int16)
    t.cpu().numpy().tofile(path)


def run_flashkmeans(x, c0, cfg, precision, warmup, runs, files):
    tag, B, N, D, K, iters, dtype = cfg
    labels_path, cents_path = files["x"] + f".{precision}.labels", files["x"] + f".{precision}.centroids"
    cmd = [args.runner, "--data", files["x"], "--init", files["c0"], "--dtype", dtype, "--batch", str(B),
           "--n", str(N), "--d", str(D), "--k", str(K), "--iters", str(iters), "--precision", precision,
           "--warmup", str(warmup), "--runs", str(runs), "--labels", labels_path, "--centroids", cents_path]
    torch.cuda.empty_cache()  # leave the device to the runner
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    except subprocess.TimeoutExpired:
        return {"error": "runner timed out after 3600 s"}, None
    line = next((l for l in reversed(p.stdout.splitlines()) if l.startswith("{")), None)
    if p.returncode != 0 or line is None:
        err = json.loads(line).get("error") if line else None
        return {"error": err or f"runner exit {p.returncode}: {(p.stderr or p.stdout).strip()[-300:]}"}, None
    r = json.loads(line)
    import numpy as np
    labels = torch.from_numpy(np.fromfile(labels_path, dtype=np.int32).reshape(B, N)).to(x.device)
    cents = torch.from_numpy(np.fromfile(cents_path, dtype=np.float32).reshape(B, K, D)).to(x.device)
    for p_ in (labels_path, cents_path):
        os.remove(p_)
    out = {"ms": r["ms"], "ms_min": r["ms_min"], "ms_max": r["ms_max"], "n_iter": r["n_iter"],
           "inertia_reported": r["inertia"], "device": r.get("device")}
    return out, (labels, cents)


def run_config(cfg):
    tag, B, N, D, K, iters, dtype = cfg
    big = B * N > 4_000_000
    warmup = args.warmup if args.warmup is not None else (1 if big else 2)
    runs = args.runs if args.runs is not None else (3 if big else 5)
    tdtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(B, N, D, device="cuda", dtype=torch.float32, generator=g).to(tdtype)
    idx = torch.randint(0, N, (B, K), device="cuda", generator=g)
    c0 = torch.gather(x, 1, idx[:, :, None].expand(-1, -1, D)).contiguous()
    torch.cuda.empty_cache()
    base = dict(kind="kmeans", tag=tag, B=B, N=N, D=D, K=K, iters=iters, dtype=dtype)
    results = {}  # method -> (labels, centroids)

    files = {"x": os.path.join(args.tmp, f"fk_bench_{tag}_x.bin"), "c0": os.path.join(args.tmp, f"fk_bench_{tag}_c0.bin")}
    if "flashkmeans" in methods:
        write_raw(x, files["x"])
        write_raw(c0, files["c0"])
        precisions = [args.precision]  # the setting only applies to float32 data
        if dtype == "float32" and args.exact and args.precision != "exact":
            precisions.append("exact")
        for prec in precisions:
            name = "flashkmeans" if dtype != "float32" else f"flashkmeans_{prec}"
            r, out = run_flashkmeans(x, c0, cfg, prec, warmup, runs, files)
            if out is not None:
                results[name] = out
                r["inertia"] = inertia64(x, *out)
                r["ms_per_iter"] = r["ms"] / iters
            emit(**base, method=name, **r)
        if not args.keep_files:
            for f in files.values():
                if os.path.exists(f):
                    os.remove(f)

    for name in METHODS[1:]:
        if name not in methods:
            continue
        if name not in peer_fns:
            continue  # import failed: noted once at the top
        if name == "fast_pytorch_kmeans" and B * N > args.fpk_max_points:
            emit(**base, method=name, skipped=f"B*N = {B * N} > --fpk-max-points {args.fpk_max_points}")
            continue
        fn = peer_fns[name]
        box = {}
        try:
            def call():
                box["r"] = fn(x, c0, iters)
            med, lo, hi = cuda_time(call, warmup, runs)
            labels, cents = box.pop("r")
            results[name] = (labels, cents)
            emit(**base, method=name, ms=med, ms_min=lo, ms_max=hi, ms_per_iter=med / iters,
                 inertia=inertia64(x, labels, cents))
        except Exception as e:  # torch.cuda.OutOfMemoryError included
            box.clear()
            emit(**base, method=name, error=f"{type(e).__name__}: {str(e)[:300]}")
        torch.cuda.empty_cache()

    # Label agreement of flashkmeans with the peers (same initial centroids, same iteration count).
    ours = [m for m in results if m.startswith("flashkmeans")]
    for m in ours:
        for peer in ("torch_naive_batched", "flash_kmeans_triton"):
            if peer in results:
                emit(**{**base, "kind": "agreement", "method": m, "peer": peer,
                        "agreement": agreement(results[m][0], results[peer][0])})
    del x, c0, results
    torch.cuda.empty_cache()


def git_commit():
    try:
        return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip()
    except OSError:
        return "?"


def triton_version():
    try:
        import triton
        return triton.__version__
    except Exception:
        return "not importable"


header = dict(kind="header", device=torch.cuda.get_device_name(), torch=torch.__version__, triton=triton_version(),
              cuda=torch.version.cuda, date=datetime.datetime.now().isoformat(timespec="seconds"),
              host=platform.node(), commit=git_commit(), runner=args.runner, precision=args.precision)
emit(**header)
if "flashkmeans" in methods and not (os.path.isfile(args.runner) and os.access(args.runner, os.X_OK)):
    notes.append(f"flashkmeans skipped: no runner at {args.runner} (build it: cmake -S . -B build-cuda "
                 "-DCMAKE_CUDA_ARCHITECTURES=90a && cmake --build build-cuda -j --target fk_gpu_run)")
    methods.remove("flashkmeans")
for n in notes:
    print("note:", n, flush=True)

for cfg in configs:
    try:
        run_config(cfg)
    except Exception as e:  # e.g. the data itself does not fit: record and go on
        emit(kind="kmeans", tag=cfg[0], method="(config)", error=f"{type(e).__name__}: {str(e)[:300]}")
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------------
# The table.

def fmt_ms(r):
    if r is None:
        return "—"
    if "error" in r:
        return "OOM" if "OutOfMemory" in r["error"] or "out of memory" in r["error"].lower() else "error"
    if "skipped" in r:
        return "skipped"
    return f"{r['ms']:.2f} ms ({r['ms_per_iter'] * 1e3:.0f} µs/it)" if r["ms"] < 100 else f"{r['ms']:.1f} ms ({r['ms_per_iter']:.2f} ms/it)"


print(f"\n## GPU benchmark: {header['device']}, torch {header['torch']}, triton {header['triton']}, {header['date']}, "
      f"commit {header['commit']}")
print("float32: flashkmeans in " + args.precision + ", Flash-KMeans in tf32 (Triton), naive torch in strict float32."
      " Ratio = peer ms / flashkmeans ms (> 1: flashkmeans is faster). Inertia: float64 recomputation;"
      " Δ inertia relative to the naive torch k-means; agreement: labels equal to the naive torch k-means'.\n")
ours_cols = ["flashkmeans"] + (["flashkmeans_exact"] if args.exact and args.precision != "exact" else [])
peers = [m for m in METHODS[1:] if m in methods or m in peer_fns]
head = ["config"] + [("flashkmeans " + ("exact" if c.endswith("exact") else "")).strip() for c in ours_cols]
for p in peers:
    head += [PEER_NAMES[p], "ratio"]
head += ["Δ inertia", "agreement"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for cfg in configs:
    tag, B, N, D, K, iters, dtype = cfg
    by = {r["method"]: r for r in rows if r.get("kind") == "kmeans" and r.get("tag") == tag}
    our_key = "flashkmeans" if dtype != "float32" else f"flashkmeans_{args.precision}"
    ours = by.get(our_key)
    cells = [f"{tag}: {B} × {N:,} × {D}, K={K}, {iters} it, {dtype}", fmt_ms(ours)]
    if len(ours_cols) > 1:
        cells.append(fmt_ms(by.get("flashkmeans_exact")) if dtype == "float32" else "—")
    ok = ours is not None and "ms" in ours
    for p in peers:
        r = by.get(p)
        cells.append(fmt_ms(r))
        cells.append(f"{r['ms'] / ours['ms']:.2f}×" if ok and r is not None and "ms" in r else "—")
    naive = by.get("torch_naive_batched")
    if ok and naive is not None and "inertia" in naive and "inertia" in ours:
        cells.append(f"{(ours['inertia'] - naive['inertia']) / naive['inertia']:+.2e}")
    else:
        cells.append("—")
    agr = [r for r in rows if r.get("kind") == "agreement" and r.get("tag") == tag and r["method"] == our_key
           and r["peer"] == "torch_naive_batched"]
    cells.append(f"{agr[0]['agreement'] * 100:.2f}%" if agr else "—")
    print("| " + " | ".join(cells) + " |")
for n in notes:
    print(f"\nnote: {n}")
