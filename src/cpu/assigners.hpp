// The CPU backend's assigners.
#pragma once

#include <memory>
#include <vector>

#include "core/backend.hpp"

namespace flashkmeans::cpu {

/// Every point against every centroid in SIMD tiles; for small K x D the update's sums are
/// accumulated in the same pass over the data.
std::unique_ptr<detail::Assigner> make_lloyd(const detail::BatchRows& x, const detail::AssignerConfig& cfg);

/// Elkan's bounds (one lower bound per point and centroid, one upper bound per point).
std::unique_ptr<detail::Assigner> make_elkan(const detail::BatchRows& x, const detail::AssignerConfig& cfg);

/// ||x_i||^2 for every row, in parallel.
std::vector<float> row_norms(const detail::BatchRows& x, int n_threads);

/// dist[i] = distance of point i to c[labels[i]] (see PredictResult), exactly from a dot product.
void label_distances(const detail::BatchRows& x, const std::vector<float>& x_norms, const float* c,
                     const std::vector<float>& c_norms, const std::int32_t* labels, Metric metric,
                     float* dist, int n_threads);

/// out[i * m + j] = ||x_i - c_j||^2 for the m rows of c (m, D).
void sq_distances(const detail::BatchRows& x, const std::vector<float>& x_norms, const float* c,
                  std::int64_t m, float* out, int n_threads);

}  // namespace flashkmeans::cpu
