// The line between the backend-independent driver (Lloyd loop, init, convergence, empty clusters)
// and a backend (where the distances and the per-cluster sums are computed).
#pragma once

#include <cstdint>
#include <memory>

#include "flashkmeans/types.hpp"

namespace flashkmeans::detail {

/// One batch of points as a backend reads it: float32 rows, prepared for the metric (unit rows for
/// cosine), row i at rows + i * ld.
struct BatchRows {
  const float* rows = nullptr;
  std::int64_t n = 0, d = 0, ld = 0;
};

/// What an assignment writes. labels is in/out: it holds the previous labels (or -1) on entry, so
/// that an assigner can count changes. dist, sums and counts may be null when not wanted.
struct AssignOutput {
  std::int32_t* labels = nullptr;
  float* dist = nullptr;      ///< (N) each point's distance to its centroid (see PredictResult)
  double* sums = nullptr;     ///< (K, D) local sums of the members of each cluster
  std::int64_t* counts = nullptr;  ///< (K) local member counts
};

/// Assigns one batch of points, iteration after iteration. Centroids may move between calls; a
/// bound-based assigner uses the moves to skip distances that cannot change a label.
class Assigner {
 public:
  virtual ~Assigner() = default;
  /// centroids: (K, D) float32, unit rows for cosine. Returns how many labels changed.
  virtual std::int64_t assign(const float* centroids, const AssignOutput& out) = 0;
  /// dist[i] = distance of point i to centroids[labels[i]].
  virtual void distances(const float* centroids, const std::int32_t* labels, float* dist) = 0;
  /// out[i * m + j] = ||x_i - c_j||^2 for the m rows of c (m, D): k-means++'s candidates.
  virtual void sq_distances(const float* c, std::int64_t m, float* out) = 0;
  /// Distance evaluations made so far (point-centroid pairs), for the docs and benchmarks.
  virtual std::int64_t evaluations() const = 0;
};

struct AssignerConfig {
  std::int64_t k = 0;
  Metric metric = Metric::euclidean;
  Algorithm algorithm = Algorithm::lloyd;  ///< resolved: lloyd or elkan
  int n_threads = 1;
};

/// A backend: makes assigners for batches in its memory.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::unique_ptr<Assigner> make_assigner(const BatchRows& x, const AssignerConfig& cfg) = 0;
};

/// The CPU backend (always built).
Backend& cpu_backend();

}  // namespace flashkmeans::detail
