#!/usr/bin/env bash
# Installs the library from build/ into a temporary prefix and builds a separate project against it
# with find_package(flashkmeans).
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install build --prefix "$prefix/install" >/dev/null
cmake -S tests/consumer -B "$prefix/consumer" -DCMAKE_PREFIX_PATH="$prefix/install" >/dev/null
cmake --build "$prefix/consumer" -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
"$prefix/consumer/consumer"
