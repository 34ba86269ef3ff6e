// Pieces shared by the two assignment kernels (mma.sync in assign.cu, wgmma in assign_wgmma.cu):
// element sizes, the tie rule, the quad combine and the write of one point's result.
#pragma once

#include <cstdint>

#include "cuda/assign.cuh"

namespace flashkmeans::cuda {

__host__ __device__ constexpr int element_size(MmaKind k) { return k == MmaKind::f16 || k == MmaKind::bf16 ? 2 : 4; }

/// Score s at column i beats (bs, bi): lower score, ties to the lower column.
__device__ __forceinline__ bool better(float s, int i, float bs, int bi) { return s < bs || (s == bs && i < bi); }

/// The four threads of a quad hold the same rows and other columns: each ends with the best.
__device__ __forceinline__ void quad_best(float& s, int& i) {
#pragma unroll
  for (int off = 1; off <= 2; off <<= 1) {
    const float os = __shfl_xor_sync(0xffffffffu, s, off);
    const int oi = __shfl_xor_sync(0xffffffffu, i, off);
    if (better(os, oi, s, i)) s = os, i = oi;
  }
}

/// Writes point `at` (b * N + row) of batch b: label i, its sort key and its distance from the
/// score s = h_i - x.c. Returns whether the label changed.
__device__ __forceinline__ bool write_assignment(const AssignArgs& a, std::int64_t b, std::int64_t at, float s, int i) {
  const bool moved = a.labels[at] != i;
  a.labels[at] = i;
  if (a.keys) a.keys[at] = static_cast<std::int32_t>(b * a.k + i);
  if (a.dist) {
    float dist = s;  // dot: -x.c
    if (a.metric == Metric::euclidean) dist = fmaxf(0.f, a.xx[at] + 2.f * s);
    if (a.metric == Metric::cosine) dist = 1.f + s;
    a.dist[at] = dist;
  }
  return moved;
}

}  // namespace flashkmeans::cuda
