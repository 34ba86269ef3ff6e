"""Bounded memory of `flashkmeans fit` on large files: a 1M x 128 float32 .npy (512 MB) and the same
points as .fvecs (516 MB) are clustered (-k 64 --iters 2) with the default algorithm (Elkan here)
and with Lloyd, and every run must read the file where it is mapped instead of copying it:

- peak anonymous memory (sampled from /proc/PID/status while it runs: what the process allocated)
  below 64 MiB + outputs + Elkan's bounds (N x K float32), where a copy would add the 512 MB;
- peak resident set (getrusage, as /usr/bin/time -v reports it; it counts the mapped file's pages
  once read) below the file + outputs + Elkan's bounds + 64 MiB;
- outputs that load back with numpy.load, identical for the two formats.

Usage: python check_large_files.py --cli PATH [--dir DIR]   (docs/formats.md records the numbers)"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N, D, K = 1_000_000, 128, 64
MIB = 1 << 20


def write_inputs(directory):
    """x.npy and x.fvecs: N points around K centres, written in chunks (the generator stays small)."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((K, D), dtype=np.float32) * 4
    npy = np.lib.format.open_memmap(directory / "x.npy", mode="w+", dtype=np.float32, shape=(N, D))
    dim_word = np.array([D], np.int32).view(np.float32)[0]
    with open(directory / "x.fvecs", "wb") as fvecs:
        for start in range(0, N, 100_000):
            m = min(100_000, N - start)
            chunk = centres[rng.integers(0, K, m)] + rng.standard_normal((m, D), dtype=np.float32)
            npy[start:start + m] = chunk
            records = np.empty((m, D + 1), np.float32)
            records[:, 0], records[:, 1:] = dim_word, chunk
            fvecs.write(records.tobytes())
    npy.flush()
    del npy


def status_kib(pid):
    """RssAnon and RssFile of a running process, in KiB (None once it has exited)."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        return int(fields["RssAnon"].split()[0]), int(fields["RssFile"].split()[0])
    except (OSError, KeyError, ValueError):
        return None


def run_fit(cli, data, out, algorithm):
    """Runs the fit; returns (wall seconds, peak RSS KiB, peak anonymous KiB). The peak RSS is the
    child's own getrusage maximum (os.wait4), the number /usr/bin/time -v prints; it is at least this
    process's RSS at the spawn, so main() keeps that small."""
    cmd = [cli, "fit", str(data), "-k", str(K), "--iters", "2", "--algorithm", algorithm, "-o", str(out), "-q"]
    t0 = time.perf_counter()
    pid = os.posix_spawn(cli, cmd, os.environ)
    peak_anon = 0
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        s = status_kib(pid)
        if s:
            peak_anon = max(peak_anon, s[0])
        time.sleep(0.002)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"check_large_files: {' '.join(cmd)} exited with {os.waitstatus_to_exitcode(status)}")
    return wall, usage.ru_maxrss, peak_anon


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cli", required=True, help="the flashkmeans executable")
    ap.add_argument("--dir", default=None, help="where to write the 1 GB of inputs (default: a temporary directory)")
    ap.add_argument("--write-inputs", metavar="DIR", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.write_inputs:
        write_inputs(Path(args.write_inputs))
        return
    work = Path(tempfile.mkdtemp(prefix="fk_large_", dir=args.dir))
    try:
        if shutil.disk_usage(work).free < 1_200_000_000:
            sys.exit(f"check_large_files: {work} has less than 1.2 GB free")
        t0 = time.perf_counter()
        # In a process of its own: a spawned child's peak RSS starts from its parent's (Linux copies
        # the high-water mark across vfork), so this process must stay small.
        subprocess.run([sys.executable, __file__, "--cli", args.cli, "--write-inputs", str(work)], check=True)
        print(f"inputs: {N} x {D} float32 as .npy ({(work / 'x.npy').stat().st_size / 1e6:.0f} MB) and .fvecs "
              f"({(work / 'x.fvecs').stat().st_size / 1e6:.0f} MB), written in {time.perf_counter() - t0:.1f} s")
        outputs = N * 4 + K * D * 4
        bounds = {"auto": N * K * 4, "lloyd": 0}  # Elkan's lower bounds (auto picks Elkan for K >= 64)
        labels = {}
        failures = []
        print(f"{'file':>8} {'algorithm':>9} {'wall s':>7} {'peak RSS MiB':>13} {'peak anon MiB':>14} "
              f"{'file MiB':>9}  limits (RSS, anon)")
        for algorithm in ("auto", "lloyd"):
            for name in ("x.npy", "x.fvecs"):
                data, out = work / name, work / f"out-{name}-{algorithm}"
                wall, peak_rss, peak_anon = run_fit(args.cli, data, out, algorithm)
                size = data.stat().st_size
                rss_limit = size + outputs + bounds[algorithm] + 64 * MIB
                anon_limit = outputs + bounds[algorithm] + 64 * MIB
                print(f"{name:>8} {algorithm:>9} {wall:7.2f} {peak_rss / 1024:13.0f} {peak_anon / 1024:14.0f} "
                      f"{size / MIB:9.0f}  {rss_limit / MIB:.0f}, {anon_limit / MIB:.0f}")
                if peak_rss * 1024 >= rss_limit:
                    failures.append(f"{name} ({algorithm}): peak RSS {peak_rss / 1024:.0f} MiB")
                if peak_anon * 1024 >= anon_limit:
                    failures.append(f"{name} ({algorithm}): peak anonymous memory {peak_anon / 1024:.0f} MiB")
                c = np.load(out / "centroids.npy")
                lab = np.load(out / "labels.npy")
                summary = json.loads((out / "summary.json").read_text())
                assert c.shape == (K, D) and c.dtype == np.float32 and np.isfinite(c).all(), (c.shape, c.dtype)
                assert lab.shape == (N,) and lab.dtype == np.int32 and 0 <= lab.min() and lab.max() < K
                assert (summary["n"], summary["d"], summary["k"], summary["iterations"]) == (N, D, K, 2), summary
                labels[name, algorithm] = lab
        for algorithm in ("auto", "lloyd"):
            if not np.array_equal(labels["x.npy", algorithm], labels["x.fvecs", algorithm]):
                failures.append(f"{algorithm}: the .npy and .fvecs fits of the same points differ")
        if failures:
            sys.exit("check_large_files: " + "; ".join(failures))
        print("check_large_files: ok (inputs mapped, not copied; outputs load in NumPy)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
