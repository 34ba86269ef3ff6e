#!/usr/bin/env bash
# Fuzzes the data-file readers: builds the libFuzzer targets of fuzz/ (one per reader: npy, vecs,
# csv, raw) with clang, AddressSanitizer and UndefinedBehaviorSanitizer into build-fuzz/ (CPU only:
# the readers need no backend), then runs each for FUZZ_SECONDS (default 60) starting from the
# committed seed corpus fuzz/corpus/<target>/. Fails when a target finds a crash, a sanitizer
# report, a leak, a hang or a failed check; the input that did it is kept as
# build-fuzz/artifacts/<target>/crash-* (replay: build-fuzz/fuzz_<target> FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}

# clang with libFuzzer's runtime (on Debian 12 in libclang-rt-dev, on older releases in clang's
# own dependencies): installed when a probe does not link.
probe() {
  command -v clang++ >/dev/null &&
    echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' |
      clang++ -x c++ -fsanitize=fuzzer,address,undefined - -o /dev/null 2>/dev/null
}
if ! probe; then
  echo "fuzz: installing clang and libFuzzer"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends clang cmake make
  probe || DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends libclang-rt-dev || true
  probe || { echo "fuzz: clang++ -fsanitize=fuzzer does not link" >&2; exit 1; }
fi

cmake -S fuzz -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j "$(nproc 2>/dev/null || echo 2)"

export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
for target in npy vecs csv raw; do
  # New inputs go to a work corpus in build-fuzz/, so the committed seeds stay as they are.
  work=build-fuzz/corpus/$target artifacts=build-fuzz/artifacts/$target log=build-fuzz/fuzz_$target.log
  mkdir -p "$work" "$artifacts"
  dict=(); [ -f "fuzz/$target.dict" ] && dict=(-dict="fuzz/$target.dict")
  if ! build-fuzz/fuzz_$target -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$artifacts/" "${dict[@]}" "$work" "fuzz/corpus/$target" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz: fuzz_$target failed; the input is in $artifacts/ (log: $log)" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  echo "fuzz: fuzz_$target: ${runs:-?} inputs in ${seconds} s, no failure"
done
