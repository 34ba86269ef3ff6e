// Elkan's exact accelerated assignment. Per point and centroid: a lower bound l on their distance.
// Each pass computes a point's exact distance u to its own centroid (one dot product) and evaluates
// a centroid j only when u > l_j; everything else provably cannot beat the current label.
// Two departures from Elkan: u is not kept as a bound (almost every point needs the exact u in
// every pass anyway), and the second test, u > d(c_a, c_j)/2, is left out (on our shapes it pruned
// no pair while costing a K x K centroid distance matrix per iteration; see docs/perf-notes.md).
//
// Lower bounds are stored with an offset, l~_j = l_j + T_j, where T_j is centroid j's total drift
// so far: a move of c_j lowers every bound on it by the same amount, so the N x K bounds are
// never rewritten between iterations, only read (u + T_j > l~_j is the test).
//
// The bounds are float16 rounded down (bound16.hpp), in units of a power of two that puts the
// data's diameter near 1024: half the bytes per pass for 0.05% looser bounds.
//
// Distances come from the expansion ||x||^2 + ||c||^2 - 2 x.c in float32; each bound is widened
// by an error term e = kErr(D) * (||x||^2 + ||c||^2) on the squared distance, so the bounds hold
// for the exact distances and only float32 near-ties can differ from Lloyd's labels.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "cpu/accumulate.hpp"
#include "cpu/assigners.hpp"
#include "cpu/panels.hpp"

namespace flashkmeans::cpu {

namespace {

constexpr float kShrink = 1.f - 0x1.0p-20f;  // covers float rounding of the offsets l + T
constexpr std::int64_t kBlockRows = 64;
// When a pass evaluates more than this share of all pairs, the next one recomputes every
// distance in GEMM tiles instead (faster than scattered products, and the tightest bounds).
// Break-even shares measured (docs/perf-notes.md): an evaluated pair costs ~3 ns while the
// centroids stay in L2 (K x D floats <= 256 KiB) and ~4.3 ns once they spill to L3, against
// ~1.7 ns a pair for a GEMM pass that rewrites the bounds.
constexpr double kRefreshShareL2 = 0.4, kRefreshShareL3 = 0.28;
constexpr std::int64_t kL2CentroidBytes = 256 * 1024;
// A bounded pass first runs on max(kSampleMin, N / kSampleFraction) points to see if it pays.
constexpr std::int64_t kSampleMin = 1024;
constexpr std::int64_t kSampleFraction = 32;
constexpr std::int64_t kAhead = 2;  // points

class ElkanAssigner final : public detail::Assigner {
 public:
  ElkanAssigner(const detail::BatchRows& x, const detail::AssignerConfig& cfg)
      : x_(x), cfg_(cfg), k_(cfg.k),
        err_(static_cast<float>((std::sqrt(static_cast<double>(x.d)) + 4.0) * 0x1.0p-23)),
        refresh_share_(4 * cfg.k * x.d <= kL2CentroidBytes ? kRefreshShareL2 : kRefreshShareL3),
        norms_(row_norms(x, cfg.n_threads)),
        unit_(bound_unit(norms_)),
        // Left uninitialised: the first pass writes every bound (and touches the pages from the
        // threads that will use them); zeroing N x K bounds first would be a wasted pass.
        lower_(new Bound16[static_cast<std::size_t>(x.n * cfg.k)]),
        total_drift_(static_cast<std::size_t>(cfg.k), 0.0),
        total_drift_f_(static_cast<std::size_t>(cfg.k), 0.f) {}

