// Picks the kernels for this CPU once, at first use.
#include <cstdlib>
#include <cstring>
#include <initializer_list>

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
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  if (std::strcmp(isa, "avx2") == 0)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  return std::strcmp(isa, "generic") == 0;
}

const SimdKernels* choose() {
  const char* cap = std::getenv("FLASHKMEANS_ISA");
  for (const char* isa : {"avx512", "avx2", "generic"}) {
    if (cap && *cap && std::strcmp(cap, isa) != 0 && std::strcmp(isa, "generic") != 0) {
      // Skip instruction sets above the cap: "avx2" skips avx512, "generic" skips both.
      const bool above = std::strcmp(cap, "generic") == 0 ||
                         (std::strcmp(cap, "avx2") == 0 && std::strcmp(isa, "avx512") == 0);
      if (above) continue;
    }
    if (const SimdKernels* k = simd_by_name(isa)) return k;
  }
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
