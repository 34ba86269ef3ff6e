"""The ``flashkmeans`` console command and ``python -m flashkmeans``: the command-line tool built
with the package (``flashkmeans/bin/flashkmeans``: fit, predict, bench, demo; docs/formats.md),
run with the same arguments."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence


def executable() -> str:
    """The path of the command-line tool installed inside the package."""
    exe = Path(__file__).resolve().parent / "bin" / "flashkmeans"
    if not exe.is_file():
        raise FileNotFoundError(f"the flashkmeans command-line tool is missing ({exe}): reinstall the package "
                                "with pip install . (it is built with FLASHKMEANS_TOOLS=ON)")
    return str(exe)


def _environment() -> dict:
    env = dict(os.environ)
    # `flashkmeans demo` times scikit-learn with this interpreter, where the package is installed.
    env.setdefault("FLASHKMEANS_DEMO_PYTHON", sys.executable)
    return env


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the tool with argv (default: this process's arguments) and returns its exit code. As the
    console command, the tool replaces this process, so that its exit code, signals and terminal are
    the command's own."""
    exe = executable()
    if argv is None and os.name == "posix":
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(exe, ["flashkmeans", *sys.argv[1:]], _environment())
    args = sys.argv[1:] if argv is None else list(argv)
    return subprocess.run([exe, *args], env=_environment()).returncode
