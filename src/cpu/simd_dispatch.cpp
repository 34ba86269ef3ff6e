// Picks the kernels for this CPU once, at first use.
#include <cstdlib>
#include <cstring>

#include "cpu/simd_kernels.hpp"

namespace flashkmeans::cpu {

extern const SimdKernels kSimd_generic;
#if defined(FLASHKMEANS_X86)
extern const SimdKernels kSimd_avx2;
extern const SimdKernels kSimd_avx512;
#endif

namespace {

bool cpu_has(const char* isa) {
#if defined(FLASHKMEANS_X86)
  __builtin_cpu_init();
  if (std::strcmp(isa, "avx512") == 0)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  if (std::strcmp(isa, "avx2") == 0)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#endif
  return std::strcmp(isa, "generic") == 0;
}

// AMD's AVX-512 parts so far (Zen 4) run a 512-bit FMA as two 256-bit halves: no extra flops, and
// the AVX2 kernels measured faster on three of the four benchmark shapes (docs/perf-notes.md).
bool prefer_avx2() {
#if defined(FLASHKMEANS_X86)
  __builtin_cpu_init();
  return __builtin_cpu_is("amd");
#else
  return false;
#endif
}

const SimdKernels* choose() {
  // FLASHKMEANS_ISA caps the choice: the best instruction set at or below it.
  const char* cap = std::getenv("FLASHKMEANS_ISA");
  const bool capped = cap && *cap;
  const char* order[] = {"avx512", "avx2", "generic"};
  int from = 0;
  for (int i = 0; i < 3; ++i)
    if (capped && std::strcmp(cap, order[i]) == 0) from = i;
  if (!capped && prefer_avx2() && simd_by_name("avx2")) from = 1;
  for (int i = from; i < 3; ++i)
    if (const SimdKernels* k = simd_by_name(order[i])) return k;
  return &kSimd_generic;
}

}  // namespace

const SimdKernels* simd_by_name(const char* name) {
  if (!cpu_has(name)) return nullptr;
#if defined(FLASHKMEANS_X86)
  if (std::strcmp(name, "avx512") == 0) return &kSimd_avx512;
  if (std::strcmp(name, "avx2") == 0) return &kSimd_avx2;
#endif
  return &kSimd_generic;
}

const SimdKernels& simd() {
  static const SimdKernels* chosen = choose();
  return *chosen;
}

}  // namespace flashkmeans::cpu
