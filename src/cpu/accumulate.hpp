// The update's local sums without atomics, and in an order that does not depend on thread count.
#pragma once

#include <cstdint>
#include <vector>

#include "core/backend.hpp"
#include "cpu/aligned.hpp"

namespace flashkmeans::cpu {

/// sums (K, D) and counts (K) of the points per label, by sort-inverse: points are ordered by
/// label (counting sort), each cluster's run is cut into fixed pieces summed in float, and the
/// pieces are combined in order in double. Keeps its buffers between iterations.
class SortedSums {
 public:
  void accumulate(const detail::BatchRows& x, const std::int32_t* labels, std::int64_t k, double* sums,
                  std::int64_t* counts, int n_threads);

 private:
  std::vector<std::int64_t> start_, fill_, piece_begin_, piece_cluster_, first_piece_;
  std::vector<std::int32_t> order_;
  std::vector<float> part_;
};

/// The sums and counts of the labels kept from pass to pass: after the first full accumulation
/// only the points whose label changed are moved (a few per mille once Lloyd settles), in index
/// order, so the result does not depend on the thread count. Float64 throughout.
class IncrementalSums {
 public:
  /// Brings the sums to `labels` and copies them out. The first call accumulates everything.
  void update(const detail::BatchRows& x, const std::int32_t* labels, std::int64_t k, double* sums,
              std::int64_t* counts, int n_threads);

 private:
  SortedSums full_;
  std::vector<double> sums_;
  std::vector<std::int64_t> counts_;
  std::vector<std::int32_t> labels_;  ///< the labels the sums belong to
};

/// Private per-chunk sums for the fused assign+accumulate pass (small K x D): chunk c owns
/// sums[c] (K x D floats) and counts[c]; combine() adds them in chunk order.
class ChunkSums {
 public:
  /// Rows per chunk: a function of the shape alone (never of the thread count). Small enough that
  /// small problems still split evenly over the threads; large enough that combining the chunks
  /// (chunks x K x D additions) stays a small fraction of the pass.
  static std::int64_t chunk_rows(std::int64_t n, std::int64_t k, std::int64_t d);
  ChunkSums(std::int64_t n, std::int64_t k, std::int64_t d);
  std::int64_t chunks() const { return chunks_; }
  std::int64_t rows_per_chunk() const { return rows_; }
  float* sums(std::int64_t c) { return sums_.data() + c * k_ * d_; }
  std::int64_t* counts(std::int64_t c) { return counts_.data() + c * k_; }
  void clear(std::int64_t c);
  void combine(double* sums, std::int64_t* counts, int n_threads) const;

 private:
  std::int64_t rows_, chunks_, k_, d_;
  AlignedVector<float> sums_;  // chunk c, cluster j: a row of D floats
  std::vector<std::int64_t> counts_;
};

}  // namespace flashkmeans::cpu
