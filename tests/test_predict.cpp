// predict against the float64 reference: labels and distances (squared L2 for euclidean, 1 - cos
// for cosine, -x.c for dot), shared (1, K, D) and per-batch (B, K, D) centroids.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "checks.hpp"
#include "reference.hpp"

namespace fk = flashkmeans;
using fk::DType;
using fk::Metric;

namespace {

struct Shape {
  const char* name;
  std::int64_t n, d, k;
};

const Shape kShapes[] = {
    {"odd_1037x37_k13", 1037, 37, 13},
    {"few_500x67_k5", 500, 67, 5},
    {"k_gt_n_200x3_k250", 200, 3, 250},  // predict allows K > N
    {"bigkd_300x331_k90", 300, 331, 90},
    {"d1_300_k7", 300, 1, 7},
    {"n1_d5_k1", 1, 5, 1},
};

struct Case {
  Shape shape;
  Metric metric;
  DType dtype;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.shape.name << "/" << fk::to_string(c.metric) << "/" << fk::to_string(c.dtype);
}

std::vector<Case> all_cases() {
  std::vector<Case> out;
  for (const Shape& s : kShapes)
    for (Metric m : {Metric::euclidean, Metric::cosine, Metric::dot})
      for (DType t : {DType::float32, DType::float16, DType::bfloat16}) out.push_back({s, m, t});
  return out;
}

class PredictMatchesReference : public testing::TestWithParam<Case> {};

// Checks batch b of r against centroids c (k rows; raw, normalised here for cosine).
void check_batch(const fk::PredictResult& r, const fkt::Array& x, std::int64_t b, Metric m, std::vector<double> c,
                 std::int64_t k, const std::string& what) {
  const std::int64_t n = x.rows, d = x.cols;
  if (m == Metric::cosine) fkt::normalize_rows(c.data(), k, d);
  const std::vector<double> xb = fkt::prepared(x, b, m);
  const std::int32_t* labels = r.labels.data() + b * n;
  fkt::check_labels_near_optimal(m, xb, n, d, c, k, labels, what);
  const double cmax2 = fkt::max_sq_norm(c.data(), k, d);
  int bad = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    if (labels[i] < 0 || labels[i] >= k) continue;  // reported above
    const double want = fkt::distance(m, &xb[i * d], &c[labels[i] * d], d);
    const double got = r.distances[b * n + i];
    const double tol = fkt::score_tolerance(m, &xb[i * d], cmax2, d);
    if ((std::fabs(got - want) > tol || (m == Metric::euclidean && got < 0)) && bad++ < 5)
      ADD_FAILURE() << what << ": distance of point " << i << " is " << got << ", expected " << want << " +- " << tol;
  }
  EXPECT_EQ(bad, 0) << what << ": wrong distances";
}

TEST_P(PredictMatchesReference, SharedAndPerBatchCentroids) {
  const Case& c = GetParam();
  const std::int64_t nb = 3, n = c.shape.n, d = c.shape.d, k = c.shape.k;
  std::mt19937 g(71);
  const fkt::Array x = fkt::make_array(fkt::blobs(g, nb, n, d, std::min<std::int64_t>(k, 20)), nb, n, d, c.dtype);
  // Centroids near the data: points of other blob draws, per batch, in float32 and in x's dtype.
  const std::vector<float> cf = fkt::blobs(g, nb, k, d, std::min<std::int64_t>(k, 20));
  for (DType cdt : {DType::float32, c.dtype}) {
    const fkt::Array cents = fkt::make_array(cf, nb, k, d, cdt);
    SCOPED_TRACE(std::string("centroids ") + fk::to_string(cdt));
    {  // Per batch: (B, K, D).
      const fk::PredictResult r = fk::predict(x.view(), cents.view(), c.metric);
      ASSERT_EQ(r.batch, nb);
      ASSERT_EQ(r.n, n);
      ASSERT_EQ(r.labels.size(), static_cast<std::size_t>(nb * n));
      ASSERT_EQ(r.distances.size(), static_cast<std::size_t>(nb * n));
      for (std::int64_t b = 0; b < nb; ++b)
        check_batch(r, x, b, c.metric, std::vector<double>(cents.row(b, 0), cents.row(b, 0) + k * d), k,
                    "per-batch centroids, batch " + std::to_string(b));
    }
    {  // Shared: (1, K, D), batch 1 of the centroids for every batch of x.
      fk::TensorView shared = cents.view();
      shared.batch = 1;
      shared.data = cdt == DType::float32 ? static_cast<const void*>(cents.f32.data() + k * d)
                                          : static_cast<const void*>(cents.bits.data() + k * d);
      const fk::PredictResult r = fk::predict(x.view(), shared, c.metric);
      ASSERT_EQ(r.labels.size(), static_cast<std::size_t>(nb * n));
      for (std::int64_t b = 0; b < nb; ++b)
        check_batch(r, x, b, c.metric, std::vector<double>(cents.row(1, 0), cents.row(1, 0) + k * d), k,
                    "shared centroids, batch " + std::to_string(b));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Matrix, PredictMatchesReference, testing::ValuesIn(all_cases()),
                         [](const testing::TestParamInfo<Case>& i) {
                           return std::string(i.param.shape.name) + "_" + fk::to_string(i.param.metric) + "_" +
                                  fk::to_string(i.param.dtype);
                         });

// predict with a fit's centroids reproduces the fit's labels and inertia (both use Lloyd's kernel).
TEST(PredictMatchesFit, LabelsAndInertia) {
  const std::int64_t n = 1500, d = 21, k = 9;
  std::mt19937 g(72);
  const fkt::Array x = fkt::make_array(fkt::blobs(g, 2, n, d, k), 2, n, d, DType::float32);
  for (Metric m : {Metric::euclidean, Metric::dot}) {
    fk::KMeansOptions o;
    o.n_clusters = k;
    o.max_iter = 5;
    o.metric = m;
    o.algorithm = fk::Algorithm::lloyd;
    o.seed = 3;
    const fk::KMeansResult f = fk::fit(x.view(), o);
    const fk::PredictResult p = fk::predict(x.view(), fk::TensorView::batched(f.centroids.data(), 2, k, d), m);
    EXPECT_EQ(p.labels, f.labels) << fk::to_string(m);
    for (std::int64_t b = 0; b < 2; ++b) {
      double s = 0;
      for (std::int64_t i = 0; i < n; ++i) s += p.distances[b * n + i];
      EXPECT_NEAR(s, f.inertia[b], 1e-9 * std::fabs(f.inertia[b])) << fk::to_string(m) << " batch " << b;
    }
  }
}

}  // namespace
