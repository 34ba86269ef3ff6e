#!/usr/bin/env bash
# Sets up and builds (scripts/setup.sh), then runs `flashkmeans demo`: k-means on the handwritten
# digits embedded in the tool, scored against the true digits, timed against scikit-learn when it is
# installed, and drawn into build/flashkmeans-demo.png (extra arguments go to the demo, e.g.
# `-o picture.png` or `--seed 3`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
./build/tools/cli/flashkmeans demo -o build/flashkmeans-demo.png "$@"