  std::int64_t assign(const float* c, const detail::AssignOutput& out) override {
    const SimdKernels& s = simd();
    const std::int64_t n = x_.n;
    panels_.build(s, c, k_, x_.d, Metric::euclidean);
    if (!refresh_) update_drifts(c);  // from c_, the previous pass's centroids
    // This pass's centroids, kept for the next pass's drifts, in 64-byte-aligned rows: a scattered
    // candidate row of 512 bytes then spans 8 cache lines, not 9.
    c_.assign(c, c + k_ * x_.d);
    Pass pass;
    if (refresh_) {
      pass = full_rows(s, 0, n, out.labels);
      refresh_ = false;  // the next pass tries the (now tight) bounds
    } else {
      // Bounds first on a leading sample of the points; when they prune too little there, the
      // points are cheaper in GEMM tiles (which also leaves them with the tightest bounds).
      const std::int64_t sample = std::min(n, std::max<std::int64_t>(kSampleMin, n / kSampleFraction));
      sample_labels_.assign(out.labels, out.labels + sample);
      pass = bounded_rows(s, c_.data(), 0, sample, out.labels);
      if (pass.share(sample, k_) <= refresh_share_) {
        pass += bounded_rows(s, c_.data(), sample, n, out.labels);
        refresh_ = pass.share(n, k_) > refresh_share_;
      } else {
        // Every row in GEMM tiles, the sample too (from its labels before the try), so that all
        // bounds are equally fresh: a sample left with older bounds would judge the next pass
        // too pessimistically.
        std::copy(sample_labels_.begin(), sample_labels_.end(), out.labels);
        const std::int64_t tried = pass.evaluations;
        pass = full_rows(s, 0, n, out.labels);
        evaluations_ += tried;
      }
    }
    evaluations_ += pass.evaluations;
    if (out.dist) label_distances(x_, norms_, c, panels_.norms, out.labels, cfg_.metric, out.dist, cfg_.n_threads);
    if (out.sums) sums_.update(x_, out.labels, k_, out.sums, out.counts, cfg_.n_threads);
    return pass.changed;
  }

  void distances(const float* c, const std::int32_t* labels, float* dist) override {
    CentroidPanels p;
    p.build(simd(), c, k_, x_.d, Metric::euclidean);
    label_distances(x_, norms_, c, p.norms, labels, cfg_.metric, dist, cfg_.n_threads);
  }

  void sq_distances(const float* c, std::int64_t m, float* out) override {
    cpu::sq_distances(x_, norms_, c, m, out, cfg_.n_threads);
  }

  std::int64_t evaluations() const override { return evaluations_; }

 private:
  // A power of two near a 1024th of the data's diameter (2 max ||x||, which bounds every distance
  // between points and centroids): float16 then holds distances and 60-odd diameters of drift.
  static float bound_unit(const std::vector<float>& sq_norms) {
    float m = 0;
    for (float v : sq_norms) m = std::max(m, v);
    const double diameter = 2 * std::sqrt(static_cast<double>(m));
    return diameter > 0 && std::isfinite(diameter) ? static_cast<float>(std::exp2(std::ceil(std::log2(diameter)) - 10))
                                                   : 1.f;
  }

  static float lo_bound(float sq, float slack) { return std::sqrt(std::max(sq - slack, 0.f)); }
  static float hi_bound(float sq, float slack) { return std::sqrt(std::max(sq + slack, 0.f)); }

  struct Pass {
    std::int64_t changed = 0, evaluations = 0;
    double share(std::int64_t points, std::int64_t k) const {
      return points ? static_cast<double>(evaluations) / (static_cast<double>(points) * static_cast<double>(k)) : 0;
    }
    Pass& operator+=(const Pass& o) {
      changed += o.changed, evaluations += o.evaluations;
      return *this;
    }
  };

  // Every distance of points [lo, hi), in GEMM tiles written straight into the bound rows.
  Pass full_rows(const SimdKernels& s, std::int64_t lo, std::int64_t hi, std::int32_t* labels) {
    const std::int64_t d = x_.d, blocks = (hi - lo + kBlockRows - 1) / kBlockRows;
    std::int64_t changed = 0;
#pragma omp parallel num_threads(cfg_.n_threads) reduction(+ : changed)
    {
      std::vector<float> scratch(static_cast<std::size_t>(s.row_block() * d)),
          scores(static_cast<std::size_t>(kBlockRows * k_));  // a block's score tile, cache-sized
#pragma omp for schedule(static)
      for (std::int64_t b = 0; b < blocks; ++b) {
        const std::int64_t i0 = lo + b * kBlockRows, rows = std::min(kBlockRows, hi - i0);
        s.score_rows(x_.rows + i0 * x_.ld, x_.ld, rows, d, panels_.panels.data(), panels_.bias.data(), k_,
                     panels_.alpha, scores.data(), k_, scratch.data());
        for (std::int64_t i = i0; i < i0 + rows; ++i) {
          const std::int64_t best =
              s.elkan_bound_row(scores.data() + (i - i0) * k_, lower_.get() + i * k_, k_, norms_[i],
                                panels_.norms.data(), total_drift_f_.data(), err_, kShrink, unit_);
          changed += labels[i] != best;
          labels[i] = static_cast<std::int32_t>(best);
        }
      }
    }
    return {changed, (hi - lo) * k_};
  }

