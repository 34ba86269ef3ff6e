// What a fit and a predict return. Arrays are C-contiguous and owned.
#pragma once

#include <cstdint>
#include <vector>

namespace flashkmeans {

struct KMeansResult {
  std::int64_t batch = 0, n = 0, k = 0, d = 0;
  std::vector<std::int32_t> labels;  ///< (B, N)
  std::vector<float> centroids;      ///< (B, K, D); unit vectors for cosine and dot
  std::vector<int> n_iter;           ///< (B) iterations run
  std::vector<double> inertia;       ///< (B) sum of the points' distances (see PredictResult)
  std::vector<std::uint8_t> converged;  ///< (B) 1 when the batch stopped on tol
};

/// Labels and each point's distance to its centroid: squared L2 for euclidean, 1 - cos for cosine,
/// -x.c for dot (so that smaller is nearer for every metric).
struct PredictResult {
  std::int64_t batch = 0, n = 0;
  std::vector<std::int32_t> labels;  ///< (B, N)
  std::vector<float> distances;      ///< (B, N)
};

/// Caller-owned outputs for fit_into and predict_into: C-contiguous arrays in the memory of the
/// input's device (host memory for CPU input, device memory of the same GPU for CUDA input).
struct OutputBuffers {
  std::int32_t* labels = nullptr;  ///< (B, N), required
  float* centroids = nullptr;      ///< (B, K, D), required by fit_into, unused by predict_into
  float* distances = nullptr;      ///< (B, N), optional: each point's distance (see PredictResult)
};

/// What fit_into returns besides its buffers (host memory).
struct FitSummary {
  std::vector<int> n_iter;              ///< (B) iterations run
  std::vector<double> inertia;          ///< (B)
  std::vector<std::uint8_t> converged;  ///< (B)
};

}  // namespace flashkmeans
