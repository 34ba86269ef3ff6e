// Randomized properties of fit and predict: for seeded random shapes, metrics, inits, algorithms,
// dtypes, batch counts, thread counts and empty-cluster policies (300 small cases),
//   - every label is a nearest centroid (argmin of the distance; argmax of the similarity for dot
//     and cosine) among the returned centroids, up to float32 rounding;
//   - the reported inertia and distances match a float64 recomputation from the labels;
//   - 1 <= n_iter <= max_iter, and a batch that did not stop on tol ran all max_iter iterations;
//   - the returned centroids are the means (normalised for cosine and dot) of the members of the
//     last assignment of the loop (final_assignment = false returns those labels; with tol = 0 the
//     centroids are the same bits as those of final_assignment = true);
//   - predict with the returned centroids gives labels that are nearest centroids too.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "checks.hpp"
#include "reference.hpp"

namespace fk = flashkmeans;
using fk::Algorithm;
using fk::DType;
using fk::Init;
using fk::Metric;

namespace {

struct Case {
  std::int64_t batch, n, d, k;
  Metric metric;
  Init init;
  Algorithm algorithm;
  DType dtype;
  fk::EmptyClusters empty;
  int max_iter, n_threads;
  double tol;
  bool blobs;
  std::uint64_t seed;