  // Each centroid's move since the last pass, and its total drift (the bound offsets).
  void update_drifts(const float* c) {
    const std::int64_t d = x_.d;
    for (std::int64_t j = 0; j < k_; ++j) {
      double m = 0;
      for (std::int64_t q = 0; q < d; ++q) {
        const double diff = static_cast<double>(c[j * d + q]) - c_[j * d + q];
        m += diff * diff;
      }
      // Rounded up: a bound lowered by slightly too much is still a bound.
      total_drift_[j] += static_cast<float>(std::sqrt(m) * (1 + 1e-6)) + std::numeric_limits<float>::denorm_min();
      total_drift_f_[j] = static_cast<float>(total_drift_[j]);
    }
  }

  // Points [lo, hi) by their bounds; update_drifts has run for these centroids.
  Pass bounded_rows(const SimdKernels& s, const float* c, std::int64_t lo, std::int64_t hi, std::int32_t* labels) {
    const std::int64_t d = x_.d;
    std::int64_t changed = 0, evals = 0;
#pragma omp parallel num_threads(cfg_.n_threads) reduction(+ : changed, evals)
    {
      std::vector<std::int32_t> cand(static_cast<std::size_t>(k_ + 16));  // whole vectors are stored
      std::vector<float> dots(static_cast<std::size_t>(k_)), scores(static_cast<std::size_t>(k_));
#pragma omp for schedule(dynamic, 256)
      for (std::int64_t i = lo; i < hi; ++i) {
        if (i + kAhead < hi) {  // the bound rows stream from memory (N x K of them): fetch ahead
          const Bound16* next = lower_.get() + (i + kAhead) * k_;
          for (std::int64_t q = 0; q < k_; q += 32) __builtin_prefetch(next + q);
        }
        const std::int32_t a = labels[i];
        // The exact distance to the own centroid first (one dot product): the bound scan then
        // runs with the tightest u. Nearly every point has some candidate under a loose u.
        Bound16* l = lower_.get() + i * k_;
        const float* xi = x_.rows + i * x_.ld;
        const float xn = norms_[i];
        float best_score = panels_.norms[a] - 2.f * s.dot(xi, c + a * d, d);
        const float slack_a = err_ * (xn + panels_.norms[a]);
        const float u = hi_bound(xn + best_score, slack_a);
        ++evals;
        l[a] = kBound16Inf;  // the own centroid is not a candidate
        const std::int64_t kept = s.elkan_candidates(l, total_drift_f_.data(), u, unit_, k_, cand.data());
        l[a] = bound16_down((lo_bound(xn + best_score, slack_a) + total_drift_f_[a]) * kShrink / unit_);
        if (kept == 0) continue;
        s.candidate_dots(xi, c, d, cand.data(), kept, dots.data());
        evals += kept;
        const std::int64_t at = s.elkan_update(cand.data(), dots.data(), kept, panels_.norms.data(),
                                               total_drift_f_.data(), xn, err_, kShrink, unit_, l, scores.data());
        std::int32_t best = a;
        if (at >= 0 && (scores[at] < best_score || (scores[at] == best_score && cand[at] < a)))
          best = cand[at], best_score = scores[at];
        changed += best != a;
        labels[i] = best;
      }
    }
    return {changed, evals};
  }

  detail::BatchRows x_;
  detail::AssignerConfig cfg_;
  std::int64_t k_;
  float err_;
  double refresh_share_;  ///< a bounded pass evaluating more than this share of pairs loses to GEMM
  std::vector<float> norms_;
  float unit_;                        ///< the bounds' float16 unit (a power of two)
  std::unique_ptr<Bound16[]> lower_;  // (N, K) offset lower bounds, float16 rounded down
  std::vector<double> total_drift_;
  std::vector<float> total_drift_f_;
  std::vector<std::int32_t> sample_labels_;
  AlignedVector<float> c_;  ///< the last pass's centroids (K, D)
  CentroidPanels panels_;
  IncrementalSums sums_;
  bool refresh_ = true;
  std::int64_t evaluations_ = 0;
};

}  // namespace

std::unique_ptr<detail::Assigner> make_elkan(const detail::BatchRows& x, const detail::AssignerConfig& cfg) {
  return std::make_unique<ElkanAssigner>(x, cfg);
}

}  // namespace flashkmeans::cpu
