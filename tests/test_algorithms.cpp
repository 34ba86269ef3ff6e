// Algorithm choices that must not change the answer (Elkan vs Lloyd), and empty-cluster handling.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "checks.hpp"
#include "reference.hpp"

namespace fk = flashkmeans;
using fk::Algorithm;
using fk::DType;
using fk::Metric;

namespace {

fk::KMeansOptions given(const fkt::Array& init, std::int64_t k, Metric m, Algorithm a, int iters) {
  fk::KMeansOptions o;
  o.n_clusters = k;
  o.max_iter = iters;
  o.metric = m;
  o.algorithm = a;
  o.init = fk::Init::given;
  o.init_centroids = init.view();
  o.empty_clusters = fk::EmptyClusters::keep;
  return o;
}

class ElkanVsLloyd : public testing::TestWithParam<std::tuple<Metric, double>> {};

// Elkan gives Lloyd's labels: on the same input, the same labels (up to float32 near-ties, each
// of which must be a near-tie) and centroids equal up to float32 summation order.
TEST_P(ElkanVsLloyd, SameLabelsAndCentroids) {
  const auto [m, sigma] = GetParam();
  const std::int64_t nb = 2, n = 2000, d = 19, k = 40;
  std::mt19937 g(51);
  const fkt::Array x = fkt::make_array(fkt::blobs(g, nb, n, d, k, 10.0, sigma), nb, n, d, DType::float32);
  const fkt::Array init = fkt::first_rows(x, k);
  for (int iters : {1, 3, 12}) {
    SCOPED_TRACE("iterations " + std::to_string(iters));
    const fk::KMeansResult l = fk::fit(x.view(), given(init, k, m, Algorithm::lloyd, iters));
    const fk::KMeansResult e = fk::fit(x.view(), given(init, k, m, Algorithm::elkan, iters));
    for (std::int64_t b = 0; b < nb; ++b) {
      const std::vector<double> xb = fkt::prepared(x, b, m);
      const std::vector<double> ce = fkt::to_double(e.centroids.data() + b * k * d, static_cast<std::size_t>(k * d));
      const std::int32_t* le = e.labels.data() + b * n;
      const std::int32_t* ll = l.labels.data() + b * n;
      // Points where the two disagree must be near-ties under Elkan's centroids.
      const double cmax2 = fkt::max_sq_norm(ce.data(), k, d);
      for (std::int64_t i = 0; i < n; ++i)
        if (le[i] != ll[i]) {
          const double de = fkt::distance(m, &xb[i * d], &ce[le[i] * d], d);
          const double dl = fkt::distance(m, &xb[i * d], &ce[ll[i] * d], d);
          EXPECT_LE(std::fabs(de - dl), 2 * fkt::score_tolerance(m, &xb[i * d], cmax2, d))
              << "batch " << b << " point " << i << ": elkan " << le[i] << ", lloyd " << ll[i];
        }
      EXPECT_GE(fkt::agreement(le, ll, n), 0.999) << "batch " << b;
      double worst = 0;
      for (std::int64_t e2 = 0; e2 < k * d; ++e2)
        worst = std::max(worst, std::fabs(static_cast<double>(e.centroids[b * k * d + e2]) - l.centroids[b * k * d + e2]));
      EXPECT_LT(worst, 1e-4 * (m == Metric::euclidean ? 10.0 : 1.0)) << "batch " << b << ": centroids differ";
      EXPECT_NEAR(e.inertia[b], l.inertia[b], 1e-5 * std::fabs(l.inertia[b])) << "batch " << b;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Data, ElkanVsLloyd,
                         testing::Combine(testing::Values(Metric::euclidean, Metric::cosine),
                                          testing::Values(1.0, 4.0)),  // separated and overlapping blobs
                         [](const auto& i) {
                           return std::string(fk::to_string(std::get<0>(i.param))) +
                                  (std::get<1>(i.param) < 2 ? "_separated" : "_overlapping");
                         });

// Every initial centroid the same point: in the first iteration every point ties between the
// duplicates. keep leaves the other clusters empty where they are; relocate moves them onto the
// points farthest from their centroids.
class DuplicateInit : public testing::TestWithParam<Algorithm> {};

struct DuplicateData {
  static constexpr std::int64_t n = 1200, d = 11, k = 8;
  fkt::Array x, init;
  DuplicateData() {
    std::mt19937 g(61);
    x = fkt::make_array(fkt::blobs(g, 1, n, d, k, 10.0, 1.0), 1, n, d, DType::float32);
    std::vector<float> c;
    for (std::int64_t j = 0; j < k; ++j) c.insert(c.end(), x.f32.begin(), x.f32.begin() + d);  // all = x[0]
    init = fkt::make_array(c, 1, k, d, DType::float32);
  }
};

std::set<std::int32_t> used(const std::vector<std::int32_t>& labels) { return {labels.begin(), labels.end()}; }

TEST_P(DuplicateInit, RelocateLeavesNoClusterEmpty) {
  const DuplicateData data;
  const std::int64_t n = data.n, d = data.d, k = data.k;
  fk::KMeansOptions o = given(data.init, k, Metric::euclidean, GetParam(), 30);
  o.empty_clusters = fk::EmptyClusters::relocate;
  const fk::KMeansResult r = fk::fit(data.x.view(), o);
  EXPECT_EQ(used(r.labels).size(), static_cast<std::size_t>(k)) << "an empty cluster is left";
  for (std::int64_t a = 0; a < k; ++a)
    for (std::int64_t b = a + 1; b < k; ++b)
      EXPECT_FALSE(std::equal(r.centroids.begin() + a * d, r.centroids.begin() + (a + 1) * d,
                              r.centroids.begin() + b * d))
          << "centroids " << a << " and " << b << " are equal";
  const std::vector<double> xb = fkt::prepared(data.x, 0, Metric::euclidean);
  const std::vector<double> cb = fkt::to_double(r.centroids.data(), r.centroids.size());
  fkt::check_labels_near_optimal(Metric::euclidean, xb, n, d, cb, k, r.labels.data(), "relocate");

}

// keep: in the first iteration every point ties between the duplicates and goes to the first;
// the other clusters are empty and keep their centroid, x[0], exactly.
TEST_P(DuplicateInit, KeepLeavesEmptyClustersInPlace) {
  const DuplicateData data;
  const std::int64_t n = data.n, d = data.d, k = data.k;
  fk::KMeansOptions o = given(data.init, k, Metric::euclidean, GetParam(), 1);
  o.final_assignment = false;  // the labels of the first assignment, the centroids after its update
  const fk::KMeansResult r = fk::fit(data.x.view(), o);
  EXPECT_EQ(used(r.labels), std::set<std::int32_t>{0});
  for (std::int64_t j = 1; j < k; ++j)
    EXPECT_TRUE(std::equal(r.centroids.begin() + j * d, r.centroids.begin() + (j + 1) * d, data.x.f32.begin()))
        << "empty cluster " << j << " moved";
  for (std::int64_t q = 0; q < d; ++q) {
    double mean = 0;
    for (std::int64_t i = 0; i < n; ++i) mean += data.x.f32[i * d + q];
    mean /= static_cast<double>(n);
    EXPECT_NEAR(r.centroids[q], mean, 1e-4 * (1 + std::fabs(mean)));
  }
}

// The first update in detail: all points go to one of the duplicates (the first, on the exact
// tie); the other k - 1 clusters each take one of the k - 1 points farthest from it, farthest
// first; the first cluster is the mean of the rest.
TEST_P(DuplicateInit, RelocateTakesFarthestPoints) {
  const DuplicateData data;
  const std::int64_t n = data.n, d = data.d, k = data.k;
  fk::KMeansOptions o = given(data.init, k, Metric::euclidean, GetParam(), 1);
  o.empty_clusters = fk::EmptyClusters::relocate;
  o.final_assignment = false;  // returns the centroids after the one update
  const fk::KMeansResult r = fk::fit(data.x.view(), o);
  const std::vector<double> xb = fkt::prepared(data.x, 0, Metric::euclidean);
  std::vector<double> dist(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) dist[i] = fkt::distance(Metric::euclidean, &xb[i * d], &xb[0], d);
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return dist[a] > dist[b]; });
  // The ranking must not hinge on float32 rounding (true for this data).
  for (std::int64_t e = 0; e < k - 1; ++e) ASSERT_GT(dist[order[e]] - dist[order[e + 1]], 1e-3 * dist[order[e]]);
  std::vector<char> moved(static_cast<std::size_t>(n), 0);
  for (std::int64_t e = 0; e < k - 1; ++e) {
    const std::int64_t i = order[e];
    moved[i] = 1;
    for (std::int64_t q = 0; q < d; ++q)
      EXPECT_EQ(r.centroids[(e + 1) * d + q], data.x.f32[i * d + q]) << "cluster " << e + 1 << " should be point " << i;
  }
  std::vector<double> mean(static_cast<std::size_t>(d), 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    if (!moved[i])
      for (std::int64_t q = 0; q < d; ++q) mean[q] += xb[i * d + q] / static_cast<double>(n - (k - 1));
  for (std::int64_t q = 0; q < d; ++q) EXPECT_NEAR(r.centroids[q], mean[q], 1e-4 * (1 + std::fabs(mean[q])));
}

INSTANTIATE_TEST_SUITE_P(Algorithms, DuplicateInit, testing::Values(Algorithm::lloyd, Algorithm::elkan),
                         [](const auto& i) { return std::string(fk::to_string(i.param)); });

}  // namespace
