#!/usr/bin/env bash
# Builds the tests with AddressSanitizer + UndefinedBehaviorSanitizer into build-asan/ and runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null  # installs what is missing
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFLASHKMEANS_SANITIZE=address,undefined -DFLASHKMEANS_CUDA=OFF \
      -DFLASHKMEANS_BENCH=OFF -DFLASHKMEANS_EXAMPLES=OFF >/dev/null
cmake --build build-asan -j "$(nproc 2>/dev/null || echo 2)"
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
  ctest --test-dir build-asan --output-on-failure -j "$(nproc 2>/dev/null || echo 2)" "$@"
