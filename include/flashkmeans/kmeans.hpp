// The entry points: fit and predict.
#pragma once

#include "flashkmeans/errors.hpp"
#include "flashkmeans/options.hpp"
#include "flashkmeans/result.hpp"
#include "flashkmeans/tensor.hpp"

namespace flashkmeans {

/// Clusters every batch of x (B, N, D) independently. Throws flashkmeans::Error on bad input
/// (the message names what was wrong and what was expected).
///
/// @code
///   std::vector<float> x(n * d);  // ... fill ...
///   flashkmeans::KMeansOptions opt;
///   opt.n_clusters = 100;
///   opt.max_iter = 20;
///   auto r = flashkmeans::fit(flashkmeans::TensorView::matrix(x.data(), n, d), opt);
///   // r.labels (N), r.centroids (K * D), r.inertia[0], r.n_iter[0]
/// @endcode
KMeansResult fit(const TensorView& x, const KMeansOptions& options);

/// Assigns every point of x (B, N, D) to its nearest centroid of centroids (B, K, D) (or (K, D),
/// shared by all batches) under metric. n_threads = 0 uses all cores.
PredictResult predict(const TensorView& x, const TensorView& centroids,
                      Metric metric = Metric::euclidean, int n_threads = 0);

/// fit, writing labels, centroids and (if given) distances into the caller's buffers, which live
/// where x lives: with CUDA input nothing is copied to the host but the per-batch summary.
FitSummary fit_into(const TensorView& x, const KMeansOptions& options, const OutputBuffers& out);

/// predict, writing labels and (if given) distances into the caller's buffers (where x lives).
void predict_into(const TensorView& x, const TensorView& centroids, const PredictOptions& options,
                  const OutputBuffers& out);

/// Whether this build has the CUDA backend and a CUDA device is visible.
bool cuda_available();

/// The SIMD instruction set the CPU backend runs with: "avx512", "avx2" or "generic".
const char* cpu_isa();

}  // namespace flashkmeans
