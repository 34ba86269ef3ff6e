#include "cpu/accumulate.hpp"

#include <algorithm>
#include <cstring>

#include "cpu/simd_kernels.hpp"

namespace flashkmeans::cpu {

void SortedSums::accumulate(const detail::BatchRows& x, const std::int32_t* labels, std::int64_t k, double* sums,
                            std::int64_t* counts, int n_threads) {
  constexpr std::int64_t kPiece = 256;
  const std::int64_t n = x.n, d = x.d;
  start_.assign(static_cast<std::size_t>(k + 1), 0);
  for (std::int64_t i = 0; i < n; ++i) ++start_[labels[i] + 1];
  for (std::int64_t j = 0; j < k; ++j) {
    counts[j] = start_[j + 1];
    start_[j + 1] += start_[j];
  }
  order_.resize(static_cast<std::size_t>(n));
  fill_.assign(start_.begin(), start_.end() - 1);
  for (std::int64_t i = 0; i < n; ++i) order_[fill_[labels[i]]++] = static_cast<std::int32_t>(i);
  // Pieces: cluster j's run [start[j], start[j+1]) cut every kPiece points.
  piece_begin_.clear();
  piece_cluster_.clear();
  for (std::int64_t j = 0; j < k; ++j)
    for (std::int64_t p = start_[j]; p < start_[j + 1]; p += kPiece) {
      piece_begin_.push_back(p);
      piece_cluster_.push_back(j);
    }
  const std::int64_t pieces = static_cast<std::int64_t>(piece_begin_.size());
  part_.resize(static_cast<std::size_t>(pieces * d));
  const SimdKernels& s = simd();
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 16)
  for (std::int64_t p = 0; p < pieces; ++p) {
    float* acc = part_.data() + p * d;
    std::fill(acc, acc + d, 0.f);
    const std::int64_t end = std::min(piece_begin_[p] + kPiece, start_[piece_cluster_[p] + 1]);
    for (std::int64_t t = piece_begin_[p]; t < end; ++t) s.add_row(acc, x.rows + order_[t] * x.ld, d);
  }
  std::fill(sums, sums + k * d, 0.0);
  // Pieces of one cluster are consecutive: combine them in order, clusters in parallel.
  first_piece_.assign(static_cast<std::size_t>(k + 1), pieces);
  for (std::int64_t p = pieces - 1; p >= 0; --p) first_piece_[piece_cluster_[p]] = p;
  for (std::int64_t j = k - 1; j >= 0; --j)
    if (first_piece_[j] == pieces) first_piece_[j] = first_piece_[j + 1];
#pragma omp parallel for num_threads(n_threads) schedule(static)
  for (std::int64_t j = 0; j < k; ++j)
    for (std::int64_t p = first_piece_[j]; p < first_piece_[j + 1]; ++p)
      for (std::int64_t q = 0; q < d; ++q) sums[j * d + q] += part_[p * d + q];
}

std::int64_t ChunkSums::chunk_rows(std::int64_t n, std::int64_t k, std::int64_t d) {
  constexpr std::int64_t kMinRows = 384, kMaxChunks = 128, kRowsPerSum = 16, kEvenChunks = 8;
  const std::int64_t rows = std::max({kMinRows, (n + kMaxChunks - 1) / kMaxChunks, k * d / kRowsPerSum});
  // From 8 chunks on, a multiple of 8 chunks of equal length: 2, 4 or 8 threads then take equal
  // shares (a short last chunk left a thread idle for most of a chunk's time at the pass's end).
  const std::int64_t chunks = (n + rows - 1) / rows;
  if (chunks < kEvenChunks) return rows;
  const std::int64_t even = (chunks + kEvenChunks - 1) / kEvenChunks * kEvenChunks;
  return (n + even - 1) / even;
}

void IncrementalSums::update(const detail::BatchRows& x, const std::int32_t* labels, std::int64_t k, double* sums,
                             std::int64_t* counts, int n_threads) {
  const std::int64_t n = x.n, d = x.d;
  // Moving a point costs two row updates, serially; summing everything again costs one a point, in
  // parallel. The switch depends on the labels alone, never on the thread count (determinism).
  std::int64_t changed = 0;
  if (!labels_.empty())
    for (std::int64_t i = 0; i < n; ++i) changed += labels_[i] != labels[i];
  if (labels_.empty() || changed * 4 > n) {
    sums_.resize(static_cast<std::size_t>(k * d));
    counts_.resize(static_cast<std::size_t>(k));
    full_.accumulate(x, labels, k, sums_.data(), counts_.data(), n_threads);
  } else {
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int32_t from = labels_[i], to = labels[i];
      if (from == to) continue;
      const float* row = x.rows + i * x.ld;
      double* a = sums_.data() + from * d;
      double* b = sums_.data() + to * d;
      for (std::int64_t q = 0; q < d; ++q) a[q] -= row[q], b[q] += row[q];
      --counts_[from], ++counts_[to];
    }
  }
  labels_.assign(labels, labels + n);
  std::copy(sums_.begin(), sums_.end(), sums);
  std::copy(counts_.begin(), counts_.end(), counts);
}

ChunkSums::ChunkSums(std::int64_t n, std::int64_t k, std::int64_t d)
    : rows_(chunk_rows(n, k, d)), chunks_((n + rows_ - 1) / rows_), k_(k), d_(d),
      sums_(static_cast<std::size_t>(chunks_ * k * d)), counts_(static_cast<std::size_t>(chunks_ * k)) {}

void ChunkSums::clear(std::int64_t c) {
  std::fill(sums(c), sums(c) + k_ * d_, 0.f);
  std::fill(counts(c), counts(c) + k_, 0);
}

void ChunkSums::combine(double* out_sums, std::int64_t* out_counts, int n_threads) const {
  const std::int64_t kd = k_ * d_;
#pragma omp parallel for num_threads(n_threads) schedule(static)
  for (std::int64_t e = 0; e < kd; ++e) {
    double s = 0;
    for (std::int64_t c = 0; c < chunks_; ++c) s += sums_[c * kd + e];
    out_sums[e] = s;
  }
  for (std::int64_t j = 0; j < k_; ++j) {
    std::int64_t s = 0;
    for (std::int64_t c = 0; c < chunks_; ++c) s += counts_[c * k_ + j];
    out_counts[j] = s;
  }
}

}  // namespace flashkmeans::cpu
