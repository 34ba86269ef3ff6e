// The stopping rule (tol), final_assignment and the on_iteration callback.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "checks.hpp"
#include "reference.hpp"

namespace fk = flashkmeans;
using fk::Algorithm;
using fk::Metric;

namespace {

struct Recorded {
  std::vector<fk::IterationInfo> calls;
};

fk::KMeansOptions given_options(const fkt::Array& init, std::int64_t k, Metric m, Algorithm a, int max_iter,
                                double tol, bool final_assignment = true, Recorded* rec = nullptr) {
  fk::KMeansOptions o;
  o.n_clusters = k;
  o.max_iter = max_iter;
  o.tol = tol;
  o.metric = m;
  o.algorithm = a;
  o.init = fk::Init::given;
  o.init_centroids = init.view();
  o.empty_clusters = fk::EmptyClusters::keep;
  o.final_assignment = final_assignment;
  if (rec) o.on_iteration = [rec](const fk::IterationInfo& info) { rec->calls.push_back(info); };
  return o;
}

// Unstructured data: Lloyd needs many iterations with shrinking, positive shifts.
struct Gaussian {
  static constexpr std::int64_t n = 1500, d = 8, k = 10;
  fkt::Array x, init;
  explicit Gaussian(std::uint32_t seed, std::int64_t batch = 1) {
    std::mt19937 g(seed);
    x = fkt::make_array(fkt::gaussian(g, batch * n * d), batch, n, d, fk::DType::float32);
    init = fkt::first_rows(x, k);
  }
};

class Convergence : public testing::TestWithParam<std::pair<Metric, Algorithm>> {};

std::string param_name(const testing::TestParamInfo<std::pair<Metric, Algorithm>>& i) {
  return std::string(fk::to_string(i.param.first)) + "_" + fk::to_string(i.param.second);
}

// tol = 0 runs every iteration, even after the centroids stopped moving (shift 0 is not < 0).
TEST_P(Convergence, TolZeroRunsAllIterations) {
  const auto [m, a] = GetParam();
  std::mt19937 g(11);
  const std::int64_t n = 600, d = 6, k = 4;
  const fkt::Array x = fkt::make_array(fkt::blobs(g, 1, n, d, k, 10.0, 0.5), 1, n, d, fk::DType::float32);
  const fkt::Array init = fkt::first_rows(x, k);
  Recorded rec;
  const fk::KMeansResult r = fk::fit(x.view(), given_options(init, k, m, a, 25, 0.0, true, &rec));
  EXPECT_EQ(r.n_iter[0], 25);
  EXPECT_EQ(r.converged[0], 0);
  ASSERT_EQ(rec.calls.size(), 25u);
  // Well-separated blobs reach a fixed point long before 25 iterations.
  EXPECT_EQ(rec.calls.back().shift, 0.0);
}

// A batch stops at the first iteration whose shift is strictly below tol.
TEST_P(Convergence, StopsAtFirstShiftStrictlyBelowTol) {
  const auto [m, a] = GetParam();
  const Gaussian data(12);
  Recorded all;
  fk::fit(data.x.view(), given_options(data.init, data.k, m, a, 40, 0.0, true, &all));
  ASSERT_EQ(all.calls.size(), 40u);
  // Pick an iteration 3 <= t <= 30 with a positive shift smaller than every shift before it.
  int t = 0;
  double before = std::numeric_limits<double>::infinity();
  for (int it = 1; it <= 30; ++it) {
    const double s = all.calls[it - 1].shift;
    if (it >= 3 && s > 0 && s < before) t = it;
    before = std::min(before, s);
  }
  ASSERT_GE(t, 3) << "the data should need several iterations";
  const double s_t = all.calls[t - 1].shift;

  // tol just above s_t: stops at t.
  Recorded rec;
  const double tol = std::nextafter(s_t, std::numeric_limits<double>::infinity());
  const fk::KMeansResult r = fk::fit(data.x.view(), given_options(data.init, data.k, m, a, 40, tol, true, &rec));
  EXPECT_EQ(r.n_iter[0], t);
  EXPECT_EQ(r.converged[0], 1);
  ASSERT_EQ(rec.calls.size(), static_cast<std::size_t>(t));
  for (int it = 1; it < t; ++it) EXPECT_GE(rec.calls[it - 1].shift, tol) << "iteration " << it;
  EXPECT_LT(rec.calls.back().shift, tol);

  // tol equal to s_t: "strictly below" does not stop there.
  Recorded rec_eq;
  const fk::KMeansResult r_eq = fk::fit(data.x.view(), given_options(data.init, data.k, m, a, 40, s_t, true, &rec_eq));
  EXPECT_GT(r_eq.n_iter[0], t);
  ASSERT_EQ(rec_eq.calls.size(), static_cast<std::size_t>(r_eq.n_iter[0]));
  EXPECT_EQ(rec_eq.calls[t - 1].shift, s_t);

  // tol = +inf stops after the first iteration.
  const fk::KMeansResult r_inf = fk::fit(
      data.x.view(), given_options(data.init, data.k, m, a, 40, std::numeric_limits<double>::infinity()));
  EXPECT_EQ(r_inf.n_iter[0], 1);
  EXPECT_EQ(r_inf.converged[0], 1);
}

// final_assignment for a batch that converged at iteration t:
//   true  -> the centroids after update t, and their own labels (as a tol = 0 run of t iterations);
//   false -> the centroids before update t, and the labels of iteration t's assignment (which were
//            computed against exactly those centroids: a tol = 0 run of t - 1 iterations).
TEST_P(Convergence, FinalAssignmentOnConvergedBatch) {
  const auto [m, a] = GetParam();
  const Gaussian data(13);
  Recorded all;
  fk::fit(data.x.view(), given_options(data.init, data.k, m, a, 40, 0.0, true, &all));
  int t = 0;
  double before = std::numeric_limits<double>::infinity();
  for (int it = 1; it <= 30; ++it) {
    const double s = all.calls[it - 1].shift;
    if (it >= 3 && s > 0 && s < before) t = it;
    before = std::min(before, s);
  }
  ASSERT_GE(t, 3);
  const double tol = std::nextafter(all.calls[t - 1].shift, std::numeric_limits<double>::infinity());

  const fk::KMeansResult fa = fk::fit(data.x.view(), given_options(data.init, data.k, m, a, 40, tol, true));
  const fk::KMeansResult seed = fk::fit(data.x.view(), given_options(data.init, data.k, m, a, 40, tol, false));
  const fk::KMeansResult run_t = fk::fit(data.x.view(), given_options(data.init, data.k, m, a, t, 0.0, true));
  const fk::KMeansResult run_t1 = fk::fit(data.x.view(), given_options(data.init, data.k, m, a, t - 1, 0.0, true));
  ASSERT_EQ(fa.converged[0], 1);
  ASSERT_EQ(seed.converged[0], 1);
  EXPECT_EQ(fa.n_iter[0], t);
  EXPECT_EQ(seed.n_iter[0], t);
  EXPECT_FALSE(fkt::same_bits(run_t.centroids, run_t1.centroids)) << "the last update must move something";

  EXPECT_TRUE(fkt::same_bits(fa.centroids, run_t.centroids));
  EXPECT_EQ(fa.labels, run_t.labels);
  EXPECT_EQ(fa.inertia, run_t.inertia);

  EXPECT_TRUE(fkt::same_bits(seed.centroids, run_t1.centroids));
  EXPECT_EQ(seed.labels, run_t1.labels);
  // The same labels and centroids; the distances come from another kernel (assigner distances()
  // rather than the argmin's scores), so the sums agree to float32 rounding only.
  EXPECT_NEAR(seed.inertia[0], run_t1.inertia[0], 1e-5 * std::fabs(run_t1.inertia[0]));
}

// on_iteration: once per iteration and batch, 1-based, with the shift, inertia and changed count
// of that iteration.
TEST_P(Convergence, CallbackReportsEveryIteration) {
  const auto [m, a] = GetParam();
  const std::int64_t nb = 2, n = Gaussian::n, d = Gaussian::d, k = Gaussian::k;
  const Gaussian data(14, nb);
  constexpr int T = 6;
  Recorded rec;
  const fk::KMeansResult r = fk::fit(data.x.view(), given_options(data.init, k, m, a, T, 0.0, true, &rec));
  ASSERT_EQ(rec.calls.size(), static_cast<std::size_t>(nb * T));
  std::vector<std::vector<fk::IterationInfo>> per_batch(nb);
  for (const auto& c : rec.calls) {
    ASSERT_GE(c.batch, 0);
    ASSERT_LT(c.batch, nb);
    per_batch[c.batch].push_back(c);
  }
  // The centroids after it updates, C_it, are those of a tol = 0 run of it iterations; C_0 is the
  // initial centroids (unit rows for cosine).
  std::vector<fk::KMeansResult> runs{fk::KMeansResult{}};
  for (int it = 1; it <= T; ++it)
    runs.push_back(fk::fit(data.x.view(), given_options(data.init, k, m, a, it, 0.0, false)));
  for (std::int64_t b = 0; b < nb; ++b) {
    SCOPED_TRACE("batch " + std::to_string(b));
    ASSERT_EQ(per_batch[b].size(), static_cast<std::size_t>(T));
    const std::vector<double> xb = fkt::prepared(data.x, b, m);
    for (int it = 1; it <= T; ++it) {
      const fk::IterationInfo& info = per_batch[b][it - 1];
      SCOPED_TRACE("iteration " + std::to_string(it));
      EXPECT_EQ(info.iteration, it);
      std::vector<double> prev(static_cast<std::size_t>(k * d)), cur(prev.size());
      for (std::int64_t e = 0; e < k * d; ++e) {
        prev[e] = it == 1 ? data.init.values[b * k * d + e] : runs[it - 1].centroids[b * k * d + e];
        cur[e] = runs[it].centroids[b * k * d + e];
      }
      if (it == 1 && m == Metric::cosine) fkt::normalize_rows(prev.data(), k, d);
      double shift = 0;
      for (std::int64_t j = 0; j < k; ++j) {
        double s = 0;
        for (std::int64_t q = 0; q < d; ++q) s += (cur[j * d + q] - prev[j * d + q]) * (cur[j * d + q] - prev[j * d + q]);
        shift = std::max(shift, std::sqrt(s));
      }
      // From iteration 2 on both centroid sets are exactly the library's; iteration 1 starts from
      // the initial centroids, which the library normalises in float32 for cosine.
      EXPECT_NEAR(info.shift, shift, (it == 1 ? 1e-5 : 1e-9) * (1 + shift));
      // The labels of iteration it are those final_assignment = false returns after it iterations;
      // the inertia is theirs against the updated centroids.
      const std::int32_t* labels = runs[it].labels.data() + b * n;
      fkt::LabelCheck t;
      const double cmax2 = fkt::max_sq_norm(cur.data(), k, d);
      for (std::int64_t i = 0; i < n; ++i) {
        const double v = fkt::distance(m, &xb[i * d], &cur[labels[i] * d], d);
        t.total += v, t.abs_total += std::fabs(v), t.err_total += fkt::score_tolerance(m, &xb[i * d], cmax2, d);
      }
      fkt::check_inertia(info.inertia, t, "callback");
      // changed: every point on the first iteration, then the labels that differ from the last.
      if (it == 1) {
        EXPECT_EQ(info.changed, n);
      } else {
        int changed = 0;
        for (std::int64_t i = 0; i < n; ++i) changed += labels[i] != runs[it - 1].labels[b * n + i];
        EXPECT_EQ(info.changed, changed);
      }
    }
    EXPECT_EQ(r.n_iter[b], T);
  }
}

INSTANTIATE_TEST_SUITE_P(Metrics, Convergence,
                         testing::Values(std::make_pair(Metric::euclidean, Algorithm::lloyd),
                                         std::make_pair(Metric::euclidean, Algorithm::elkan),
                                         std::make_pair(Metric::cosine, Algorithm::lloyd),
                                         std::make_pair(Metric::cosine, Algorithm::elkan),
                                         std::make_pair(Metric::dot, Algorithm::lloyd)),
                         param_name);

// Batches stop independently; each reports exactly its own iterations.
TEST(ConvergenceBatches, EachBatchStopsOnItsOwn) {
  const std::int64_t nb = 3, n = 800, d = 5, k = 6;
  std::mt19937 g(15);
  std::vector<float> v;
  // Batch 0: separated blobs (few iterations); batches 1 and 2: unstructured (many).
  auto b0 = fkt::blobs(g, 1, n, d, k, 20.0, 0.3);
  auto b12 = fkt::gaussian(g, 2 * n * d);
  v.insert(v.end(), b0.begin(), b0.end());
  v.insert(v.end(), b12.begin(), b12.end());
  const fkt::Array x = fkt::make_array(v, nb, n, d, fk::DType::float32);
  const fkt::Array init = fkt::first_rows(x, k);
  Recorded rec;
  const fk::KMeansResult r =
      fk::fit(x.view(), given_options(init, k, Metric::euclidean, Algorithm::lloyd, 200, 1e-4, true, &rec));
  std::vector<int> last(nb, 0);
  for (const auto& c : rec.calls) {
    ASSERT_LT(c.batch, nb);
    EXPECT_EQ(c.iteration, last[c.batch] + 1) << "batch " << c.batch;
    last[c.batch] = c.iteration;
  }
  for (std::int64_t b = 0; b < nb; ++b) {
    EXPECT_EQ(r.converged[b], 1) << "batch " << b;
    EXPECT_EQ(r.n_iter[b], last[b]) << "batch " << b;
  }
  EXPECT_LT(r.n_iter[0], r.n_iter[1]);
}

}  // namespace
