#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs the main job: clusters the embedded default dataset.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
./build/examples/quickstart
