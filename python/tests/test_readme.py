"""Every Python example in the README runs as written (in order, as a reader would paste them);
an example that imports torch is skipped where torch is not importable."""

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def _blocks():
    text = README.read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_has_python_examples():
    assert len(_blocks()) >= 4


@pytest.mark.parametrize("index", range(len(_blocks())))
def test_readme_example_runs(index):
    code = _blocks()[index]
    if re.search(r"^import torch", code, flags=re.M):
        pytest.importorskip("torch")
    if "from flashkmeans import KMeans" in code:
        pytest.importorskip("sklearn")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"README.md example {index}", "exec"), {"__name__": "__readme__"})
    assert out.getvalue().strip(), "every example prints something"


def test_benchmark_command_runs():
    cmd = [sys.executable, "-m", "flashkmeans.benchmark", "--n", "3000", "--d", "16", "--k", "20",
           "--max-iters", "5", "--runs", "2", "--warmup", "1", "--batch", "2"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("flashkmeans") and "B=2 N=3000 D=16 K=20 iters=5" in lines[0]
    row = next(line for line in lines[1:] if line.startswith("flashkmeans "))
    assert "+-" in row
    try:
        import sklearn  # noqa: F401
        assert any(line.startswith("scikit-learn") and line.rstrip().endswith("x") for line in lines)
    except ImportError:
        pass


def test_benchmark_rejects_bad_arguments():
    p = subprocess.run([sys.executable, "-m", "flashkmeans.benchmark", "--n", "10", "--k", "20"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--k <= --n" in p.stderr
