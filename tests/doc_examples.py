"""The C++ code of the docs is real code: every ```cpp block of README.md and docs/*.md follows a line
`<!-- example: docs/examples/NAME.cpp -->` and must equal that file without its hidden lines (from a
`// doc:hide` line to the next `// doc:show` line, both included; they hold the setup and checks a
reader does not need). Every example must be shown somewhere and built and run by CTest
(fk_doc_example(NAME ...) in tests/CMakeLists.txt).

Usage: python3 tests/doc_examples.py [REPO_ROOT]   (exit status 1, with a diff, on a mismatch)"""

import difflib
import re
import sys
from pathlib import Path

MARKER = re.compile(r"^<!-- example: (\S+) -->$")


def visible(path):
    """The lines of an example file that the docs show."""
    shown, hidden = [], False
    for line in path.read_text().splitlines():
        if line.strip() == "// doc:hide":
            hidden = True
        elif line.strip() == "// doc:show":
            hidden = False
        elif not hidden:
            shown.append(line)
    return shown


def cpp_blocks(md):
    """(line number, marker path or None, lines) of every ```cpp block of a markdown file."""
    lines = md.read_text().splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```cpp":
            start = i
            j = i + 1
            while j < len(lines) and lines[j].strip() != "```":
                j += 1
            before = next((lines[p].strip() for p in range(start - 1, -1, -1) if lines[p].strip()), "")
            m = MARKER.match(before)
            yield start + 1, m.group(1) if m else None, lines[start + 1:j]
            i = j
        i += 1


def main(root):
    errors, shown = [], set()
    docs = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    for md in docs:
        for line, example, block in cpp_blocks(md):
            where = f"{md.relative_to(root)}:{line}"
            if example is None:
                errors.append(f"{where}: a ```cpp block without an <!-- example: docs/examples/NAME.cpp --> line")
                continue
            path = root / example
            if not path.is_file():
                errors.append(f"{where}: {example} does not exist")
                continue
            shown.add(path.resolve())
            want = visible(path)
            if block != want:
                diff = "\n".join(difflib.unified_diff(want, block, example, where, lineterm=""))
                errors.append(f"{where}: the block is not the visible text of {example}:\n{diff}")
    cmake = (root / "tests" / "CMakeLists.txt").read_text()
    for path in sorted((root / "docs" / "examples").glob("*.cpp")):
        if path.resolve() not in shown:
            errors.append(f"{path.relative_to(root)} is shown in no document")
        if f"fk_doc_example({path.stem}" not in cmake:
            errors.append(f"{path.relative_to(root)} is not built: add fk_doc_example({path.stem}) to tests/CMakeLists.txt")
    for e in errors:
        print(e)
    print(f"doc_examples: {len(shown)} examples checked, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])))
