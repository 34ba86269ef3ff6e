// Reading and writing the three element types as float on the device.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "flashkmeans/types.hpp"

namespace flashkmeans::cuda {

__device__ __forceinline__ float load_as_float(const void* base, std::int64_t at, DType t) {
  if (t == DType::float32) return static_cast<const float*>(base)[at];
  const std::uint16_t bits = static_cast<const std::uint16_t*>(base)[at];
  if (t == DType::float16) return __half2float(__ushort_as_half(bits));
  return __uint_as_float(static_cast<std::uint32_t>(bits) << 16);
}

/// Rounds v to the element type and stores it (round to nearest even).
__device__ __forceinline__ float store_rounded(void* base, std::int64_t at, DType t, float v) {
  if (t == DType::float32) {
    static_cast<float*>(base)[at] = v;
    return v;
  }
  if (t == DType::float16) {
    const __half hv = __float2half_rn(v);
    static_cast<std::uint16_t*>(base)[at] = __half_as_ushort(hv);
    return __half2float(hv);
  }
  const __nv_bfloat16 bv = __float2bfloat16_rn(v);
  static_cast<std::uint16_t*>(base)[at] = __bfloat16_as_ushort(bv);
  return __bfloat162float(bv);
}

/// f rounded to tf32 (10-bit mantissa, to nearest, ties away), as the bits the tensor cores take.
__device__ __forceinline__ std::uint32_t to_tf32(float f) {
  std::uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(f));
  return r;
}

inline std::int64_t element_bytes(DType t) { return t == DType::float32 ? 4 : 2; }

}  // namespace flashkmeans::cuda
