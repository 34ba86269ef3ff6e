// Initial centroids: random rows, greedy k-means++, or given.
#pragma once

#include <cstdint>

#include "core/backend.hpp"
#include "flashkmeans/options.hpp"

namespace flashkmeans::detail {

/// Writes the K initial centroids (K, D) of batch b into out, as the raw rows (before any
/// normalising for cosine, which the driver applies).
void init_centroids(const BatchRows& x, const TensorView& original, std::int64_t b,
                    const KMeansOptions& opt, Assigner& assigner, int n_threads, float* out);

}  // namespace flashkmeans::detail
