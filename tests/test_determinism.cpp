// Results that must not depend on how the input is laid out, on the thread count, or (for a fixed
// seed) on the run: strided views, n_threads = 1, 2, 3, Init::random and Init::kmeans_plus_plus.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "checks.hpp"
#include "reference.hpp"

namespace fk = flashkmeans;
using fk::Algorithm;
using fk::DType;
using fk::Init;
using fk::Metric;

namespace {

// A copy of a contiguous (B, N, D) array at the given element strides.
struct Strided {
  std::vector<float> f32;
  std::vector<std::uint16_t> bits;
  fk::TensorView view;
};

Strided relayout(const fkt::Array& a, std::int64_t bs, std::int64_t rs, std::int64_t cs) {
  Strided s;
  const std::int64_t last = (a.batch - 1) * bs + (a.rows - 1) * rs + (a.cols - 1) * cs;
  const std::size_t size = static_cast<std::size_t>(last + 1);
  const bool f32 = a.dtype == DType::float32;
  if (f32)
    s.f32.assign(size, -12345.f);  // the gaps hold garbage the library must not read
  else
    s.bits.assign(size, 0x7e00u);  // a NaN in both 16-bit formats: read it and validation fails
  for (std::int64_t b = 0; b < a.batch; ++b)
    for (std::int64_t i = 0; i < a.rows; ++i)
      for (std::int64_t j = 0; j < a.cols; ++j) {
        const std::int64_t from = (b * a.rows + i) * a.cols + j, to = b * bs + i * rs + j * cs;
        if (f32)
          s.f32[to] = a.f32[from];
        else
          s.bits[to] = a.bits[from];
      }
  s.view = a.view();
  s.view.data = f32 ? static_cast<const void*>(s.f32.data()) : static_cast<const void*>(s.bits.data());
  s.view.batch_stride = bs, s.view.row_stride = rs, s.view.col_stride = cs;
  return s;
}

struct Layout {
  const char* name;
  std::int64_t bs, rs, cs;
};

std::vector<Layout> layouts(std::int64_t nb, std::int64_t n, std::int64_t d) {
  return {
      {"padded_rows", n * (d + 5) + 3, d + 5, 1},
      {"interleaved", 2 * n * d, 2 * d, 2},
      {"transposed", n * d, 1, n},
      {"batch_innermost", 1, nb * d, nb},
  };
}

class StridedInput : public testing::TestWithParam<std::tuple<Metric, DType>> {};

TEST_P(StridedInput, SameResultAsContiguousCopy) {
  const auto [m, dt] = GetParam();
  const std::int64_t nb = 2, n = 301, d = 13, k = 7;
  std::mt19937 g(21);
  const fkt::Array x = fkt::make_array(fkt::blobs(g, nb, n, d, k), nb, n, d, dt);
  const fkt::Array init = fkt::first_rows(x, k);
  fk::KMeansOptions o;
  o.n_clusters = k;
  o.max_iter = 5;
  o.metric = m;
  o.init = Init::given;
  o.init_centroids = init.view();
  o.empty_clusters = fk::EmptyClusters::keep;
  const fk::KMeansResult want = fk::fit(x.view(), o);
  fk::PredictResult want_p = fk::predict(x.view(), init.view(), m);
  for (const Layout& l : layouts(nb, n, d)) {
    SCOPED_TRACE(l.name);
    const Strided sx = relayout(x, l.bs, l.rs, l.cs);
    fkt::expect_identical(fk::fit(sx.view, o), want, l.name);
    const fk::PredictResult p = fk::predict(sx.view, init.view(), m);
    EXPECT_EQ(p.labels, want_p.labels);
    EXPECT_TRUE(fkt::same_bits(p.distances, want_p.distances));
  }
  // Strided initial centroids (and strided centroids for predict) too.
  for (const Layout& l : layouts(nb, k, d)) {
    SCOPED_TRACE(std::string("init ") + l.name);
    const Strided sc = relayout(init, l.bs, l.rs, l.cs);
    fk::KMeansOptions os = o;
    os.init_centroids = sc.view;
    fkt::expect_identical(fk::fit(x.view(), os), want, l.name);
    const fk::PredictResult p = fk::predict(x.view(), sc.view, m);
    EXPECT_EQ(p.labels, want_p.labels);
    EXPECT_TRUE(fkt::same_bits(p.distances, want_p.distances));
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, StridedInput,
                         testing::Combine(testing::Values(Metric::euclidean, Metric::cosine, Metric::dot),
                                          testing::Values(DType::float32, DType::float16)),
                         [](const auto& i) {
                           return std::string(fk::to_string(std::get<0>(i.param))) + "_" +
                                  fk::to_string(std::get<1>(i.param));
                         });

// Views no copy can express: overlapping rows (a sliding window over one buffer), every row the
// same (row stride 0), every batch the same (batch stride 0).
TEST(StridedInputSpecial, OverlappingAndZeroStrides) {
  const std::int64_t n = 700, d = 29, k = 9;
  std::mt19937 g(22);
  const std::vector<float> base = fkt::gaussian(g, n + d);
  for (Metric m : {Metric::euclidean, Metric::cosine, Metric::dot}) {
    SCOPED_TRACE(fk::to_string(m));
    fk::KMeansOptions o;
    o.n_clusters = k;
    o.max_iter = 4;
    o.metric = m;
    o.seed = 3;
    o.init = Init::kmeans_plus_plus;
    // Sliding window: row i is base[i .. i + d).
    fk::TensorView win = fk::TensorView::matrix(base.data(), n, d);
    win.row_stride = 1;
    std::vector<float> copy(static_cast<std::size_t>(n * d));
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t q = 0; q < d; ++q) copy[i * d + q] = base[i + q];
    fkt::expect_identical(fk::fit(win, o), fk::fit(fk::TensorView::matrix(copy.data(), n, d), o), "sliding window");
    // Batch stride 0: two identical batches, given (identical) initial centroids.
    fk::TensorView twice = fk::TensorView::batched(copy.data(), 2, n, d);
    twice.batch_stride = 0;
    fk::TensorView init = fk::TensorView::batched(copy.data(), 2, k, d);
    init.batch_stride = 0;
    fk::KMeansOptions og = o;
    og.init = Init::given;
    og.init_centroids = init;
    const fk::KMeansResult r2 = fk::fit(twice, og);
    EXPECT_TRUE(std::equal(r2.labels.begin(), r2.labels.begin() + n, r2.labels.begin() + n));
    EXPECT_TRUE(std::equal(r2.centroids.begin(), r2.centroids.begin() + k * d, r2.centroids.begin() + k * d));
    EXPECT_EQ(r2.inertia[0], r2.inertia[1]);
    // Row stride 0: n copies of one point; every point gets the nearest of the given centroids.
    fk::TensorView same = fk::TensorView::matrix(copy.data() + 5 * d, n, d);
    same.row_stride = 0;
    og.init_centroids = fk::TensorView::matrix(copy.data(), k, d);
    og.max_iter = 1;
    const fk::KMeansResult r0 = fk::fit(same, og);
    EXPECT_EQ(std::set<std::int32_t>(r0.labels.begin(), r0.labels.end()).size(), 1u);
  }
}

struct ThreadCase {
  const char* name;
  std::int64_t batch, n, d, k;
  Metric metric;
  Algorithm algorithm;
  Init init;
  fk::EmptyClusters empty;
  DType dtype;
};

class ThreadCount : public testing::TestWithParam<ThreadCase> {};

// n_threads = 1, 2 and 3 give bitwise the same result ("results do not depend on this").
TEST_P(ThreadCount, BitwiseIdenticalFor1To3Threads) {
  const ThreadCase& c = GetParam();
  std::mt19937 g(31);
  // Unstructured data, more clusters than structure: labels keep changing for many iterations.
  const fkt::Array x = fkt::make_array(fkt::gaussian(g, c.batch * c.n * c.d), c.batch, c.n, c.d, c.dtype);
  fk::KMeansOptions o;
  o.n_clusters = c.k;
  o.max_iter = 6;
  o.metric = c.metric;
  o.algorithm = c.algorithm;
  o.init = c.init;
  o.seed = 5;
  o.empty_clusters = c.empty;
  std::vector<fk::KMeansResult> r;
  for (int t : {1, 2, 3}) {
    o.n_threads = t;
    r.push_back(fk::fit(x.view(), o));
  }
  fkt::expect_identical(r[1], r[0], "2 threads vs 1");
  fkt::expect_identical(r[2], r[0], "3 threads vs 1");
  for (int t : {1, 2, 3}) {
    const fk::PredictResult p = fk::predict(x.view(), fk::TensorView::batched(r[0].centroids.data(), c.batch, c.k, c.d),
                                            c.metric, t);
    if (c.algorithm == Algorithm::lloyd) {
      EXPECT_EQ(p.labels, r[0].labels) << t << " threads: predict with fit's centroids gives fit's labels";
    }
    const fk::PredictResult p1 = fk::predict(
        x.view(), fk::TensorView::batched(r[0].centroids.data(), c.batch, c.k, c.d), c.metric, 1);
    EXPECT_EQ(p.labels, p1.labels);
    EXPECT_TRUE(fkt::same_bits(p.distances, p1.distances));
  }
}

void PrintTo(const ThreadCase& c, std::ostream* os) { *os << c.name; }

const ThreadCase kThreadCases[] = {
    // N > 2048: several chunks of the fused sums; random init.
    {"fused_random", 1, 5000, 37, 13, Metric::euclidean, Algorithm::lloyd, Init::random, fk::EmptyClusters::relocate,
     DType::float32},
    {"elkan_kmeanspp", 2, 3000, 19, 40, Metric::euclidean, Algorithm::elkan, Init::kmeans_plus_plus,
     fk::EmptyClusters::relocate, DType::float32},
    {"cosine_auto_f16", 1, 3000, 19, 40, Metric::cosine, Algorithm::automatic, Init::kmeans_plus_plus,
     fk::EmptyClusters::keep, DType::float16},
    {"few_dot_bf16", 1, 3000, 70, 6, Metric::dot, Algorithm::lloyd, Init::random, fk::EmptyClusters::relocate,
     DType::bfloat16},
    // K * D > 2^16: the sums are accumulated by sort, not fused.
    {"sorted_sums", 1, 700, 331, 200, Metric::euclidean, Algorithm::lloyd, Init::random, fk::EmptyClusters::relocate,
     DType::float32},
};

INSTANTIATE_TEST_SUITE_P(Cases, ThreadCount, testing::ValuesIn(kThreadCases),
                         [](const auto& i) { return std::string(i.param.name); });

// The library has no shared mutable state: fits running at the same time on two threads give the
// results of fits run one after the other.
TEST(ThreadCount, ConcurrentFitsMatchSerialFits) {
  std::mt19937 g(32);
  const std::int64_t n = 3000, d = 19, k = 40;
  const fkt::Array x = fkt::make_array(fkt::gaussian(g, n * d), 1, n, d, DType::float32);
  fk::KMeansOptions oa, ob;
  oa.n_clusters = ob.n_clusters = k;
  oa.max_iter = ob.max_iter = 6;
  oa.algorithm = Algorithm::elkan;
  oa.init = Init::kmeans_plus_plus;
  ob.algorithm = Algorithm::lloyd;
  ob.metric = Metric::cosine;
  oa.n_threads = ob.n_threads = 2;
  const fk::KMeansResult want_a = fk::fit(x.view(), oa), want_b = fk::fit(x.view(), ob);
  for (int rep = 0; rep < 3; ++rep) {
    fk::KMeansResult a, b;
    std::thread ta([&] { a = fk::fit(x.view(), oa); });
    std::thread tb([&] { b = fk::fit(x.view(), ob); });
    ta.join();
    tb.join();
    fkt::expect_identical(a, want_a, "concurrent elkan");
    fkt::expect_identical(b, want_b, "concurrent cosine");
  }
}

// Six threads at once, each fitting its own data (every metric, dtype and algorithm) and then
// predicting against its centroids, give the results of the same calls run one after another.
TEST(ThreadCount, ManyThreadsFitAndPredictDifferentData) {
  struct Job {
    fkt::Array x;
    fk::KMeansOptions o;
    fk::KMeansResult fit;
    fk::PredictResult pred;
  };
  const Metric metrics[] = {Metric::euclidean, Metric::cosine, Metric::dot};
  const DType dtypes[] = {DType::float32, DType::float16, DType::bfloat16};
  std::vector<Job> jobs(6);
  for (std::size_t j = 0; j < jobs.size(); ++j) {
    std::mt19937 g(100 + static_cast<unsigned>(j));
    const std::int64_t nb = 1 + static_cast<std::int64_t>(j % 2), n = 800 + 100 * static_cast<std::int64_t>(j), d = 9;
    jobs[j].x = fkt::make_array(fkt::gaussian(g, nb * n * d), nb, n, d, dtypes[j % 3]);
    fk::KMeansOptions& o = jobs[j].o;
    o.n_clusters = 12 + static_cast<std::int64_t>(j);
    o.max_iter = 5;
    o.metric = metrics[j % 3];
    o.algorithm = o.metric == Metric::dot ? Algorithm::lloyd : (j < 3 ? Algorithm::elkan : Algorithm::lloyd);
    o.init = j % 2 ? Init::kmeans_plus_plus : Init::random;
    o.seed = j;
    o.n_threads = 1 + static_cast<int>(j % 2);
  }
  auto run = [](Job& job) {
    job.fit = fk::fit(job.x.view(), job.o);
    job.pred = fk::predict(job.x.view(),
                           fk::TensorView::batched(job.fit.centroids.data(), job.x.batch, job.o.n_clusters, job.x.cols),
                           job.o.metric, job.o.n_threads);
  };
  std::vector<Job> serial = jobs;
  for (Job& job : serial) run(job);
  std::vector<std::thread> threads;
  for (Job& job : jobs) threads.emplace_back(run, std::ref(job));
  for (std::thread& t : threads) t.join();
  for (std::size_t j = 0; j < jobs.size(); ++j) {
    const std::string what = "job " + std::to_string(j);
    fkt::expect_identical(jobs[j].fit, serial[j].fit, what);
    EXPECT_EQ(jobs[j].pred.labels, serial[j].pred.labels) << what;
    EXPECT_TRUE(fkt::same_bits(jobs[j].pred.distances, serial[j].pred.distances)) << what;
  }
}

// The initial centroids themselves: with tol = +inf and final_assignment = false the fit returns
// the centroids before its first update.
std::vector<float> initial_centroids(const fkt::Array& x, std::int64_t k, Metric m, Init init, std::uint64_t seed) {
  fk::KMeansOptions o;
  o.n_clusters = k;
  o.max_iter = 5;
  o.tol = std::numeric_limits<double>::infinity();
  o.final_assignment = false;
  o.metric = m;
  o.init = init;
  o.seed = seed;
  const fk::KMeansResult r = fk::fit(x.view(), o);
  EXPECT_EQ(r.n_iter[0], 1);
  return r.centroids;
}

class Seeding : public testing::TestWithParam<Init> {};

TEST_P(Seeding, DeterministicPerSeedDifferentAcrossSeeds) {
  const Init init = GetParam();
  const std::int64_t nb = 2, n = 1000, d = 9, k = 12;
  std::mt19937 g(41);
  std::vector<float> one = fkt::gaussian(g, n * d), both = one;
  both.insert(both.end(), one.begin(), one.end());  // two batches with the same points
  const fkt::Array x = fkt::make_array(both, nb, n, d, DType::float32);
  for (Metric m : {Metric::euclidean, Metric::dot}) {
    SCOPED_TRACE(fk::to_string(m));
    const std::vector<float> a = initial_centroids(x, k, m, init, 7), b = initial_centroids(x, k, m, init, 7);
    const std::vector<float> c = initial_centroids(x, k, m, init, 8);
    EXPECT_TRUE(fkt::same_bits(a, b)) << "the same seed must give the same centroids";
    EXPECT_FALSE(fkt::same_bits(a, c)) << "another seed should give other centroids";
    // Both inits pick data points; the two batches draw independent streams.
    for (std::int64_t bb = 0; bb < nb; ++bb)
      for (std::int64_t j = 0; j < k; ++j) {
        bool found = false;
        for (std::int64_t i = 0; i < n && !found; ++i)
          found = std::equal(a.begin() + (bb * k + j) * d, a.begin() + (bb * k + j + 1) * d,
                             x.f32.begin() + (bb * n + i) * d);
        EXPECT_TRUE(found) << "initial centroid " << j << " of batch " << bb << " is not a data point";
      }
    EXPECT_FALSE(std::equal(a.begin(), a.begin() + k * d, a.begin() + k * d)) << "batches share the stream";
    // A whole fit is just as reproducible.
    fk::KMeansOptions o;
    o.n_clusters = k;
    o.max_iter = 4;
    o.init = init;
    o.seed = 99;
    o.metric = m;
    fkt::expect_identical(fk::fit(x.view(), o), fk::fit(x.view(), o), "same seed");
  }
}

INSTANTIATE_TEST_SUITE_P(Inits, Seeding, testing::Values(Init::random, Init::kmeans_plus_plus),
                         [](const auto& i) { return std::string(fk::to_string(i.param)); });

// k-means++ on far-apart blobs puts one initial centroid into every blob.
TEST(Seeding, KMeansPlusPlusCoversSeparatedBlobs) {
  const std::int64_t n = 2000, d = 10, k = 16;
  std::mt19937 g(42);
  const fkt::Array x = fkt::make_array(fkt::blobs(g, 1, n, d, k, 100.0, 0.5), 1, n, d, DType::float32);
  for (std::uint64_t seed : {1u, 2u, 3u}) {
    const std::vector<float> c = initial_centroids(x, k, Metric::euclidean, Init::kmeans_plus_plus, seed);
    std::set<std::int64_t> blobs_hit;
    for (std::int64_t j = 0; j < k; ++j)
      for (std::int64_t i = 0; i < n; ++i)
        if (std::equal(c.begin() + j * d, c.begin() + (j + 1) * d, x.f32.begin() + i * d)) {
          blobs_hit.insert(i % k);
          break;
        }
    EXPECT_EQ(blobs_hit.size(), static_cast<std::size_t>(k)) << "seed " << seed;
  }
}

}  // namespace
