#!/usr/bin/env bash
# Checks that `flashkmeans fit` on a 1M x 128 float32 .npy and .fvecs (512 MB each) reads the file
# memory-mapped, in bounded memory, and writes outputs that NumPy loads (scripts/check_large_files.py;
# about 20 s and 1.1 GB of temporary disk). Uses build/ and its virtual environment, as left by
# scripts/test.sh; FLASHKMEANS_CLI names another executable, TMPDIR another place for the inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
cli=${FLASHKMEANS_CLI:-build/tools/cli/flashkmeans}
python=build/venv/bin/python
[ -x "$cli" ] || { echo "check_large_files: no $cli (run scripts/setup.sh)" >&2; exit 1; }
[ -x "$python" ] || python=python3
"$python" scripts/check_large_files.py --cli "$(realpath "$cli")" --dir "${TMPDIR:-/tmp}"
