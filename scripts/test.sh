#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the test suite: the C++ tests (extra arguments go to ctest),
# then the Python package, built by pip into a virtual environment (build/venv) and tested with
# pytest. FLASHKMEANS_CMAKE_ARGS is passed to the package's CMake (default: no CUDA kernels, for a
# quick CPU build; set it to "" to build them where nvcc is found).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ctest --test-dir build --output-on-failure -j "$(nproc 2>/dev/null || echo 2)" "$@"

venv=build/venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
CMAKE_ARGS="${FLASHKMEANS_CMAKE_ARGS--DFLASHKMEANS_CUDA=OFF}" \
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -C build-dir=build/python ".[test]"
"$venv/bin/python" -m pytest -q -p no:cacheprovider python/tests
