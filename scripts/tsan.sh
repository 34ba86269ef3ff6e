#!/usr/bin/env bash
# Builds the threaded CPU tests with ThreadSanitizer into build-tsan/ and runs them (extra arguments
# go to every test executable, e.g. --gtest_filter=...).
#
# OpenMP under TSan: GCC's libgomp is not instrumented, so TSan cannot see its barriers and reports
# every parallel region as a race. Instead the tests are linked against LLVM's OpenMP runtime
# (libomp, which implements libgomp's GOMP_* ABI that g++ emits) and run with its Archer tool
# (OMP_TOOL_LIBRARIES=libarcher.so), which tells TSan the happens-before edges of every OpenMP
# construct (fork/join, barriers, reductions, locks, tasks) through OMPT. No suppression file is
# used; TSan's ignore_noninstrumented_modules=1 (Archer's documented setting) drops only accesses
# made inside uninstrumented libraries (the runtime's own internal state), never the library's.
# A tiny racy OpenMP program is run first: it must be reported, so a setup that silences
# everything fails here instead of passing quietly.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null  # installs what is missing

find_llvm_omp() { ls -d /usr/lib/llvm-*/lib 2>/dev/null | while read -r d; do
  [ -f "$d/libomp.so" ] && [ -f "$d/libarcher.so" ] && echo "$d"; done | sort -V | tail -1; }
llvm_lib=$(find_llvm_omp)
if [ -z "$llvm_lib" ]; then
  echo "tsan: installing libomp-dev (LLVM OpenMP runtime with Archer)"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends libomp-dev
  llvm_lib=$(find_llvm_omp)
fi
[ -n "$llvm_lib" ] || { echo "tsan: no LLVM OpenMP runtime with libarcher.so found" >&2; exit 1; }

jobs=$(nproc 2>/dev/null || echo 2)
tests=(test_determinism test_predict test_algorithms test_properties test_fit)
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFLASHKMEANS_SANITIZE=thread -DFLASHKMEANS_CUDA=OFF \
      -DFLASHKMEANS_BENCH=OFF -DFLASHKMEANS_EXAMPLES=OFF \
      -DOpenMP_CXX_FLAGS=-fopenmp -DOpenMP_CXX_LIB_NAMES=omp -DOpenMP_omp_LIBRARY="$llvm_lib/libomp.so" >/dev/null
cmake --build build-tsan -j "$jobs" --target "${tests[@]}"

export OMP_TOOL_LIBRARIES="$llvm_lib/libarcher.so"
export TSAN_OPTIONS="ignore_noninstrumented_modules=1 halt_on_error=1 second_deadlock_stack=1"
export OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive

# The setup must see races: a parallel loop writing one shared variable without synchronisation is
# reported, and the same loop as a reduction is not.
probe=build-tsan/tsan_probe
cat > "$probe.cpp" <<'EOF'
#include <cstdio>
int main(int argc, char**) {
  long racy = 0, reduced = 0;
  const bool race = argc > 1;
  #pragma omp parallel for num_threads(2) reduction(+ : reduced)
  for (int i = 0; i < 1000; ++i) { if (race) racy += i; reduced += i; }
  std::printf("%ld %ld\n", racy, reduced);
}
EOF
g++ -O1 -g -fopenmp -fsanitize=thread "$probe.cpp" -o "$probe" -L"$llvm_lib" -Wl,-rpath,"$llvm_lib" -lomp
if ldd "$probe" | grep -q libgomp; then echo "tsan: the probe links libgomp, not LLVM's libomp" >&2; exit 1; fi
"$probe" >/dev/null || { echo "tsan: a race-free OpenMP reduction was reported" >&2; exit 1; }
if "$probe" race >/dev/null 2>&1; then echo "tsan: a racy OpenMP loop was not reported" >&2; exit 1; fi
echo "tsan: probe ok (race reported, reduction clean)"

for t in "${tests[@]}"; do
  exe=build-tsan/tests/$t
  if ldd "$exe" | grep -q libgomp; then echo "tsan: $t links libgomp, not LLVM's libomp" >&2; exit 1; fi
  echo "tsan: $t"
  "$exe" --gtest_brief=1 "$@"
done
