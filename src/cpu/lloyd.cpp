#include <algorithm>
#include <vector>

#include "cpu/accumulate.hpp"
#include "cpu/assigners.hpp"
#include "cpu/panels.hpp"

namespace flashkmeans::cpu {

std::vector<float> row_norms(const detail::BatchRows& x, int n_threads) {
  std::vector<float> out(static_cast<std::size_t>(x.n));
  const SimdKernels& s = simd();
#pragma omp parallel for num_threads(n_threads) schedule(static)
  for (std::int64_t i = 0; i < x.n; ++i) out[i] = s.dot(x.rows + i * x.ld, x.rows + i * x.ld, x.d);
  return out;
}

void label_distances(const detail::BatchRows& x, const std::vector<float>& x_norms, const float* c,
                     const std::vector<float>& c_norms, const std::int32_t* labels, Metric metric,
                     float* dist, int n_threads) {
  const SimdKernels& s = simd();
#pragma omp parallel for num_threads(n_threads) schedule(static)
  for (std::int64_t i = 0; i < x.n; ++i) {
    const std::int32_t j = labels[i];
    const float dot = s.dot(x.rows + i * x.ld, c + j * x.d, x.d);
    const float score = metric == Metric::euclidean ? c_norms[j] - 2.f * dot : -dot;
    dist[i] = distance_from_score(metric, score, metric == Metric::euclidean ? x_norms[i] : 0.f);
  }
}

void sq_distances(const detail::BatchRows& x, const std::vector<float>& x_norms, const float* c,
                  std::int64_t m, float* out, int n_threads) {
  const SimdKernels& s = simd();
  CentroidPanels p;
  p.build(s, c, m, x.d, Metric::euclidean);
  constexpr std::int64_t kRows = 256;
  const std::int64_t blocks = (x.n + kRows - 1) / kRows;
#pragma omp parallel num_threads(n_threads)
  {
    std::vector<float> scratch(static_cast<std::size_t>(s.row_block() * x.d));
#pragma omp for schedule(static)
    for (std::int64_t b = 0; b < blocks; ++b) {
      const std::int64_t i0 = b * kRows, rows = std::min(kRows, x.n - i0);
      s.score_rows(x.rows + i0 * x.ld, x.ld, rows, x.d, p.panels.data(), p.bias.data(), m, p.alpha,
                   out + i0 * m, m, scratch.data());
      for (std::int64_t i = i0; i < i0 + rows; ++i)
        for (std::int64_t j = 0; j < m; ++j) out[i * m + j] = std::max(0.f, out[i * m + j] + x_norms[i]);
    }
  }
}

namespace {

// Rows per task: small enough for the points to stay in L2 while all centroid panels stream past.
constexpr std::int64_t kBlockRows = 96;
// Fuse the sums into the assignment pass while a chunk's private sums stay cache-sized.
constexpr std::int64_t kFusedMaxKD = 1 << 16;
constexpr std::int64_t kFewMinD = 64;
constexpr std::int64_t kFewMaxK = 16;

class LloydAssigner final : public detail::Assigner {
 public:
  LloydAssigner(const detail::BatchRows& x, const detail::AssignerConfig& cfg) : x_(x), cfg_(cfg) {}

