"""The `flashkmeans` console command and `python -m flashkmeans` run the command-line tool built
with the package: help, version, a fit and a predict whose outputs load back in NumPy, exit codes,
and the demo timing scikit-learn with this interpreter."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import flashkmeans
from conftest import blobs


def console_command():
    # pip puts console scripts beside the interpreter of the environment it installs into.
    exe = shutil.which("flashkmeans", path=str(Path(sys.executable).parent))
    assert exe, "pip install . installs a `flashkmeans` console command beside the interpreter"
    return [exe]


MODULE = [sys.executable, "-m", "flashkmeans"]


def run(cmd, *args, cwd=None):
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.mark.parametrize("cmd", [console_command(), MODULE], ids=["console", "module"])
def test_help_and_version(cmd):
    p = run(cmd, "--help")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("usage: flashkmeans COMMAND")
    for command in ("fit", "predict", "bench", "demo"):
        assert f"\n  {command} " in p.stdout
    p = run(cmd, "--version")
    assert p.returncode == 0 and p.stdout.startswith(f"flashkmeans {flashkmeans.__version__} ")


@pytest.mark.parametrize("cmd", [console_command(), MODULE], ids=["console", "module"])
def test_fit_then_predict(cmd, tmp_path):
    x, _ = blobs(600, 8, 5, seed=3)
    np.save(tmp_path / "x.npy", x)
    p = run(cmd, "fit", tmp_path / "x.npy", "-k", 5, "--init", "k-means++", "--iters", 30, "-o", tmp_path / "out")
    assert p.returncode == 0, p.stderr
    centroids = np.load(tmp_path / "out" / "centroids.npy")
    labels = np.load(tmp_path / "out" / "labels.npy")
    assert centroids.shape == (5, 8) and centroids.dtype == np.float32
    assert labels.shape == (600,) and labels.dtype == np.int32
    # Labels of the returned centroids (final assignment), and five clusters for five blobs.
    d2 = ((x[:, None, :] - centroids[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(labels, d2.argmin(1))
    assert len(np.unique(labels)) == 5
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["n"] == 600 and summary["k"] == 5 and summary["command"] == "fit"
    assert summary["inertia"] == pytest.approx(d2.min(1).sum(), rel=1e-4)

    p = run(cmd, "predict", tmp_path / "x.npy", "--centroids", tmp_path / "out" / "centroids.npy",
            "-o", tmp_path / "p.npy")
    assert p.returncode == 0, p.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), labels)


def test_exit_codes_pass_through(tmp_path):
    assert run(console_command(), "fit", tmp_path / "missing.npy", "-k", 2, "-o", tmp_path).returncode == 3
    assert run(console_command(), "fit").returncode == 2
    assert run(MODULE, "no-such-command").returncode == 2
    # main() with arguments returns the code instead of replacing the process.
    from flashkmeans._cli import main
    assert main(["--version"]) == 0
    assert main(["fit", str(tmp_path / "missing.npy"), "-k", "2", "-o", str(tmp_path)]) == 3


def test_demo_compares_with_this_interpreters_scikit_learn(tmp_path):
    pytest.importorskip("sklearn")
    env = {k: v for k, v in os.environ.items() if k != "FLASHKMEANS_DEMO_PYTHON"}
    # Only this environment's interpreter has scikit-learn on a PATH without it.
    env["PATH"] = "/nonexistent"
    p = subprocess.run([*console_command(), "demo", "--repeats", "1", "-o", str(tmp_path / "d.png")],
                       capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr
    assert "agreement with the true digits: ARI" in p.stdout
    assert "(version " in p.stdout, p.stdout  # scikit-learn ran
    assert (tmp_path / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
