// Centroids prepared for the SIMD kernels: packed panels plus the score epilogue's bias and scale.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "cpu/aligned.hpp"
#include "cpu/simd_kernels.hpp"
#include "flashkmeans/types.hpp"

namespace flashkmeans::cpu {

struct CentroidPanels {
  AlignedVector<float> panels;  ///< ceil(K / panel) panels of D x panel floats
  std::vector<float> bias;    ///< per centroid, padded with +inf so padding never wins
  std::vector<float> norms;   ///< ||c_j||^2
  float alpha = -2.f;         ///< score = bias + alpha * x.c

  void build(const SimdKernels& s, const float* c, std::int64_t k, std::int64_t d, Metric metric) {
    const std::int64_t p = s.panel_width(), padded = (k + p - 1) / p * p;
    panels.resize(static_cast<std::size_t>(padded * d));
    s.pack_panels(c, k, d, d, panels.data());
    bias.assign(static_cast<std::size_t>(padded), std::numeric_limits<float>::infinity());
    norms.resize(static_cast<std::size_t>(k));
    for (std::int64_t j = 0; j < k; ++j) {
      double n2 = 0;
      for (std::int64_t q = 0; q < d; ++q) n2 += static_cast<double>(c[j * d + q]) * c[j * d + q];
      norms[j] = static_cast<float>(n2);
      bias[j] = metric == Metric::euclidean ? norms[j] : 0.f;
    }
    alpha = metric == Metric::euclidean ? -2.f : -1.f;
  }
};

/// A point's reported distance from its best score (see PredictResult): squared L2 for euclidean
/// (x_norm2 + score, clamped at 0), 1 - cos for cosine, -x.c for dot.
inline float distance_from_score(Metric m, float score, float x_norm2) {
  if (m == Metric::euclidean) return score + x_norm2 > 0.f ? score + x_norm2 : 0.f;
  return m == Metric::cosine ? 1.f + score : score;
}

}  // namespace flashkmeans::cpu
