// fit against the float64 reference: every metric x algorithm x dtype x batch count x odd shape,
// Init::given, EmptyClusters::keep, tol = 0 (so every run does exactly max_iter iterations).
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "checks.hpp"
#include "reference.hpp"

namespace fk = flashkmeans;
using fk::Algorithm;
using fk::DType;
using fk::Metric;

namespace {

struct Shape {
  const char* name;
  std::int64_t n, d, k;
  bool all_dtypes_and_batches;  ///< false: float32 and bfloat16, one batch only (the costly shape)
};

// Odd sizes (not multiples of 8/16/32), and the paths they reach in src/cpu/lloyd.cpp:
// "few" (K <= 12, D >= 64) and "bigkd" (K * D > 2^16: sums by sort instead of fused).
const Shape kShapes[] = {
    {"odd_1037x37_k13", 1037, 37, 13, true},   // automatic -> lloyd, fused sums
    {"auto_elkan_1500x19_k40", 1500, 19, 40, true},  // automatic -> elkan (K >= 32)
    {"d3_k33", 203, 3, 33, true},
    {"few_777x67_k5", 777, 67, 5, true},
    {"bigkd_400x331_k200", 400, 331, 200, false},
    {"k_eq_n_50x37", 50, 37, 50, true},
    {"k1_100x37", 100, 37, 1, true},
    {"d1_300_k7", 300, 1, 7, true},
    {"n1_d5", 1, 5, 1, true},
};

struct Case {
  Shape shape;
  Metric metric;
  Algorithm algorithm;
};

std::vector<Case> all_cases() {
  std::vector<Case> out;
  for (const Shape& s : kShapes)
    for (Metric m : {Metric::euclidean, Metric::cosine, Metric::dot})
      for (Algorithm a : {Algorithm::lloyd, Algorithm::elkan, Algorithm::automatic}) {
        if (a == Algorithm::elkan && m == Metric::dot) continue;  // rejected by design (test_errors)
        out.push_back({s, m, a});
      }
  return out;
}

// Readable names in gtest output instead of a byte dump.
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.shape.name << "/" << fk::to_string(c.metric) << "/" << fk::to_string(c.algorithm);
}

std::string case_name(const testing::TestParamInfo<Case>& info) {
  return std::string(info.param.shape.name) + "_" + fk::to_string(info.param.metric) + "_" +
         fk::to_string(info.param.algorithm);
}

class FitMatchesReference : public testing::TestWithParam<Case> {};

constexpr int kIters = 4;

fk::KMeansOptions options(const Case& c, const fkt::Array& init, int max_iter, bool final_assignment) {
  fk::KMeansOptions o;
  o.n_clusters = c.shape.k;
  o.max_iter = max_iter;
  o.tol = 0.0;
  o.metric = c.metric;
  o.algorithm = c.algorithm;
  o.init = fk::Init::given;
  o.init_centroids = init.view();
  o.empty_clusters = fk::EmptyClusters::keep;
  o.final_assignment = final_assignment;
  return o;
}

