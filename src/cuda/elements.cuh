// Reading and writing the three element types as float on the device.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "flashkmeans/types.hpp"

namespace flashkmeans::cuda {

/// The value of a 16-bit element from its bits: bfloat16 where bf16, else float16.
__device__ __forceinline__ float half_as_float(std::uint16_t bits, bool bf16) {
  return bf16 ? __uint_as_float(static_cast<std::uint32_t>(bits) << 16) : __half2float(__ushort_as_half(bits));
}

__device__ __forceinline__ float load_as_float(const void* base, std::int64_t at, DType t) {
  if (t == DType::float32) return static_cast<const float*>(base)[at];
  return half_as_float(static_cast<const std::uint16_t*>(base)[at], t != DType::float16);
}

/// Elements at..at+3 as float: one 8- or 16-byte load when `vector` (the caller has checked that
/// such loads are aligned there) and all four are in the row (cols_left >= 4), else one at a time
/// (zeros past cols_left).
__device__ __forceinline__ void load4_as_float(const void* base, std::int64_t at, DType t, bool vector, std::int64_t cols_left,
                                               float (&v)[4]) {
  if (vector && cols_left >= 4) {
    if (t == DType::float32) {
      const float4 q = *reinterpret_cast<const float4*>(static_cast<const float*>(base) + at);
      v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
    } else {
      const uint2 q = *reinterpret_cast<const uint2*>(static_cast<const std::uint16_t*>(base) + at);
      const std::uint32_t w[2] = {q.x, q.y};
#pragma unroll
      for (int e = 0; e < 4; ++e) v[e] = half_as_float(static_cast<std::uint16_t>(w[e / 2] >> (16 * (e % 2))), t != DType::float16);
    }
    return;
  }
#pragma unroll
  for (int e = 0; e < 4; ++e) v[e] = e < cols_left ? load_as_float(base, at + e, t) : 0.f;
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

// v as the sum of three values of the 16-bit type t (q[0] + q[1] + q[2]: 33 bits of float16, 24 of
// bfloat16, each part the rounding of what the ones before left), as raw bits. Infinite v: q[0]
// is v, the others 0.
__device__ __forceinline__ void split3(float v, DType t, std::uint16_t (&q)[3]) {
  float rest = v;
#pragma unroll
  for (int i = 0; i < 3; ++i) {
    if (t == DType::bfloat16) {
      const __nv_bfloat16 p = __float2bfloat16_rn(rest);
      q[i] = __bfloat16_as_ushort(p), rest = isinf(v) ? 0.f : rest - __bfloat162float(p);
    } else {
      const __half p = __float2half_rn(rest);
      q[i] = __half_as_ushort(p), rest = isinf(v) ? 0.f : rest - __half2float(p);
    }
  }
}

/// f rounded to tf32 (10-bit mantissa, to nearest, ties away), as the bits the tensor cores take.
__device__ __forceinline__ std::uint32_t to_tf32(float f) {
  std::uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(f));
  return r;
}

inline std::int64_t element_bytes(DType t) { return t == DType::float32 ? 4 : 2; }

/// Whether rows of `cols` elements at data (strides in elements) can be read `group` elements at a
/// time with aligned loads of that many elements' bytes: whole groups, and every row starting on
/// such a boundary. Pass a stride that is never used (one row, one batch) as 0.
inline bool group_loads(const void* data, DType t, std::int64_t cols, std::int64_t row_stride, std::int64_t batch_stride,
                        int group) {
  const std::int64_t es = element_bytes(t), bytes = group * es;
  return cols % group == 0 && (row_stride * es) % bytes == 0 && (batch_stride * es) % bytes == 0 &&
         reinterpret_cast<std::uintptr_t>(data) % bytes == 0;
}
/// Four elements at a time (load4_as_float's `vector`: 8- or 16-byte loads).
inline bool four_element_loads(const void* data, DType t, std::int64_t cols, std::int64_t row_stride,
                               std::int64_t batch_stride) {
  return group_loads(data, t, cols, row_stride, batch_stride, 4);
}

}  // namespace flashkmeans::cuda
