"""Every code example of README.md and docs/*.md runs, and docs/api.md names the whole public C++ API.

By the fence's language:
- python: executed, each block on its own with fresh globals (as a reader pastes it); a block that
  imports torch at its top skips without torch, one using flashkmeans.KMeans without scikit-learn;
- sh: a block with a `flashkmeans` command is run by bash in an empty directory, with this
  environment's `flashkmeans` console command and `python3` first on PATH; any other line must be
  a command that CI runs itself (CI_COMMANDS says where);
- cpp: docs/examples/*.cpp, built and run by CTest, whose doc_examples_match test checks that the
  text is the file's (tests/doc_examples.py); here only that the block names its file;
- cmake: the lines tests/consumer/CMakeLists.txt builds (scripts/check_install.sh);
- no language or text: output and usage synopses, not code.
"""

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGUAGES = {"python", "sh", "cpp", "cmake", "text", ""}

# Shell commands of the docs that are not flashkmeans commands, and the file of CI that runs each
# (with the text that shows it there).
CI_COMMANDS = {
    "bash scripts/demo.sh": (".ci/run", "bash scripts/demo.sh"),
    "bash scripts/test.sh": (".ci/run", "bash scripts/test.sh"),
    "pip install .": ("scripts/test.sh", "pip install"),
    'CMAKE_ARGS="-DFLASHKMEANS_CUDA=OFF" pip install .': ("scripts/test.sh", "CMAKE_ARGS=\"${FLASHKMEANS_CMAKE_ARGS--DFLASHKMEANS_CUDA=OFF}\""),
    # the [test] extra that CI installs includes scikit-learn, the [sklearn] extra
    'pip install ".[sklearn]"': ("scripts/test.sh", '".[test]"'),
}


def blocks():
    """(id, language, code) of every fenced block, in document order."""
    out = []
    for md in DOCS:
        lines = md.read_text().splitlines()
        i = 0
        while i < len(lines):
            if lines[i].startswith("```"):
                lang, start = lines[i][3:].strip(), i
                i += 1
                while not lines[i].startswith("```"):
                    i += 1
                out.append((f"{md.relative_to(ROOT)}:{start + 1}", lang, "\n".join(lines[start + 1:i]) + "\n",
                            lines[start - 1] if start >= 1 else ""))
            i += 1
    return out


BLOCKS = blocks()


def of(lang):
    return [pytest.param(code, id=where) for where, language, code, _ in BLOCKS if language == lang]


def commands(code):
    """The commands of a shell block, comments dropped (a line ending in a quote continues one)."""
    return [line.split("  #")[0].strip() for line in code.splitlines() if line.strip()]


def cli_block(code):
    return any(c.startswith("flashkmeans ") for c in commands(code))


def test_every_block_has_a_known_language():
    assert {lang for _, lang, _, _ in BLOCKS} <= LANGUAGES, [(w, l) for w, l, _, _ in BLOCKS if l not in LANGUAGES]
    assert len(of("python")) >= 10 and len(of("cpp")) >= 5


@pytest.mark.parametrize("code", of("python"))
def test_python_example_runs(code):
    if re.search(r"^import torch", code, flags=re.M):
        pytest.importorskip("torch")
    if "from flashkmeans import KMeans" in code:
        pytest.importorskip("sklearn")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "example", "exec"), {"__name__": "__docs__"})
    assert out.getvalue().strip(), "every example prints something"


@pytest.mark.parametrize("code", [p for p in of("sh") if cli_block(p.values[0])])
def test_command_line_example_runs(code, tmp_path):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    p = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, f"{p.stdout}\n{p.stderr}"


@pytest.mark.parametrize("code", [p for p in of("sh") if not cli_block(p.values[0])])
def test_other_shell_commands_run_in_ci(code):
    for command in commands(code):
        assert command in CI_COMMANDS, f"{command!r} is neither a flashkmeans command nor run by CI"
        where, text = CI_COMMANDS[command]
        assert text in (ROOT / where).read_text(), f"{where} no longer runs {command!r}"


def test_cpp_blocks_name_their_example_file():
    for where, lang, _, before in BLOCKS:
        if lang == "cpp":
            assert re.fullmatch(r"<!-- example: docs/examples/\w+\.cpp -->", before.strip()), where


@pytest.mark.parametrize("code", of("cmake"))
def test_cmake_example_is_what_the_install_check_builds(code):
    consumer = (ROOT / "tests" / "consumer" / "CMakeLists.txt").read_text().splitlines()
    for line in code.strip().splitlines():
        assert line.replace("my_app", "consumer") in consumer, line


def public_names():
    """Types, functions, members and enumerators declared in include/flashkmeans/*.hpp."""
    names = set()
    for header in sorted((ROOT / "include" / "flashkmeans").glob("*.hpp")):
        text = re.sub(r"//.*", "", header.read_text())
        names |= set(re.findall(r"\b(?:struct|class|enum class)\s+(\w+)", text))
        for body in re.findall(r"enum class \w+[^{]*\{([^}]*)\}", text):
            names |= {v.split("=")[0].strip() for v in body.split(",") if v.strip()}
        for decl in re.split(r"[;{}]", text):
            decl = " ".join(decl.split())
            while True:  # template arguments may hold parentheses: drop them, innermost first
                stripped = re.sub(r"<[^<>]*>", "", decl)
                if stripped == decl:
                    break
                decl = stripped
            if not decl or decl.startswith(("#", "namespace", "public", "private", "enum", "struct", "class")):
                continue
            if "(" in decl:
                m = re.match(r"(?:[\w:&*]+\s+)*?(\w+)\s*\(", decl.replace("static ", "").replace("explicit ", ""))
                if m:
                    names.add(m.group(1))
            else:
                for part in decl.split(","):
                    words = re.findall(r"\w+", part.split("=")[0])
                    if words:
                        names.add(words[-1])
    return {n for n in names if not n.endswith("_") and n not in {"const", "noexcept", "override", "return"}}


def test_api_reference_names_every_public_declaration():
    api = (ROOT / "docs" / "api.md").read_text()
    names = public_names()
    assert {"fit_into", "TensorView", "n_clusters", "kmeans_plus_plus", "cuda_stream", "is_contiguous"} <= names
    missing = sorted(n for n in names if not re.search(rf"\b{n}\b", api))
    assert not missing, f"docs/api.md does not mention {missing}"


def test_benchmark_command_runs():
    # The README's `python -m flashkmeans.benchmark` command, on a small problem.
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