TEST_P(FitMatchesReference, AllDtypesAndBatches) {
  const Case& c = GetParam();
  const std::int64_t n = c.shape.n, d = c.shape.d, k = c.shape.k;
  std::vector<DType> dtypes{DType::float32, DType::bfloat16};
  std::vector<std::int64_t> batches{1};
  if (c.shape.all_dtypes_and_batches) dtypes = {DType::float32, DType::float16, DType::bfloat16}, batches = {1, 3};
  std::uint32_t seed = 1000;
  for (DType dt : dtypes)
    for (std::int64_t nb : batches) {
      std::ostringstream os;
      os << c.shape.name << " " << fk::to_string(c.metric) << " " << fk::to_string(c.algorithm) << " "
         << fk::to_string(dt) << " B=" << nb;
      const std::string what = os.str();
      SCOPED_TRACE(what);
      std::mt19937 gen(seed++);
      const fkt::Array x = fkt::make_array(fkt::blobs(gen, nb, n, d, k), nb, n, d, dt);
      const fkt::Array init = fkt::first_rows(x, k);  // one point of every blob, same dtype as x

      const fk::KMeansResult r = fk::fit(x.view(), options(c, init, kIters, true));
      const fk::KMeansResult r_seed = fk::fit(x.view(), options(c, init, kIters, false));
      const fk::KMeansResult r_prev = fk::fit(x.view(), options(c, init, kIters - 1, true));

      ASSERT_EQ(r.batch, nb);
      ASSERT_EQ(r.n, n);
      ASSERT_EQ(r.k, k);
      ASSERT_EQ(r.d, d);
      ASSERT_EQ(r.labels.size(), static_cast<std::size_t>(nb * n));
      ASSERT_EQ(r.centroids.size(), static_cast<std::size_t>(nb * k * d));
      ASSERT_EQ(r.n_iter.size(), static_cast<std::size_t>(nb));
      ASSERT_EQ(r.inertia.size(), static_cast<std::size_t>(nb));
      ASSERT_EQ(r.converged.size(), static_cast<std::size_t>(nb));
      // tol = 0: no batch converges, both runs end with the centroids of iteration kIters.
      for (std::int64_t b = 0; b < nb; ++b) {
        EXPECT_EQ(r.n_iter[b], kIters);
        EXPECT_EQ(r.converged[b], 0);
        EXPECT_EQ(r_seed.n_iter[b], kIters);
      }
      EXPECT_TRUE(fkt::same_bits(r.centroids, r_seed.centroids))
          << "final_assignment must not change the centroids of a batch that did not converge";
      // final_assignment = false: the labels of the last iteration's assignment, i.e. those of the
      // centroids after kIters - 1 updates (which a run of kIters - 1 iterations assigns last).
      EXPECT_EQ(r_seed.labels, r_prev.labels);

      for (std::int64_t b = 0; b < nb; ++b) {
        SCOPED_TRACE("batch " + std::to_string(b));
        const std::vector<double> xb = fkt::prepared(x, b, c.metric);
        const std::vector<double> cb = fkt::to_double(r.centroids.data() + b * k * d, static_cast<std::size_t>(k * d));
        const std::int32_t* lb = r.labels.data() + b * n;
        // (a) the labels are nearest centroids of the centroids returned; (c) the inertia is theirs.
        const fkt::LabelCheck lc = fkt::check_labels_near_optimal(c.metric, xb, n, d, cb, k, lb, what);
        fkt::check_inertia(r.inertia[b], lc, what);
        // (b) the centroids are the means of the last iteration's members (final_assignment = false
        // returns those labels); an empty cluster keeps the centroids of the iteration before.
        std::vector<double> prev = fkt::to_double(r_prev.centroids.data() + b * k * d, static_cast<std::size_t>(k * d));
        if (c.metric != Metric::euclidean) fkt::normalize_rows(prev.data(), k, d);
        fkt::check_means(c.metric, xb, n, d, r_seed.centroids.data() + b * k * d, k, r_seed.labels.data() + b * n,
                         prev, what);
        const fkt::LabelCheck seed_lc = [&] {
          fkt::LabelCheck t;  // inertia of final_assignment = false: its labels against its centroids
          const double cmax2 = fkt::max_sq_norm(cb.data(), k, d);
          for (std::int64_t i = 0; i < n; ++i) {
            const double v = fkt::distance(c.metric, &xb[i * d], &cb[r_seed.labels[b * n + i] * d], d);
            t.total += v, t.abs_total += std::fabs(v), t.err_total += fkt::score_tolerance(c.metric, &xb[i * d], cmax2, d);
          }
          return t;
        }();
        fkt::check_inertia(r_seed.inertia[b], seed_lc, what + " (final_assignment = false)");

        // The float64 reference run from the same initial centroids.
        const std::vector<double> c0(init.row(b, 0), init.row(b, 0) + k * d);
        const fkt::Run ref = fkt::lloyd(c.metric, xb, n, c0, k, d, kIters);
        // On D = 1, cosine and dot see only the directions +1 and -1: every centroid is +-1 (up to
        // float32 rounding), so the labels are exact ties broken by rounding noise; skip there.
        if (!(d == 1 && c.metric != Metric::euclidean)) {
          EXPECT_GE(fkt::agreement(lb, ref.labels.data(), n), 0.99) << "label agreement with the float64 reference";
        }
      }
    }
}

INSTANTIATE_TEST_SUITE_P(Matrix, FitMatchesReference, testing::ValuesIn(all_cases()), case_name);

}  // namespace
