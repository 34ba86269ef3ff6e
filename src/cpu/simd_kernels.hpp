// The CPU backend's SIMD kernels, one implementation per instruction set, chosen at run time.
#pragma once

#include <cstdint>

#include "cpu/bound16.hpp"

namespace flashkmeans::cpu {

/// One instruction set's kernels. Points are float32 rows (row stride ldx); centroids are packed
/// into panels of panel_width() centroids by pack_panels. A score is bias[j] + alpha * x.c_j
/// (euclidean: bias = ||c||^2, alpha = -2; cosine and dot: bias = 0, alpha = -1), smaller is nearer.
struct SimdKernels {
  const char* name;
  int (*panel_width)();
  int (*row_block)();
  /// out: ceil(k / panel_width) panels of d * panel_width floats; padding centroids are zero.
  void (*pack_panels)(const float* c, std::int64_t k, std::int64_t d, std::int64_t ldc, float* out);
  /// labels[i] = argmin_j score (first j on ties), best_score[i] = that score. bias is padded to a
  /// whole panel with +inf. scratch: row_block() * d floats.
  void (*argmin_rows)(const float* x, std::int64_t ldx, std::int64_t n, std::int64_t d,
                      const float* panels, const float* bias, std::int64_t k, float alpha,
                      std::int32_t* labels, float* best_score, float* scratch);
  /// The same as argmin_rows for few centroids in many dimensions: c is (K, D) row-major, not
  /// packed, bias is not padded, and nothing is computed for padding. When sums is not null, each
  /// row is also added to sums[label] (K x D floats) and counted in counts[label], while it is in
  /// L1: the fused update of a memory-bound pass.
  void (*argmin_rows_few)(const float* x, std::int64_t ldx, std::int64_t n, std::int64_t d, const float* c,
                          const float* bias, std::int64_t k, float alpha, std::int32_t* labels,
                          float* best_score, float* sums, std::int64_t* counts);
  /// out[i * ldo + j] = score of point i against centroid j, for every j < k.
  void (*score_rows)(const float* x, std::int64_t ldx, std::int64_t n, std::int64_t d,
                     const float* panels, const float* bias, std::int64_t k, float alpha, float* out,
                     std::int64_t ldo, float* scratch);
  float (*dot)(const float* a, const float* b, std::int64_t d);
  /// out[t] = x . c[cand[t]] for t < m (c is (K, d) row-major): Elkan's surviving candidates.
  void (*candidate_dots)(const float* x, const float* c, std::int64_t d, const std::int32_t* cand, std::int64_t m,
                         float* out);
  /// Elkan's bounds are float16 in units of `unit` (a power of two; see bound16.hpp): bound j is
  /// lower[j] * unit. Writes the j with ub + drift_total[j] > that, ascending; returns how many.
  /// out needs room for k + 16 entries (whole vectors are stored).
  std::int64_t (*elkan_candidates)(const Bound16* lower, const float* drift_total, float ub, float unit,
                                   std::int64_t k, std::int32_t* out);
  /// A row of scores (||c_j||^2 - 2 x.c_j) turned into Elkan's offset lower bounds (as elkan_update
  /// writes them) in `row`; returns the j of the smallest score (first on ties).
  std::int64_t (*elkan_bound_row)(const float* scores, Bound16* row, std::int64_t k, float x_norm, const float* c_norms,
                                  const float* drift_total, float err, float shrink, float unit);
  /// For Elkan's evaluated candidates (ascending j) with dots[t] = x.c_cand[t]: scores[t] =
  /// ||c||^2 - 2 x.c, lower[j] = (max(||x - c||^2 - err (||x||^2 + ||c||^2), 0)^(1/2) + drift_total[j]) * shrink,
  /// stored rounded down in units of `unit`. Returns the t of the smallest score (first on ties), or -1 when m = 0.
  std::int64_t (*elkan_update)(const std::int32_t* cand, const float* dots, std::int64_t m, const float* c_norms,
                               const float* drift_total, float x_norm, float err, float shrink, float unit,
                               Bound16* lower, float* scores);
  /// true when no element of x[0..n) is NaN or infinite.
  bool (*all_finite)(const float* x, std::int64_t n);
  /// acc[0..d) += x[0..d)
  void (*add_row)(float* acc, const float* x, std::int64_t d);
  /// For r < m in order: sums[labels[r]] (rows of d floats) += row r of x, counts[labels[r]] += 1.
  void (*add_rows)(float* sums, std::int64_t* counts, const float* x, std::int64_t ldx, const std::int32_t* labels,
                   std::int64_t m, std::int64_t d);
};

/// The best kernels this CPU runs (AVX2 rather than AVX-512 on AMD, see simd_dispatch.cpp),
/// capped by the environment variable FLASHKMEANS_ISA ("avx512", "avx2" or "generic"): with a cap
/// set, the best at or below it, so that every path can be tested on one machine.
const SimdKernels& simd();

/// The kernels of one instruction set by name, or nullptr when this CPU or build lacks it.
const SimdKernels* simd_by_name(const char* name);

}  // namespace flashkmeans::cpu
