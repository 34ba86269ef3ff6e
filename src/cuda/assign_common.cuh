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

/// Writes point `at` (b * N + row of batch b): label i, the previous one where it changed, and its
/// distance from the score s = h_i - x.c. `old` is the point's previous label and xx its ||x||^2
/// (used for euclidean distances only), read by the caller ahead of time. Returns whether the
/// label changed.
__device__ __forceinline__ bool write_assignment(const AssignArgs& a, std::int64_t at, float s, int i, int old, float xx) {
  a.labels[at] = i;
  if (a.left_labels && old != i) a.left_labels[at] = old;
  if (a.dist) {
    float dist = s;  // dot: -x.c
    if (a.metric == Metric::euclidean) dist = fmaxf(0.f, xx + 2.f * s);
    if (a.metric == Metric::cosine) dist = 1.f + s;
    a.dist[at] = dist;
  }
  return old != i;
}

/// The moved bits of rows row16 .. row16 + 15 of batch b (row16 a multiple of 16), bit r for row
/// row16 + r (AssignArgs::moved).
__device__ __forceinline__ void write_moved(const AssignArgs& a, std::int64_t b, std::int64_t row16, unsigned bits) {
  a.moved[b * moved_words(a.n) + row16 / 16] = static_cast<std::uint16_t>(bits);
}

/// ||x||^2 of point `at` where the distance needs it, else 0.
__device__ __forceinline__ float norm_for_distance(const AssignArgs& a, std::int64_t at) {
  return a.dist && a.metric == Metric::euclidean ? a.xx[at] : 0.f;
}

/// The same, reading the previous label and the norm here.
__device__ __forceinline__ bool write_assignment(const AssignArgs& a, std::int64_t at, float s, int i) {
  return write_assignment(a, at, s, i, a.labels[at], norm_for_distance(a, at));
}

}  // namespace flashkmeans::cuda