  std::int64_t assign(const float* c, const detail::AssignOutput& out) override {
    const SimdKernels& s = simd();
    const std::int64_t k = cfg_.k, d = x_.d, n = x_.n;
    panels_.build(s, c, k, d, cfg_.metric);
    evaluations_ += n * k;
    const bool fused = out.sums && k * d <= kFusedMaxKD;
    // Few centroids in many dimensions: products along d waste nothing on padding K to a panel.
    const bool few = k <= kFewMaxK && d >= kFewMinD;
    if (fused && !chunks_) chunks_ = std::make_unique<ChunkSums>(n, k, d);
    const std::int64_t tasks = fused ? chunks_->chunks() : (n + kBlockRows - 1) / kBlockRows;
    const std::int64_t task_rows = fused ? chunks_->rows_per_chunk() : kBlockRows;
    // The few-centroid kernel takes a whole task at once: it fetches rows ahead within its call,
    // and blocks of kBlockRows would leave the first spans of every block unfetched.
    const std::int64_t call_rows = few ? task_rows : kBlockRows;
    std::int64_t changed = 0;
#pragma omp parallel num_threads(cfg_.n_threads) reduction(+ : changed)
    {
      std::vector<float> scratch(static_cast<std::size_t>(s.row_block() * d)), best(call_rows);
      std::vector<std::int32_t> lab(call_rows);
#pragma omp for schedule(dynamic, 1)
      for (std::int64_t t = 0; t < tasks; ++t) {
        const std::int64_t lo = t * task_rows, hi = std::min(n, lo + task_rows);
        if (fused) chunks_->clear(t);
        for (std::int64_t i0 = lo; i0 < hi; i0 += call_rows) {
          const std::int64_t m = std::min(call_rows, hi - i0);
          const float* rows = x_.rows + i0 * x_.ld;
          if (few) {
            s.argmin_rows_few(rows, x_.ld, m, d, c, panels_.bias.data(), k, panels_.alpha, lab.data(), best.data(),
                              fused ? chunks_->sums(t) : nullptr, fused ? chunks_->counts(t) : nullptr);
          } else {
            // The next block's rows come from memory while this one computes: ask for them now.
            for (std::int64_t r = i0 + m; r < std::min(hi, i0 + m + kBlockRows); ++r)
              for (std::int64_t q = 0; q < d; q += 16) __builtin_prefetch(x_.rows + r * x_.ld + q, 0, 2);
            s.argmin_rows(rows, x_.ld, m, d, panels_.panels.data(), panels_.bias.data(), k, panels_.alpha,
                          lab.data(), best.data(), scratch.data());
          }
          for (std::int64_t r = 0; r < m; ++r) {
            changed += out.labels[i0 + r] != lab[r];
            out.labels[i0 + r] = lab[r];
            if (out.dist) {  // ||x||^2 from the row while it is in cache: no extra pass over the data
              const float* row = rows + r * x_.ld;
              const float xn = cfg_.metric == Metric::euclidean ? s.dot(row, row, d) : 0.f;
              out.dist[i0 + r] = distance_from_score(cfg_.metric, best[r], xn);
            }
          }
          if (fused && !few)  // (the few-centroid kernel adds the rows itself, from L1)
            s.add_rows(chunks_->sums(t), chunks_->counts(t), rows, x_.ld, lab.data(), m, d);
        }
      }
    }
    if (fused)
      chunks_->combine(out.sums, out.counts, cfg_.n_threads);
    else if (out.sums)
      sums_.update(x_, out.labels, k, out.sums, out.counts, cfg_.n_threads);
    return changed;
  }

  void distances(const float* c, const std::int32_t* labels, float* dist) override {
    if (cfg_.metric == Metric::euclidean && norms_.empty()) norms_ = row_norms(x_, cfg_.n_threads);
    panels_.build(simd(), c, cfg_.k, x_.d, cfg_.metric);
    label_distances(x_, norms_, c, panels_.norms, labels, cfg_.metric, dist, cfg_.n_threads);
  }

  void sq_distances(const float* c, std::int64_t m, float* out) override {
    if (norms_.empty()) norms_ = row_norms(x_, cfg_.n_threads);
    cpu::sq_distances(x_, norms_, c, m, out, cfg_.n_threads);
  }

  std::int64_t evaluations() const override { return evaluations_; }

 private:
  detail::BatchRows x_;
  detail::AssignerConfig cfg_;
  CentroidPanels panels_;
  IncrementalSums sums_;
  std::vector<float> norms_;
  std::unique_ptr<ChunkSums> chunks_;
  std::int64_t evaluations_ = 0;
};

}  // namespace

std::unique_ptr<detail::Assigner> make_lloyd(const detail::BatchRows& x, const detail::AssignerConfig& cfg) {
  return std::make_unique<LloydAssigner>(x, cfg);
}

}  // namespace flashkmeans::cpu
