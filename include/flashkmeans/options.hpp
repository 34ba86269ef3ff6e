// Everything a fit can be told: one struct, defaults in one place.
#pragma once

#include <cstdint>
#include <functional>

#include "flashkmeans/tensor.hpp"
#include "flashkmeans/types.hpp"

namespace flashkmeans {

/// Reported after every iteration of every batch, from the calling thread.
struct IterationInfo {
  std::int64_t batch;  ///< which batch, 0 .. B-1
  int iteration;       ///< 1-based
  double shift;        ///< max over clusters of ||c_new - c_old||_2 in this iteration
  double inertia;      ///< objective of this iteration's labels against the updated centroids
  int changed;         ///< points whose label changed in this iteration (all points on the first)
};

struct KMeansOptions {
  std::int64_t n_clusters = 8;  ///< K, 1 <= K <= N
  int max_iter = 100;           ///< at most this many Lloyd iterations (assignment + update)
  /// Stop a batch once the largest centroid move of an iteration, max_k ||c_new - c_old||_2,
  /// is strictly below tol (absolute, not squared, not relative: the seed's meaning).
  /// tol = 0 runs all max_iter iterations.
  double tol = 0.0;
  Metric metric = Metric::euclidean;
  Init init = Init::random;
  TensorView init_centroids{};  ///< for Init::given: (B, K, D) or (K, D), any dtype, host memory
  std::uint64_t seed = 0;       ///< seeds Init::random and Init::kmeans_plus_plus
  EmptyClusters empty_clusters = EmptyClusters::relocate;
  Algorithm algorithm = Algorithm::automatic;
  int n_threads = 0;  ///< 0: up to all the cores OpenMP offers, fewer for small problems; results do not depend on this
  /// true (scikit-learn's behaviour): after the last update the points are assigned once more, so
  /// that the labels, distances and inertia returned belong to the centroids returned.
  /// false (the seed's behaviour): labels come from the last iteration's assignment, and a batch
  /// that converged returns the centroids before its last update.
  bool final_assignment = true;
  /// CUDA only: how float32 data is multiplied (see Precision).
  Precision precision = Precision::exact;
  /// CUDA only: the cudaStream_t to run on (null: the default stream). fit_into returns once the
  /// work is done; the outputs are then ready for work queued later on this stream.
  void* cuda_stream = nullptr;
  /// Called after every iteration (progress, logging). May be empty. On a CUDA device it is
  /// called from the host after the fit, once per iteration run, with the values recorded on
  /// the device (the loop itself never waits for the host).
  std::function<void(const IterationInfo&)> on_iteration;
};

/// Everything a predict can be told.
struct PredictOptions {
  Metric metric = Metric::euclidean;
  int n_threads = 0;                      ///< CPU: 0 uses up to all cores (fewer for small problems)
  Precision precision = Precision::exact;  ///< CUDA only, see KMeansOptions
  void* cuda_stream = nullptr;             ///< CUDA only, see KMeansOptions
};

}  // namespace flashkmeans