  std::string str() const {
    std::ostringstream os;
    os << "B=" << batch << " N=" << n << " D=" << d << " K=" << k << " " << fk::to_string(metric) << " init="
       << fk::to_string(init) << " algo=" << fk::to_string(algorithm) << " " << fk::to_string(dtype)
       << " empty=" << fk::to_string(empty) << " max_iter=" << max_iter << " threads=" << n_threads
       << " tol=" << tol << (blobs ? " blobs" : " gaussian") << " seed=" << seed;
    return os.str();
  }
};

template <class T>
T pick(std::mt19937& g, std::initializer_list<T> options) {
  std::uniform_int_distribution<std::size_t> u(0, options.size() - 1);
  return *(options.begin() + u(g));
}

std::int64_t uniform(std::mt19937& g, std::int64_t lo, std::int64_t hi) {
  return std::uniform_int_distribution<std::int64_t>(lo, hi)(g);
}

Case random_case(std::mt19937& g) {
  Case c{};
  c.batch = uniform(g, 1, 3);
  c.n = pick<std::int64_t>(g, {1, 2, 7, 33, 64, 100, 257});
  c.n = std::min<std::int64_t>(c.n, uniform(g, 1, 257));
  c.d = pick<std::int64_t>(g, {1, 2, 3, 8, 17, 32, 64});
  // K up to N; K >= 64 lets Algorithm::automatic choose Elkan.
  c.k = uniform(g, 1, std::min<std::int64_t>(c.n, pick<std::int64_t>(g, {4, 16, 70})));
  c.metric = pick(g, {Metric::euclidean, Metric::cosine, Metric::dot});
  c.init = pick(g, {Init::random, Init::kmeans_plus_plus, Init::given});
  c.algorithm = c.metric == Metric::dot ? pick(g, {Algorithm::automatic, Algorithm::lloyd})
                                        : pick(g, {Algorithm::automatic, Algorithm::lloyd, Algorithm::elkan});
  c.dtype = pick(g, {DType::float32, DType::float16, DType::bfloat16});
  c.empty = pick(g, {fk::EmptyClusters::relocate, fk::EmptyClusters::keep});
  c.max_iter = static_cast<int>(uniform(g, 1, 8));
  c.n_threads = static_cast<int>(uniform(g, 1, 3));
  c.tol = pick(g, {0.0, 0.0, 1e-4, 1e-2});
  c.blobs = uniform(g, 0, 1) == 1;
  c.seed = static_cast<std::uint64_t>(uniform(g, 0, 1000000));
  return c;
}

std::vector<float> make_data(std::mt19937& g, const Case& c) {
  std::vector<float> v = c.blobs ? fkt::blobs(g, c.batch, c.n, c.d, std::max<std::int64_t>(1, c.k / 2 + 1))
                                 : fkt::gaussian(g, c.batch * c.n * c.d);
  if (c.metric == Metric::cosine)  // a row without direction is an error under cosine (test_errors)
    for (std::int64_t r = 0; r < c.batch * c.n; ++r) {
      float m = 0;
      for (std::int64_t q = 0; q < c.d; ++q) m = std::max(m, std::fabs(v[r * c.d + q]));
      if (m < 1e-2f) v[r * c.d] = 1.f;
    }
  return v;
}

void check_case(const Case& c, std::mt19937& g) {
  SCOPED_TRACE(c.str());
  const fkt::Array x = fkt::make_array(make_data(g, c), c.batch, c.n, c.d, c.dtype);
  fkt::Array given;
  fk::KMeansOptions o;
  o.n_clusters = c.k, o.max_iter = c.max_iter, o.tol = c.tol, o.metric = c.metric, o.init = c.init;
  o.algorithm = c.algorithm, o.empty_clusters = c.empty, o.n_threads = c.n_threads, o.seed = c.seed;
  if (c.init == Init::given) {
    given = fkt::make_array(fkt::gaussian(g, c.batch * c.k * c.d), c.batch, c.k, c.d, c.dtype);
    if (c.metric == Metric::cosine)
      for (float& f : given.f32) f += f == 0.f ? 1.f : 0.f;  // float32 Gaussian rows are never all zero
    o.init_centroids = given.view();
  }
  const fk::KMeansResult r = fk::fit(x.view(), o);
  ASSERT_EQ(r.labels.size(), static_cast<std::size_t>(c.batch * c.n));
  ASSERT_EQ(r.centroids.size(), static_cast<std::size_t>(c.batch * c.k * c.d));
  ASSERT_EQ(r.n_iter.size(), static_cast<std::size_t>(c.batch));

  // The last assignment of the loop, and the centroids updated from it.
  fk::KMeansOptions last = o;
  last.final_assignment = false;
  last.tol = 0;
  last.empty_clusters = fk::EmptyClusters::keep;
  const fk::KMeansResult loop = fk::fit(x.view(), last);

  const fk::PredictResult p = fk::predict(
      x.view(), fk::TensorView::batched(r.centroids.data(), c.batch, c.k, c.d), c.metric, c.n_threads);

  for (std::int64_t b = 0; b < c.batch; ++b) {
    const std::string at = "batch " + std::to_string(b);
    const std::vector<double> xb = fkt::prepared(x, b, c.metric);
    const std::vector<double> cb = fkt::to_double(r.centroids.data() + b * c.k * c.d, c.k * c.d);
    const std::int32_t* lb = r.labels.data() + b * c.n;

    EXPECT_GE(r.n_iter[b], 1) << at;
    EXPECT_LE(r.n_iter[b], c.max_iter) << at;
    if (!r.converged[b]) {
      EXPECT_EQ(r.n_iter[b], c.max_iter) << at << ": stopped early without converging";
    }
    if (c.tol == 0) {
      EXPECT_FALSE(r.converged[b]) << at << ": tol = 0 must run every iteration";
    }

    const fkt::LabelCheck lc = fkt::check_labels_near_optimal(c.metric, xb, c.n, c.d, cb, c.k, lb, "fit " + at);
    fkt::check_inertia(r.inertia[b], lc, "fit " + at);
    if (c.metric != Metric::euclidean)
      for (std::int64_t j = 0; j < c.k; ++j) {
        const double norm = std::sqrt(fkt::dot(&cb[j * c.d], &cb[j * c.d], c.d));
        EXPECT_NEAR(norm, 1.0, 1e-5) << at << ": centroid " << j << " is not a unit vector";
      }

    const std::int32_t* pl = p.labels.data() + b * c.n;
    const fkt::LabelCheck pc = fkt::check_labels_near_optimal(c.metric, xb, c.n, c.d, cb, c.k, pl, "predict " + at);
    double dist_total = 0;
    for (std::int64_t i = 0; i < c.n; ++i) dist_total += p.distances[b * c.n + i];
    fkt::check_inertia(dist_total, pc, "predict distances " + at);

    // Centroids of the loop = the means of the loop's last labels (a cluster without members
    // keeps an earlier centroid, which is not checked here).
    const float* cl = loop.centroids.data() + b * c.k * c.d;
    const std::int32_t* ll = loop.labels.data() + b * c.n;
    fkt::check_means(c.metric, xb, c.n, c.d, cl, c.k, ll, fkt::to_double(cl, c.k * c.d), "loop means " + at);
    if (c.tol == 0 && c.empty == fk::EmptyClusters::keep) {
      EXPECT_TRUE(std::equal(cl, cl + c.k * c.d, r.centroids.data() + b * c.k * c.d,
                             [](float u, float v) { return std::memcmp(&u, &v, sizeof u) == 0; }))
          << at << ": final_assignment changed the centroids";
    }
  }
}

class Properties : public testing::TestWithParam<int> {};

// 6 blocks of 50 cases, each block its own seed (and its own CTest test, so they run in parallel).
TEST_P(Properties, RandomCases) {
  std::mt19937 g(1000 + GetParam());
  for (int i = 0; i < 50; ++i) {
    const Case c = random_case(g);
    check_case(c, g);
    if (HasFailure()) break;  // the first failing case says it all; keep the log short
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, Properties, testing::Range(0, 6));

}  // namespace
