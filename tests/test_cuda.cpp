// The CUDA backend through the public API, on data already on the device: against the CPU backend
// and the float64 reference, for every metric x input mode (float32 exact, float32 tf32, float16,
// bfloat16) x odd shapes x B = 1 and B > 1; fit vs fit_into, predict vs predict_into, strided
// input, given centroids on the host and on the device, determinism, empty clusters, tol,
// on_iteration, bad input and caller buffers that must be written completely.
// Every test skips when no CUDA device is visible (flashkmeans::cuda_available()).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <initializer_list>
#include <limits>
#include <memory>
#include <numeric>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "checks.hpp"
#include "cuda_support.hpp"
#include "reference.hpp"

namespace fk = flashkmeans;
namespace fc = fkt::cuda;
using fk::DType;
using fk::ErrorKind;
using fk::Metric;
using fk::Precision;

namespace {

#define FK_REQUIRE_GPU()                                                     \
  do {                                                                       \
    if (!fk::cuda_available()) GTEST_SKIP() << "no CUDA device is visible"; \
  } while (0)

// ---------------------------------------------------------------------------------------------
// Input modes: the dtype of x and, for float32, the precision of the products.

struct Mode {
  const char* name;
  DType dtype;
  Precision precision;
  /// Unit roundoff of the operands of the products (0: float32 products, bounded by score_tolerance).
  double u_in;
  /// Least fraction of labels equal to the CPU backend's on the same (rounded) data.
  double min_agreement;
};

const Mode kF32Exact{"f32_exact", DType::float32, Precision::exact, 0.0, 0.999};
const Mode kF32Tf32{"f32_tf32", DType::float32, Precision::tf32, 0x1p-11, 0.99};
const Mode kF16{"f16", DType::float16, Precision::exact, 0x1p-11, 0.99};
const Mode kBF16{"bf16", DType::bfloat16, Precision::exact, 0x1p-8, 0.99};
const Mode kModes[] = {kF32Exact, kF32Tf32, kF16, kBF16};

const Metric kMetrics[] = {Metric::euclidean, Metric::cosine, Metric::dot};

void PrintTo(const Mode& m, std::ostream* os) { *os << m.name; }

/// The tolerance of a batch's inertia against the CPU backend's: 1e-4 relative, plus the rounding
/// noise of N per-point distances (independent errors of size (u_in + 16 u) ||x||^2 add up like
/// sqrt(N) of them), which matters only where the inertia is close to 0 (K = N, tiny blobs).
double inertia_tolerance(const fkt::Array& x, std::int64_t b, Metric m, double u_in, double cpu_inertia) {
  const std::vector<double> xb = fkt::prepared(x, b, m);
  double sum_sq = 0;
  for (double v : xb) sum_sq += v * v;
  const double n = static_cast<double>(x.rows);
  return 1e-4 * std::fabs(cpu_inertia) + (u_in + 16 * fkt::kU) * sum_sq / std::sqrt(n);
}

/// ||a - b||_F / max(||b||_F, tiny).
double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    num += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    den += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

double relative_diff(double a, double b) { return std::fabs(a - b) / std::max(std::fabs(b), 1e-30); }

/// Blobs far enough apart (radius grows with sqrt(D)) that Lloyd's trajectory does not hinge on
/// float32 near-ties everywhere, yet with points between blobs.
std::vector<float> separated_blobs(std::mt19937& g, std::int64_t batch, std::int64_t n, std::int64_t d,
                                   std::int64_t centers) {
  return fkt::blobs(g, batch, n, d, centers, 10.0 + 3.0 * std::sqrt(static_cast<double>(d)), 1.0);
}

fk::KMeansOptions given_options(const fk::TensorView& init, std::int64_t k, Metric m, const Mode& mode, int iters) {
  fk::KMeansOptions o;
  o.n_clusters = k;
  o.max_iter = iters;
  o.tol = 0.0;
  o.metric = m;
  o.init = fk::Init::given;
  o.init_centroids = init;
  o.empty_clusters = fk::EmptyClusters::keep;
  o.precision = mode.precision;
  return o;
}

/// The same options for the CPU backend (host centroids; precision is ignored there).
fk::KMeansOptions on_host(fk::KMeansOptions o, const fkt::Array& init) {
  o.init_centroids = init.view();
  return o;
}

void expect_sizes(const fk::KMeansResult& r, std::int64_t nb, std::int64_t n, std::int64_t k, std::int64_t d) {
  ASSERT_EQ(r.batch, nb);
  ASSERT_EQ(r.n, n);
  ASSERT_EQ(r.k, k);
  ASSERT_EQ(r.d, d);
  ASSERT_EQ(r.labels.size(), static_cast<std::size_t>(nb * n));
  ASSERT_EQ(r.centroids.size(), static_cast<std::size_t>(nb * k * d));
  ASSERT_EQ(r.n_iter.size(), static_cast<std::size_t>(nb));
  ASSERT_EQ(r.inertia.size(), static_cast<std::size_t>(nb));
  ASSERT_EQ(r.converged.size(), static_cast<std::size_t>(nb));
}

// ---------------------------------------------------------------------------------------------
// fit on the device against the float64 reference and the CPU backend.

struct Shape {
  const char* name;
  std::int64_t n, d, k;
  /// Large: euclidean only, one batch, no float64 brute-force check (CPU comparison only).
  bool large;
};

// Sizes that are not multiples of any tile (8, 16, 32, 64, 128), the degenerate ones (N = 1,
// K = 1, D = 1, K = N) and a few large ones.
const Shape kShapes[] = {
    {"n1_d1_k1", 1, 1, 1, false},
    {"n1_d5_k1", 1, 5, 1, false},
    {"d1_300_k7", 300, 1, 7, false},
    {"d3_203_k33", 203, 3, 33, false},
    {"k1_100x37", 100, 37, 1, false},
    {"k_eq_n_50x37", 50, 37, 50, false},
    {"odd_1037x17_k13", 1037, 17, 13, false},
    {"2000x64_k100", 2000, 64, 100, false},
    {"777x129_k5", 777, 129, 5, false},
    {"odd_1037x65_k131", 1037, 65, 131, false},  // D in 65..128, K > 128: the Hopper kernel
    {"2051x128_k64", 2051, 128, 64, false},
    {"odd_1037x100_k100", 1037, 100, 100, false},  // K <= 128: the Hopper kernel, one padded tile
    {"odd_3001x72_k9", 3001, 72, 9, false},        // tf32: the Hopper kernel's 64-centroid tiles
    {"3001x100_k700", 3001, 100, 700, false},
    {"3001x784_k10", 3001, 784, 10, false},
    {"4099x256_k300", 4099, 256, 300, false},
    {"20011x64_k2000", 20011, 64, 2000, true},
    {"100003x128_k256", 100003, 128, 256, true},
    {"30001x1000_k37", 30001, 1000, 37, true},
};

struct FitCase {
  Shape shape;
  Metric metric;
  Mode mode;
};

std::vector<FitCase> fit_cases() {
  std::vector<FitCase> out;
  for (const Shape& s : kShapes)
    for (Metric m : kMetrics)
      for (const Mode& mode : kModes) {
        if (s.large && m != Metric::euclidean) continue;
        out.push_back({s, m, mode});
      }
  return out;
}

void PrintTo(const FitCase& c, std::ostream* os) {
  *os << c.shape.name << "/" << fk::to_string(c.metric) << "/" << c.mode.name;
}

std::string fit_case_name(const testing::TestParamInfo<FitCase>& i) {
  return std::string(i.param.shape.name) + "_" + fk::to_string(i.param.metric) + "_" + i.param.mode.name;
}

class CudaFit : public testing::TestWithParam<FitCase> {};

constexpr int kIters = 4;

// Three device runs (kIters with and without the final assignment, kIters - 1) checked as
// test_fit.cpp checks the CPU backend, then the CPU backend's run on the same data.
TEST_P(CudaFit, MatchesReferenceAndCpu) {
  FK_REQUIRE_GPU();
  const FitCase& c = GetParam();
  const std::int64_t n = c.shape.n, d = c.shape.d, k = c.shape.k;
  const std::vector<std::int64_t> batches = c.shape.large ? std::vector<std::int64_t>{1} : std::vector<std::int64_t>{1, 3};
  std::uint32_t seed = 5000;
  for (std::int64_t nb : batches) {
    std::ostringstream os;
    os << c.shape.name << " " << fk::to_string(c.metric) << " " << c.mode.name << " B=" << nb;
    const std::string what = os.str();
    SCOPED_TRACE(what);
    std::mt19937 gen(seed++);
    const fkt::Array x = fkt::make_array(separated_blobs(gen, nb, n, d, k), nb, n, d, c.mode.dtype);
    const fkt::Array init = fkt::first_rows(x, k);  // one point of every blob
    const fc::DeviceArray dx = fc::upload(x);

    const fk::KMeansOptions o = given_options(init.view(), k, c.metric, c.mode, kIters);
    fk::KMeansOptions o_seed = o, o_prev = o;
    o_seed.final_assignment = false;
    o_prev.max_iter = kIters - 1;
    const fk::KMeansResult r = fk::fit(dx.view, o);
    const fk::KMeansResult r_seed = fk::fit(dx.view, o_seed);
    const fk::KMeansResult r_prev = fk::fit(dx.view, o_prev);
    expect_sizes(r, nb, n, k, d);
    expect_sizes(r_seed, nb, n, k, d);
    expect_sizes(r_prev, nb, n, k, d);
    for (std::int64_t b = 0; b < nb; ++b) {
      EXPECT_EQ(r.n_iter[b], kIters);
      EXPECT_EQ(r.converged[b], 0);
      EXPECT_EQ(r_seed.n_iter[b], kIters);
    }
    EXPECT_TRUE(fkt::same_bits(r.centroids, r_seed.centroids))
        << "final_assignment must not change the centroids of a batch that did not converge";
    EXPECT_EQ(r_seed.labels, r_prev.labels) << "final_assignment = false must return the last iteration's labels";

    // The float64 checks (skipped on the large shapes, where they would take minutes on the host).
    if (!c.shape.large) {
      for (std::int64_t b = 0; b < nb; ++b) {
        SCOPED_TRACE("batch " + std::to_string(b));
        const std::vector<double> xb = fkt::prepared(x, b, c.metric);
        const std::vector<double> cb = fkt::to_double(r.centroids.data() + b * k * d, static_cast<std::size_t>(k * d));
        const fkt::LabelCheck lc =
            fkt::check_labels_near_optimal(c.metric, xb, n, d, cb, k, r.labels.data() + b * n, what, c.mode.u_in);
        fkt::check_inertia(r.inertia[b], lc, what);
        std::vector<double> prev = fkt::to_double(r_prev.centroids.data() + b * k * d, static_cast<std::size_t>(k * d));
        if (c.metric != Metric::euclidean) fkt::normalize_rows(prev.data(), k, d);
        fkt::check_means(c.metric, xb, n, d, r_seed.centroids.data() + b * k * d, k, r_seed.labels.data() + b * n,
                         prev, what);
      }
    }

    // The CPU backend on the same (rounded) data from the same centroids.
    const fk::KMeansResult cpu = fk::fit(x.view(), on_host(o, init));
    // On D = 1, cosine and dot see only the directions +1 and -1: the labels are exact ties broken
    // by rounding, so only the objective is compared there. On D <= 3 with rounded products
    // (tf32, 16-bit), many points sit within rounding of a boundary and a flipped label moves the
    // following iterations apart: there the float64 checks above are the test, not the CPU's run.
    const bool ties = d == 1 && c.metric != Metric::euclidean;
    const bool divergent = d <= 3 && c.mode.u_in != 0;
    if (divergent) {
      std::printf("[ note ] %s %s %s: CPU comparison skipped (D <= 3 with rounded products)\n", c.shape.name,
                  fk::to_string(c.metric), c.mode.name);
    } else {
      for (std::int64_t b = 0; b < nb; ++b)
        EXPECT_NEAR(r.inertia[b], cpu.inertia[b], inertia_tolerance(x, b, c.metric, c.mode.u_in, cpu.inertia[b]))
            << "inertia of batch " << b << " against the CPU's";
    }
    if (!ties && !divergent) {
      EXPECT_GE(fkt::agreement(r.labels.data(), cpu.labels.data(), nb * n), c.mode.min_agreement)
          << "label agreement with the CPU backend";
      EXPECT_LE(relative_error(r.centroids, cpu.centroids), c.mode.u_in == 0 ? 1e-3 : 1e-2)
          << "centroids against the CPU backend's";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Matrix, CudaFit, testing::ValuesIn(fit_cases()), fit_case_name);

// ---------------------------------------------------------------------------------------------
// fit_into: every output element written, nothing past the end, the same values as fit.

class CudaFitInto : public testing::TestWithParam<std::tuple<Metric, Mode>> {};

TEST_P(CudaFitInto, WritesEveryElementAndMatchesFit) {
  FK_REQUIRE_GPU();
  const auto [m, mode] = GetParam();
  const std::int64_t nb = 3, n = 1037, d = 17, k = 13;
  std::mt19937 g(31);
  const fkt::Array x = fkt::make_array(separated_blobs(g, nb, n, d, k), nb, n, d, mode.dtype);
  const fc::DeviceArray dx = fc::upload(x);
  fk::KMeansOptions o;
  o.n_clusters = k;
  o.max_iter = 6;
  o.metric = m;
  o.precision = mode.precision;
  o.seed = 9;

  fc::Outputs out(nb, n, k, d);
  const fk::FitSummary s = fk::fit_into(dx.view, o, out.buffers());
  const fk::KMeansResult r = fk::fit(dx.view, o);
  const std::vector<std::int32_t> labels = out.labels.download();
  const std::vector<float> centroids = out.centroids.download(), dist = out.distances.download();
  EXPECT_EQ(fc::count_poisoned(labels), 0u) << "labels not written";
  EXPECT_EQ(fc::count_poisoned(centroids), 0u) << "centroids not written";
  EXPECT_EQ(fc::count_poisoned(dist), 0u) << "distances not written";
  EXPECT_EQ(fc::count_poisoned(out.labels.download_guard()), 64u) << "written past the end of labels";
  EXPECT_EQ(fc::count_poisoned(out.centroids.download_guard()), 64u) << "written past the end of centroids";
  EXPECT_EQ(fc::count_poisoned(out.distances.download_guard()), 64u) << "written past the end of distances";

  EXPECT_EQ(labels, r.labels) << "fit_into and fit disagree";
  EXPECT_TRUE(fkt::same_bits(centroids, r.centroids)) << "fit_into and fit disagree";
  EXPECT_EQ(s.n_iter, r.n_iter);
  EXPECT_EQ(s.converged, r.converged);
  ASSERT_EQ(s.inertia.size(), static_cast<std::size_t>(nb));
  for (std::int64_t b = 0; b < nb; ++b) {
    EXPECT_EQ(s.inertia[b], r.inertia[b]) << "batch " << b;
    // Each distance is the point's distance to its labelled centroid; they sum to the inertia.
    const std::vector<double> xb = fkt::prepared(x, b, m);
    const std::vector<double> cb = fkt::to_double(centroids.data() + b * k * d, static_cast<std::size_t>(k * d));
    const double cmax2 = fkt::max_sq_norm(cb.data(), k, d);
    double sum = 0, abs_sum = 0;
    int bad = 0;
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int32_t l = labels[b * n + i];
      ASSERT_TRUE(l >= 0 && l < k) << "label " << l;
      const double want = fkt::distance(m, &xb[i * d], &cb[l * d], d);
      const double tol = fkt::label_tolerance(m, &xb[i * d], cmax2, d, mode.u_in);
      if (std::fabs(dist[b * n + i] - want) > tol && bad++ < 5)
        ADD_FAILURE() << "batch " << b << " point " << i << ": distance " << dist[b * n + i] << ", expected " << want
                      << " +- " << tol;
      sum += dist[b * n + i], abs_sum += std::fabs(dist[b * n + i]);
    }
    EXPECT_NEAR(sum, s.inertia[b], 1e-5 * abs_sum + 1e-6) << "distances do not sum to the inertia of batch " << b;
  }

  // Without a distances buffer: the same labels and centroids.
  fc::Outputs out2(nb, n, k, d);
  const fk::FitSummary s2 = fk::fit_into(dx.view, o, out2.buffers(false));
  EXPECT_EQ(out2.labels.download(), labels);
  EXPECT_TRUE(fkt::same_bits(out2.centroids.download(), centroids));
  EXPECT_EQ(fc::count_poisoned(out2.distances.download()), static_cast<std::size_t>(nb * n))
      << "a null distances pointer must leave the distances buffer alone";
  EXPECT_EQ(s2.n_iter, s.n_iter);
}

std::string metric_mode_name(const testing::TestParamInfo<std::tuple<Metric, Mode>>& i) {
  return std::string(fk::to_string(std::get<0>(i.param))) + "_" + std::get<1>(i.param).name;
}

INSTANTIATE_TEST_SUITE_P(Modes, CudaFitInto,
                         testing::Combine(testing::ValuesIn(kMetrics), testing::ValuesIn(kModes)), metric_mode_name);

// ---------------------------------------------------------------------------------------------
// Layouts: strided device input, centroids on the host and on the device, in any dtype.

struct Layout {
  const char* name;
  fc::Strides s;
};

std::vector<Layout> layouts(std::int64_t nb, std::int64_t n, std::int64_t d) {
  return {
      {"padded_rows", {n * (d + 5) + 3, d + 5, 1}},
      {"interleaved", {2 * n * d, 2 * d, 2}},
      {"transposed", {n * d, 1, n}},
      {"batch_innermost", {1, nb * d, nb}},
  };
}

class CudaLayouts : public testing::TestWithParam<std::tuple<Metric, Mode>> {};

TEST_P(CudaLayouts, StridedInputSameAsContiguous) {
  FK_REQUIRE_GPU();
  const auto [m, mode] = GetParam();
  const std::int64_t nb = 2, n = 301, d = 13, k = 7;
  std::mt19937 g(21);
  const fkt::Array x = fkt::make_array(separated_blobs(g, nb, n, d, k), nb, n, d, mode.dtype);
  const fkt::Array init = fkt::first_rows(x, k);
  const fc::DeviceArray dx = fc::upload(x);
  const fk::KMeansOptions o = given_options(init.view(), k, m, mode, 5);
  const fk::KMeansResult want = fk::fit(dx.view, o);
  fk::PredictOptions po;
  po.metric = m, po.precision = mode.precision;
  fc::Outputs want_p(nb, n, k, d);
  fk::predict_into(dx.view, init.view(), po, want_p.buffers());
  for (const Layout& l : layouts(nb, n, d)) {
    SCOPED_TRACE(l.name);
    const fc::DeviceArray sx = fc::upload(x, l.s);
    fkt::expect_identical(fk::fit(sx.view, o), want, l.name);
    fc::Outputs p(nb, n, k, d);
    fk::predict_into(sx.view, init.view(), po, p.buffers());
    EXPECT_EQ(p.labels.download(), want_p.labels.download());
    EXPECT_TRUE(fkt::same_bits(p.distances.download(), want_p.distances.download()));
  }
  // Strided initial centroids on the device.
  for (const Layout& l : layouts(nb, k, d)) {
    SCOPED_TRACE(std::string("init ") + l.name);
    const fc::DeviceArray sc = fc::upload(init, l.s);
    fk::KMeansOptions os = o;
    os.init_centroids = sc.view;
    fkt::expect_identical(fk::fit(dx.view, os), want, l.name);
  }
}

// Initial centroids on the host or on the device, float32 or the dtype of x: the same fit.
TEST_P(CudaLayouts, GivenCentroidsOnHostOrDevice) {
  FK_REQUIRE_GPU();
  const auto [m, mode] = GetParam();
  const std::int64_t nb = 3, n = 2001, d = 33, k = 19;
  std::mt19937 g(22);
  const fkt::Array x = fkt::make_array(separated_blobs(g, nb, n, d, k), nb, n, d, mode.dtype);
  const fkt::Array init = fkt::first_rows(x, k);
  // The same values as float32 (exact: float16 and bfloat16 values are floats).
  std::vector<float> init_values(init.values.begin(), init.values.end());
  const fkt::Array init32 = fkt::make_array(init_values, nb, k, d, DType::float32);
  const fc::DeviceArray dx = fc::upload(x), dinit = fc::upload(init), dinit32 = fc::upload(init32);
  const fk::KMeansResult host = fk::fit(dx.view, given_options(init.view(), k, m, mode, 5));
  fkt::expect_identical(fk::fit(dx.view, given_options(dinit.view, k, m, mode, 5)), host, "device init, x's dtype");
  fkt::expect_identical(fk::fit(dx.view, given_options(init32.view(), k, m, mode, 5)), host, "host init, float32");
  fkt::expect_identical(fk::fit(dx.view, given_options(dinit32.view, k, m, mode, 5)), host, "device init, float32");
  // And the CPU backend from the same centroids.
  const fk::KMeansResult cpu = fk::fit(x.view(), given_options(init.view(), k, m, mode, 5));
  EXPECT_GE(fkt::agreement(host.labels.data(), cpu.labels.data(), nb * n), mode.min_agreement);
}

// Rows that overlap (a row stride below D: sliding windows) or repeat (a batch stride of 0) are
// read through a staged copy: the same fit as on the same values laid out contiguously. D and K
// put the fit on the Hopper kernel where there is one (it reads rows through a TMA tensor map).
TEST(CudaLayouts, OverlappingRowsAndRepeatedBatches) {
  FK_REQUIRE_GPU();
  const std::int64_t n = 3001, d = 96, k = 200, step = 16, nb = 2;
  std::mt19937 g(23);
  const std::vector<float> raw = fkt::gaussian(g, (n - 1) * step + d);
  fc::Buffer<float> device_raw(raw);
  fk::TensorView windows = fk::TensorView::batched(device_raw.get(), nb, n, d);
  windows.device = {fk::DeviceType::cuda, 0};
  windows.row_stride = step, windows.batch_stride = 0;  // both batches: the same windows
  std::vector<float> dense(static_cast<std::size_t>(nb * n * d));
  for (std::int64_t b = 0; b < nb; ++b)
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < d; ++j) dense[(b * n + i) * d + j] = raw[i * step + j];
  const fkt::Array x = fkt::make_array(dense, nb, n, d, DType::float32);
  const fkt::Array init = fkt::first_rows(x, k);
  const fc::DeviceArray dx = fc::upload(x);
  for (const Mode& mode : {kF32Tf32, kF32Exact}) {
    SCOPED_TRACE(mode.name);
    const fk::KMeansOptions o = given_options(init.view(), k, Metric::euclidean, mode, 5);
    fkt::expect_identical(fk::fit(windows, o), fk::fit(dx.view, o), "overlapping rows");
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, CudaLayouts,
                         testing::Combine(testing::ValuesIn(kMetrics), testing::ValuesIn(kModes)), metric_mode_name);

// ---------------------------------------------------------------------------------------------
// Initialisation on the device.

// Init::random draws its rows with the host RNG of the CPU backend: the first assignment is the
// CPU's (up to float32 rounding in exact mode).
TEST(CudaInit, RandomInitDrawsTheCpuRows) {
  FK_REQUIRE_GPU();
  const std::int64_t nb = 3, n = 4001, d = 24, k = 40;
  std::mt19937 g(41);
  const fkt::Array x = fkt::make_array(fkt::gaussian(g, nb * n * d), nb, n, d, DType::float32);
  const fc::DeviceArray dx = fc::upload(x);
  for (Metric m : kMetrics)
    for (std::uint64_t seed : {0ull, 7ull, 123456789ull}) {
      SCOPED_TRACE(std::string(fk::to_string(m)) + " seed " + std::to_string(seed));
      fk::KMeansOptions o;
      o.n_clusters = k;
      o.max_iter = 1;
      o.metric = m;
      o.seed = seed;
      o.final_assignment = false;  // the labels of the assignment against the initial rows
      o.empty_clusters = fk::EmptyClusters::keep;
      const fk::KMeansResult gpu = fk::fit(dx.view, o), cpu = fk::fit(x.view(), o);
      EXPECT_GE(fkt::agreement(gpu.labels.data(), cpu.labels.data(), nb * n), 0.999);
      EXPECT_LE(relative_error(gpu.centroids, cpu.centroids), 1e-3);
    }
}

// k-means++ on the device: on far-apart blobs it finds every blob, as the CPU's does.
TEST(CudaInit, KMeansPlusPlusCoversSeparatedBlobs) {
  FK_REQUIRE_GPU();
  const std::int64_t nb = 3, n = 3000, d = 16, k = 30;
  std::mt19937 g(42);
  const fkt::Array x = fkt::make_array(fkt::blobs(g, nb, n, d, k, 100.0, 1.0), nb, n, d, DType::float32);
  const fc::DeviceArray dx = fc::upload(x);
  for (const Mode& mode : {kF32Exact, kF32Tf32}) {
    SCOPED_TRACE(mode.name);
    fk::KMeansOptions o;
    o.n_clusters = k;
    o.max_iter = 10;
    o.init = fk::Init::kmeans_plus_plus;
    o.seed = 5;
    o.precision = mode.precision;
    const fk::KMeansResult gpu = fk::fit(dx.view, o), again = fk::fit(dx.view, o), cpu = fk::fit(x.view(), o);
    fkt::expect_identical(gpu, again, "k-means++ run twice");
    for (std::int64_t b = 0; b < nb; ++b) {
      // Every blob is one cluster: the labels are a relabelling of i % k.
      std::vector<std::int32_t> blob_of(static_cast<std::size_t>(k), -1);
      bool pure = true;
      for (std::int64_t i = 0; i < n; ++i) {
        std::int32_t& seen = blob_of[gpu.labels[b * n + i]];
        if (seen == -1) seen = static_cast<std::int32_t>(i % k);
        pure &= seen == i % k;
      }
      EXPECT_TRUE(pure) << "batch " << b << ": a cluster holds points of two blobs";
      EXPECT_LE(relative_diff(gpu.inertia[b], cpu.inertia[b]), 1e-4) << "batch " << b;
    }
  }
}

// k-means++ on the device makes the CPU backend's draws: on structureless data (where a different
// centroid shows in the labels) one Lloyd step from it gives the CPU's labels. Shapes: several
// batches, D above the lanes that share a point, and K = N (the weights all reach zero).
TEST(CudaInit, KMeansPlusPlusMakesTheCpuChoices) {
  FK_REQUIRE_GPU();
  struct Shape {
    std::int64_t nb, n, d, k;
  };
  for (const Shape s : {Shape{3, 2000, 24, 40}, Shape{2, 1000, 300, 17}, Shape{1, 50, 3, 50}, Shape{2, 777, 1, 9}})
    for (Metric m : kMetrics) {
      SCOPED_TRACE(std::to_string(s.n) + "x" + std::to_string(s.d) + " k=" + std::to_string(s.k) + " " +
                   fk::to_string(m));
      std::mt19937 g(static_cast<unsigned>(s.n + s.d));
      const fkt::Array x = fkt::make_array(fkt::gaussian(g, s.nb * s.n * s.d), s.nb, s.n, s.d, DType::float32);
      const fc::DeviceArray dx = fc::upload(x);
      fk::KMeansOptions o;
      o.n_clusters = s.k, o.max_iter = 1, o.metric = m, o.seed = 23;
      o.init = fk::Init::kmeans_plus_plus;
      o.precision = fk::Precision::exact;
      const fk::KMeansResult gpu = fk::fit(dx.view, o), cpu = fk::fit(x.view(), o);
      EXPECT_GE(fkt::agreement(gpu.labels.data(), cpu.labels.data(), s.nb * s.n), 0.999);
      for (std::int64_t b = 0; b < s.nb; ++b)  // (dot: negative; K = N: near 0)
        EXPECT_NEAR(gpu.inertia[b], cpu.inertia[b], 1e-4 * std::fabs(cpu.inertia[b]) + 1e-6) << "batch " << b;
    }
}

// ---------------------------------------------------------------------------------------------
// predict and predict_into against the CPU's predict.

struct PredictShape {
  const char* name;
  std::int64_t n, d, k;
};

const PredictShape kPredictShapes[] = {
    {"n1_d1_k1", 1, 1, 1}, {"d3_1000_k13", 1000, 3, 13}, {"odd_1037x17_k130", 1037, 17, 130},
    {"4099x129_k300", 4099, 129, 300}, {"4099x96_k300", 4099, 96, 300}, {"4099x100_k77", 4099, 100, 77},
    {"10007x784_k10", 10007, 784, 10},
    {"20011x64_k2000", 20011, 64, 2000},
};

class CudaPredict : public testing::TestWithParam<std::tuple<PredictShape, Metric, Mode>> {};

TEST_P(CudaPredict, MatchesCpuAndReference) {
  FK_REQUIRE_GPU();
  const auto [s, m, mode] = GetParam();
  const std::int64_t nb = 3, n = s.n, d = s.d, k = s.k;
  std::mt19937 g(51);
  // Structureless data: many near-ties, the hardest case for label agreement.
  const fkt::Array x = fkt::make_array(fkt::gaussian(g, nb * n * d), nb, n, d, mode.dtype);
  const fkt::Array c_shared = fkt::make_array(fkt::gaussian(g, k * d), 1, k, d, DType::float32);
  const fkt::Array c_batched = fkt::make_array(fkt::gaussian(g, nb * k * d), nb, k, d, DType::float32);
  const fc::DeviceArray dx = fc::upload(x), dc_batched = fc::upload(c_batched);
  fk::PredictOptions po;
  po.metric = m, po.precision = mode.precision;

  for (const bool shared : {true, false}) {
    const fkt::Array& c = shared ? c_shared : c_batched;
    const std::string what = std::string(s.name) + " " + fk::to_string(m) + " " + mode.name +
                             (shared ? " shared host centroids" : " per-batch device centroids");
    SCOPED_TRACE(what);
    const fk::TensorView cview = shared ? c.view() : dc_batched.view;
    const fk::PredictResult cpu = fk::predict(x.view(), c.view(), m);

    fc::Outputs out(nb, n, k, d);
    fk::predict_into(dx.view, cview, po, out.buffers());
    const std::vector<std::int32_t> labels = out.labels.download();
    const std::vector<float> dist = out.distances.download();
    EXPECT_EQ(fc::count_poisoned(labels), 0u) << "labels not written";
    EXPECT_EQ(fc::count_poisoned(dist), 0u) << "distances not written";
    EXPECT_EQ(fc::count_poisoned(out.labels.download_guard()), 64u) << "written past the end of labels";
    EXPECT_EQ(fc::count_poisoned(out.distances.download_guard()), 64u) << "written past the end of distances";
    EXPECT_EQ(fc::count_poisoned(out.centroids.download()), static_cast<std::size_t>(nb * k * d))
        << "predict_into must not touch the centroids buffer";
    const bool ties = d == 1 && m != Metric::euclidean;
    if (!ties) {
      EXPECT_GE(fkt::agreement(labels.data(), cpu.labels.data(), nb * n), mode.u_in == 0 ? 0.999 : 0.95)
          << "label agreement with the CPU's predict";
    }

    for (std::int64_t b = 0; b < nb; ++b) {
      const std::vector<double> xb = fkt::prepared(x, b, m);
      std::vector<double> cb(c.row(shared ? 0 : b, 0), c.row(shared ? 0 : b, 0) + k * d);
      if (m == Metric::cosine) fkt::normalize_rows(cb.data(), k, d);
      fkt::check_labels_near_optimal(m, xb, n, d, cb, k, labels.data() + b * n, what, mode.u_in);
      const double cmax2 = fkt::max_sq_norm(cb.data(), k, d);
      int bad = 0;
      for (std::int64_t i = 0; i < n; ++i) {
        const std::int32_t l = labels[b * n + i];
        if (l < 0 || l >= k) continue;  // reported by check_labels_near_optimal
        const double want = fkt::distance(m, &xb[i * d], &cb[l * d], d);
        const double tol = fkt::label_tolerance(m, &xb[i * d], cmax2, d, mode.u_in);
        if (std::fabs(dist[b * n + i] - want) > tol && bad++ < 5)
          ADD_FAILURE() << "batch " << b << " point " << i << ": distance " << dist[b * n + i] << ", expected "
                        << want << " +- " << tol;
      }
    }

    // predict() on device input: host results, the same as predict_into in exact mode.
    if (mode.precision == Precision::exact) {
      const fk::PredictResult r = fk::predict(dx.view, cview, m);
      ASSERT_EQ(r.batch, nb);
      ASSERT_EQ(r.n, n);
      EXPECT_EQ(r.labels, labels);
      EXPECT_TRUE(fkt::same_bits(r.distances, dist));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Matrix, CudaPredict,
                         testing::Combine(testing::ValuesIn(kPredictShapes), testing::ValuesIn(kMetrics),
                                          testing::ValuesIn(kModes)),
                         [](const auto& i) {
                           return std::string(std::get<0>(i.param).name) + "_" +
                                  fk::to_string(std::get<1>(i.param)) + "_" + std::get<2>(i.param).name;
                         });

// predict with the centroids a device fit returned gives back its labels and inertia.
TEST(CudaPredictAfterFit, LabelsAndInertia) {
  FK_REQUIRE_GPU();
  const std::int64_t nb = 2, n = 1500, d = 21, k = 9;
  std::mt19937 g(72);
  const fkt::Array x = fkt::make_array(fkt::blobs(g, nb, n, d, k), nb, n, d, DType::float32);
  const fc::DeviceArray dx = fc::upload(x);
  for (Metric m : kMetrics)
    for (const Mode& mode : {kF32Exact, kF32Tf32}) {
      SCOPED_TRACE(std::string(fk::to_string(m)) + " " + mode.name);
      fk::KMeansOptions o;
      o.n_clusters = k;
      o.max_iter = 5;
      o.metric = m;
      o.seed = 3;
      o.precision = mode.precision;
      fc::Outputs f(nb, n, k, d);
      const fk::FitSummary s = fk::fit_into(dx.view, o, f.buffers());
      fk::TensorView cview = fk::TensorView::batched(f.centroids.get(), nb, k, d);
      cview.device = {fk::DeviceType::cuda, 0};
      fk::PredictOptions po;
      po.metric = m, po.precision = mode.precision;
      fc::Outputs p(nb, n, k, d);
      fk::predict_into(dx.view, cview, po, p.buffers());
      EXPECT_EQ(p.labels.download(), f.labels.download());
      const std::vector<float> dist = p.distances.download();
      for (std::int64_t b = 0; b < nb; ++b) {
        double sum = 0;
        for (std::int64_t i = 0; i < n; ++i) sum += dist[b * n + i];
        EXPECT_NEAR(sum, s.inertia[b], 1e-6 * std::fabs(s.inertia[b]) + 1e-6) << "batch " << b;
      }
    }
}

// ---------------------------------------------------------------------------------------------
// Determinism: two runs are bitwise identical; a caller's stream gives the same results.

class CudaDeterminism : public testing::TestWithParam<Mode> {};

TEST_P(CudaDeterminism, TwoRunsBitwiseEqual) {
  FK_REQUIRE_GPU();
  const Mode mode = GetParam();
  const std::int64_t nb = 3, n = 5003, d = 64, k = 100;
  std::mt19937 g(61);
  const fkt::Array x = fkt::make_array(fkt::gaussian(g, nb * n * d), nb, n, d, mode.dtype);
  const fc::DeviceArray dx = fc::upload(x);
  for (Metric m : kMetrics)
    for (fk::Init init : {fk::Init::random, fk::Init::kmeans_plus_plus}) {
      const std::string what = std::string(fk::to_string(m)) + " " + fk::to_string(init);
      SCOPED_TRACE(what);
      fk::KMeansOptions o;
      o.n_clusters = k;
      o.max_iter = 10;
      o.metric = m;
      o.init = init;
      o.seed = 11;
      o.precision = mode.precision;
      const fk::KMeansResult a = fk::fit(dx.view, o), b = fk::fit(dx.view, o);
      fkt::expect_identical(a, b, what);

      fc::Stream stream;
      fk::KMeansOptions os = o;
      os.cuda_stream = stream.get();
      fc::Outputs out(nb, n, k, d);
      const fk::FitSummary s = fk::fit_into(dx.view, os, out.buffers());
      // fit_into has returned: the outputs are ready for work queued on the stream after it.
      std::vector<std::int32_t> labels(static_cast<std::size_t>(nb * n));
      fc::check(cudaMemcpyAsync(labels.data(), out.labels.get(), labels.size() * sizeof(std::int32_t),
                                cudaMemcpyDeviceToHost, stream.get()),
                "cudaMemcpyAsync");
      fc::check(cudaStreamSynchronize(stream.get()), "cudaStreamSynchronize");
      EXPECT_EQ(labels, a.labels) << "fit on a caller's stream differs";
      EXPECT_TRUE(fkt::same_bits(out.centroids.download(), a.centroids));
      EXPECT_EQ(s.n_iter, a.n_iter);
      EXPECT_EQ(s.inertia, a.inertia);

      fk::PredictOptions po;
      po.metric = m, po.precision = mode.precision;
      fk::TensorView cview = fk::TensorView::batched(out.centroids.get(), nb, k, d);
      cview.device = {fk::DeviceType::cuda, 0};
      fc::Outputs p1(nb, n, k, d), p2(nb, n, k, d);
      fk::predict_into(dx.view, cview, po, p1.buffers());
      fk::predict_into(dx.view, cview, po, p2.buffers());
      EXPECT_EQ(p1.labels.download(), p2.labels.download());
      EXPECT_TRUE(fkt::same_bits(p1.distances.download(), p2.distances.download()));
    }
}

INSTANTIATE_TEST_SUITE_P(Modes, CudaDeterminism, testing::ValuesIn(kModes),
                         [](const auto& i) { return std::string(i.param.name); });

// Threads fitting and predicting at once on different data give what the same calls give one after
// another: device and host input, both assignment kernels, the graph-replayed and the directly
// launched loop, the sort and scan updates, one shared memory pool.
TEST(CudaConcurrency, ConcurrentFitsMatchSerialFits) {
  FK_REQUIRE_GPU();
  struct Job {
    std::int64_t nb, n, d, k;
    int iters;
    Mode mode;
    Metric metric;
    bool on_device;
  };
  const std::vector<Job> jobs = {
      {1, 5000, 64, 50, 10, kF32Tf32, Metric::euclidean, true},  // scan update, direct launches
      {2, 20011, 100, 300, 40, kF16, Metric::cosine, true},       // Hopper kernel (on Hopper), a graph
      {3, 4099, 256, 300, 8, kF32Exact, Metric::dot, false},      // host input, mma.sync kernel
      {1, 70001, 128, 300, 6, kBF16, Metric::euclidean, true},    // sort-inverse update
      {2, 50000, 16, 20, 12, kF32Tf32, Metric::euclidean, true},  // privatised (dense) update
  };
  struct Data {
    fkt::Array x, init;
    std::unique_ptr<fc::DeviceArray> dx;
  };
  std::vector<Data> data(jobs.size());
  for (std::size_t j = 0; j < jobs.size(); ++j) {
    const Job& job = jobs[j];
    std::mt19937 g(700 + static_cast<unsigned>(j));
    data[j].x = fkt::make_array(fkt::gaussian(g, job.nb * job.n * job.d), job.nb, job.n, job.d, job.mode.dtype);
    data[j].init = fkt::first_rows(data[j].x, job.k);
    data[j].dx = std::make_unique<fc::DeviceArray>(fc::upload(data[j].x));
  }
  const auto run = [&](std::size_t j) {
    const Job& job = jobs[j];
    const fk::TensorView x = job.on_device ? data[j].dx->view : data[j].x.view();
    const fk::KMeansResult r = fk::fit(x, given_options(data[j].init.view(), job.k, job.metric, job.mode, job.iters));
    fk::PredictOptions po;
    po.metric = job.metric, po.precision = job.mode.precision;
    fc::Outputs p(job.nb, job.n, job.k, job.d);
    fk::predict_into(data[j].dx->view, data[j].init.view(), po, p.buffers());
    // predict_into returns once its work is done, so a plain copy reads its results. (download()
    // synchronises the whole device first, which CUDA refuses while another thread's fit captures
    // its loop into a graph: see the README, "Threads".)
    std::vector<std::int32_t> labels(static_cast<std::size_t>(job.nb * job.n));
    fc::check(cudaMemcpy(labels.data(), p.labels.get(), labels.size() * sizeof(std::int32_t), cudaMemcpyDeviceToHost),
              "cudaMemcpy");
    return std::make_pair(r, labels);
  };
  std::vector<std::pair<fk::KMeansResult, std::vector<std::int32_t>>> serial;
  for (std::size_t j = 0; j < jobs.size(); ++j) serial.push_back(run(j));

  constexpr int kRounds = 3;  // each job in kRounds threads, all started together
  std::vector<std::pair<fk::KMeansResult, std::vector<std::int32_t>>> got(jobs.size() * kRounds);
  std::vector<std::string> errors(got.size());
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < got.size(); ++t)
    threads.emplace_back([&, t] {
      try {
        got[t] = run(t % jobs.size());
      } catch (const std::exception& e) {
        errors[t] = e.what();
      }
    });
  for (std::thread& t : threads) t.join();
  for (std::size_t t = 0; t < got.size(); ++t) {
    const std::size_t j = t % jobs.size();
    SCOPED_TRACE("job " + std::to_string(j) + ", thread " + std::to_string(t));
    EXPECT_EQ(errors[t], "");
    if (!errors[t].empty()) continue;
    fkt::expect_identical(got[t].first, serial[j].first, "concurrent fit");
    EXPECT_EQ(got[t].second, serial[j].second) << "concurrent predict_into";
  }
}

// ---------------------------------------------------------------------------------------------
// The sort path's update is incremental: member sums persist across iterations, and each
// iteration adds the rows that joined a cluster and subtracts those that left it, its moves sorted
// by cluster. After many iterations with many moves (Gaussian data), after relocations (duplicate
// initial centroids) and with clusters kept empty (no moves of theirs), every centroid must still be
// the float64 mean of its members, to float32 rounding (a row missed or counted twice moves a mean
// of ~230 members by ~0.4% of a row). 2 x 70,001 x 128, K = 300: too many labels for the scan
// update, sums too large for the dense one; D > 1024 takes the sort path too. The scan path keeps
// its member sums the same way once fewer than N / 8 points move in an iteration (its cases below).

enum class Start {
  gaussian,   ///< Gaussian data (many moves), empty clusters kept
  relocated,  ///< blobs, centroids 1..10 repeat centroid 0 (empty at once), relocated
  kept,       ///< the same, kept empty: the sorted moves skip them every iteration
};

struct IncrementalCase {
  const char* name;
  Mode mode;
  Metric metric;
  Start start;
  int iters;
  std::int64_t nb = 2, n = 70001, d = 128, k = 300;
};

void PrintTo(const IncrementalCase& c, std::ostream* os) { *os << c.name; }

class CudaIncrementalUpdate : public testing::TestWithParam<IncrementalCase> {};

TEST_P(CudaIncrementalUpdate, CentroidsStayTheMeansOfTheirMembers) {
  FK_REQUIRE_GPU();
  const IncrementalCase& c = GetParam();
  const std::int64_t nb = c.nb, n = c.n, d = c.d, k = c.k;
  std::mt19937 g(4242 + c.iters);
  const bool duplicates = c.start != Start::gaussian;
  const std::vector<float> raw = duplicates ? separated_blobs(g, nb, n, d, k) : fkt::gaussian(g, nb * n * d);
  const fkt::Array x = fkt::make_array(raw, nb, n, d, c.mode.dtype);
  std::vector<float> first;  // the first K rows; with duplicates, rows 1..10 repeat row 0 (empty at once)
  for (std::int64_t b = 0; b < nb; ++b)
    for (std::int64_t j = 0; j < k; ++j) {
      const auto from = raw.begin() + (b * n + (duplicates && j <= 10 ? 0 : j)) * d;
      first.insert(first.end(), from, from + d);
    }
  const fkt::Array init = fkt::make_array(first, nb, k, d, c.mode.dtype);
  const fc::DeviceArray dx = fc::upload(x);
  fk::KMeansOptions o = given_options(init.view(), k, c.metric, c.mode, c.iters);
  o.final_assignment = false;  // the labels the last centroids were computed from
  if (c.start == Start::relocated) o.empty_clusters = fk::EmptyClusters::relocate;
  fk::KMeansOptions o_prev = o;
  o_prev.max_iter = c.iters - 1;
  const fk::KMeansResult r = fk::fit(dx.view, o), prev = fk::fit(dx.view, o_prev);
  expect_sizes(r, nb, n, k, d);

  for (std::int64_t b = 0; b < nb; ++b) {
    SCOPED_TRACE("batch " + std::to_string(b));
    const std::vector<double> xb = fkt::prepared(x, b, c.metric);
    const std::int32_t* labels = r.labels.data() + b * n;
    std::vector<double> sum(k * d, 0.0), abs_sum(k * d, 0.0);
    std::vector<std::int64_t> count(k, 0);
    for (std::int64_t i = 0; i < n; ++i) {
      ASSERT_GE(labels[i], 0);
      ASSERT_LT(labels[i], k);
      ++count[labels[i]];
      for (std::int64_t q = 0; q < d; ++q) {
        sum[labels[i] * d + q] += xb[i * d + q];
        abs_sum[labels[i] * d + q] += std::fabs(xb[i * d + q]);
      }
    }
    int wrong = 0, empty = 0;
    for (std::int64_t j = 0; j < k; ++j) {
      const float* cj = r.centroids.data() + (b * k + j) * d;
      if (count[j] == 0) {  // kept: the centroid of the iteration before
        ++empty;
        EXPECT_TRUE(std::equal(cj, cj + d, prev.centroids.data() + (b * k + j) * d)) << "empty cluster " << j;
        continue;
      }
      std::vector<double> mean(d);
      for (std::int64_t q = 0; q < d; ++q) mean[q] = sum[j * d + q] / static_cast<double>(count[j]);
      double norm = 1.0;
      if (c.metric != Metric::euclidean) norm = std::max(std::sqrt(fkt::dot(mean.data(), mean.data(), d)), 1e-12);
      for (std::int64_t q = 0; q < d; ++q) {
        const double want = mean[q] / norm, scale = abs_sum[j * d + q] / static_cast<double>(count[j]) / norm;
        const double tol = 1e-6 * scale + 0x1p-22 * std::fabs(want);
        if (std::fabs(cj[q] - want) > tol && wrong++ < 5)
          ADD_FAILURE() << "centroid " << j << " (" << count[j] << " members) coordinate " << q << " is " << cj[q]
                        << ", the mean of its members " << want << " +- " << tol;
      }
    }
    EXPECT_EQ(wrong, 0) << "centroids that are not the means of their members";
    if (c.start == Start::relocated) {
      EXPECT_EQ(empty, 0) << "relocation left clusters empty";
    }
    if (c.start == Start::kept) {  // identical centroids tie and the lowest index wins: at most one
      EXPECT_GE(empty, 10 - c.iters) << "repeated centroids won points";  // of them leaves each iteration
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, CudaIncrementalUpdate,
    testing::Values(IncrementalCase{"gaussian_tf32_euclidean_2", kF32Tf32, Metric::euclidean, Start::gaussian, 2},
                    IncrementalCase{"gaussian_tf32_euclidean_25", kF32Tf32, Metric::euclidean, Start::gaussian, 25},
                    IncrementalCase{"gaussian_bf16_cosine_25", kBF16, Metric::cosine, Start::gaussian, 25},
                    IncrementalCase{"gaussian_f16_dot_9", kF16, Metric::dot, Start::gaussian, 9},
                    IncrementalCase{"relocated_f32_euclidean_6", kF32Exact, Metric::euclidean, Start::relocated, 6},
                    IncrementalCase{"relocated_f16_cosine_6", kF16, Metric::cosine, Start::relocated, 6},
                    IncrementalCase{"kept_empty_bf16_euclidean_5", kBF16, Metric::euclidean, Start::kept, 5},
                    // wide rows: several column passes in the walks, fewer clusters per block in the finish
                    IncrementalCase{"wide_2100_tf32_euclidean_6", kF32Tf32, Metric::euclidean, Start::gaussian, 6,
                                    1, 6000, 2100, 40},
                    IncrementalCase{"wide_4100_bf16_cosine_4", kBF16, Metric::cosine, Start::gaussian, 4, 2, 3000,
                                    4100, 40},
                    // rows wider than the finish could hold in shared memory (it reads them in place),
                    // and the widest it keeps there (16 D bytes and its static share within 48 KB)
                    IncrementalCase{"wide_16500_tf32_euclidean_3", kF32Tf32, Metric::euclidean, Start::gaussian, 3, 1,
                                    2000, 16500, 30},
                    IncrementalCase{"wide_3000_f16_euclidean_3", kF16, Metric::euclidean, Start::gaussian, 3, 1, 3000,
                                    3000, 30},
                    // many small clusters (8 x 300): the finish takes a warp per cluster, then a
                    // block per batch relocates and keeps the books
                    IncrementalCase{"warp_finish_tf32_euclidean_12", kF32Tf32, Metric::euclidean, Start::gaussian, 12,
                                    8, 20000, 128, 300},
                    IncrementalCase{"warp_finish_relocated_f16_cosine_6", kF16, Metric::cosine, Start::relocated, 6,
                                    8, 20000, 96, 300},
                    IncrementalCase{"warp_finish_kept_empty_bf16_dot_5", kBF16, Metric::dot, Start::kept, 5, 8,
                                    20000, 40, 300},
                    // over two million points: the first iterations' runs pass 256 sorted moves (the
                    // walk's steps), so segments go on from one step into the next
                    IncrementalCase{"long_runs_f16_euclidean_8", kF16, Metric::euclidean, Start::gaussian, 8, 1,
                                    2400000, 32, 512},
                    // many clusters: tiles of 4,096 points (the moves ranked in several rounds), with
                    // the ranks' counters in shared memory (K <= 32,768) and in global memory
                    IncrementalCase{"many_clusters_f16_euclidean_4", kF16, Metric::euclidean, Start::gaussian, 4, 1,
                                    200000, 8, 20000},
                    IncrementalCase{"most_clusters_tf32_euclidean_4", kF32Tf32, Metric::euclidean, Start::gaussian, 4,
                                    1, 80000, 8, 33000},
                    // the scan path (small B * N * K) is incremental too once few points move (N >= 16,384)
                    IncrementalCase{"scan_gaussian_tf32_euclidean_30", kF32Tf32, Metric::euclidean, Start::gaussian,
                                    30, 1, 20000, 64, 100},
                    IncrementalCase{"scan_gaussian_bf16_cosine_30", kBF16, Metric::cosine, Start::gaussian, 30, 2,
                                    20000, 40, 64},
                    IncrementalCase{"scan_gaussian_f16_dot_12", kF16, Metric::dot, Start::gaussian, 12, 1, 17000, 17,
                                    50},
                    IncrementalCase{"scan_relocated_f32_euclidean_8", kF32Exact, Metric::euclidean, Start::relocated,
                                    8, 1, 20000, 64, 100},
                    IncrementalCase{"scan_kept_empty_f16_euclidean_6", kF16, Metric::euclidean, Start::kept, 6, 2,
                                    17000, 64, 60}),
    [](const auto& i) { return std::string(i.param.name); });

// ---------------------------------------------------------------------------------------------
// Identical centroids tie exactly, and the lowest index wins: within a centroid tile, across
// tiles, and in the Hopper kernel's packed fold (16-bit euclidean), where a tie is decided by the
// position bits that replace the scores' lowest mantissa bits. D = 96 and K = 130 take the Hopper
// kernel for every mode but exact float32 (the mma.sync kernel): the repeats of centroids 63 and
// 64 sit in the second tile of 128.

class CudaTies : public testing::TestWithParam<std::tuple<Metric, Mode>> {};

TEST_P(CudaTies, RepeatedCentroidsGoToTheLowestIndex) {
  FK_REQUIRE_GPU();
  const auto [m, mode] = GetParam();
  const std::int64_t n = 3001, d = 96, half = 65, k = 2 * half;
  std::mt19937 g(83);
  const fkt::Array x = fkt::make_array(fkt::gaussian(g, n * d), 1, n, d, mode.dtype);
  // Centroids j and j + half are both point 7 j, as the library sees it (16-bit values exactly).
  std::vector<float> c(static_cast<std::size_t>(k * d));
  for (std::int64_t j = 0; j < half; ++j)
    for (std::int64_t q = 0; q < d; ++q)
      c[j * d + q] = c[(j + half) * d + q] = static_cast<float>(x.values[7 * j * d + q]);
  const fkt::Array init = fkt::make_array(c, 1, k, d, DType::float32);
  const fc::DeviceArray dx = fc::upload(x);
  fk::KMeansOptions o = given_options(init.view(), k, m, mode, 1);
  o.final_assignment = false;  // the labels of the first assignment, against the given centroids
  const fk::KMeansResult r = fk::fit(dx.view, o);
  int repeats = 0, own = 0;
  for (std::int64_t i = 0; i < n; ++i)
    if (r.labels[i] >= half && repeats++ < 5) ADD_FAILURE() << "point " << i << " took the repeat " << r.labels[i];
  for (std::int64_t j = 0; j < half; ++j)
    if (r.labels[7 * j] != j && own++ < 5) ADD_FAILURE() << "point " << 7 * j << " is centroid " << j << ", labelled " << r.labels[7 * j];
  EXPECT_EQ(repeats, 0) << "points labelled with the higher index of two identical centroids";
  EXPECT_EQ(own, 0) << "points that are a centroid labelled otherwise";
  std::vector<double> cb(c.begin(), c.end());
  if (m == Metric::cosine) fkt::normalize_rows(cb.data(), k, d);
  fkt::check_labels_near_optimal(m, fkt::prepared(x, 0, m), n, d, cb, k, r.labels.data(), "ties", mode.u_in);
}

INSTANTIATE_TEST_SUITE_P(Modes, CudaTies, testing::Combine(testing::ValuesIn(kMetrics), testing::ValuesIn(kModes)),
                         metric_mode_name);

// ---------------------------------------------------------------------------------------------
// The packed fold's bias rows scale -h and -||x||^2 / 2 by a power of two per batch so that
// three 16-bit parts hold them; data too small or too large for that takes the lookup fold.
// Batch 0 stays at scale 1 (sigma < 1), batch 1 takes the scale: 1e-3 and 3e3 (||x||^2 / 2 ~
// 1e-4 and 9e8 here) send it to the lookup fold (two launches share the batches), 30 to the bias
// rows with sigma > 1. Either way: the CPU's labels and inertia.

class CudaScales : public testing::TestWithParam<std::tuple<double, Mode>> {};

TEST_P(CudaScales, EveryScaleMatchesCpu) {
  FK_REQUIRE_GPU();
  const auto [scale, mode] = GetParam();
  const std::int64_t nb = 2, n = 3001, d = 96, k = 130;
  std::mt19937 g(89);
  std::vector<float> raw = fkt::blobs(g, nb, n, d, 40, 10.0, 1.0);
  for (std::size_t e = static_cast<std::size_t>(n * d); e < raw.size(); ++e) raw[e] = static_cast<float>(raw[e] * scale);
  const fkt::Array x = fkt::make_array(raw, nb, n, d, mode.dtype);
  std::vector<float> c(static_cast<std::size_t>(nb * k * d));
  for (std::int64_t b = 0; b < nb; ++b)
    for (std::int64_t j = 0; j < k; ++j)
      for (std::int64_t q = 0; q < d; ++q) c[(b * k + j) * d + q] = static_cast<float>(*(x.row(b, 11 * j) + q));
  const fkt::Array init = fkt::make_array(c, nb, k, d, DType::float32);
  const fc::DeviceArray dx = fc::upload(x);
  fk::KMeansOptions o = given_options(init.view(), k, Metric::euclidean, mode, 1);
  o.final_assignment = false;  // the labels of the first assignment, against the given centroids
  const fk::KMeansResult r = fk::fit(dx.view, o), cpu = fk::fit(x.view(), o);
  for (std::int64_t b = 0; b < nb; ++b) {
    const std::vector<double> cb(c.begin() + b * k * d, c.begin() + (b + 1) * k * d);
    fkt::check_labels_near_optimal(Metric::euclidean, fkt::prepared(x, b, Metric::euclidean), n, d, cb, k,
                                   r.labels.data() + b * n, "scale", mode.u_in);
    EXPECT_LE(relative_diff(r.inertia[b], cpu.inertia[b]), 1e-4) << "batch " << b;
  }
  EXPECT_GE(fkt::agreement(r.labels.data(), cpu.labels.data(), nb * n), 0.99) << "label agreement with the CPU";
}

INSTANTIATE_TEST_SUITE_P(Modes, CudaScales, testing::Combine(testing::Values(1e-3, 1.0, 30.0, 3e3), testing::Values(kF16, kBF16)),
                         [](const auto& i) {
                           const double s = std::get<0>(i.param);
                           return std::string(s < 1 ? "small" : s == 1 ? "unit" : s < 100 ? "large" : "huge") + "_" +
                                  std::get<1>(i.param).name;
                         });

// ---------------------------------------------------------------------------------------------
// Empty clusters: every initial centroid is x[0], so in the first assignment every point ties
// between the duplicates and goes to the first.

struct DuplicateData {
  static constexpr std::int64_t n = 1200, d = 11, k = 8;
  fkt::Array x, init;
  explicit DuplicateData(DType dt) {
    std::mt19937 g(61);
    x = fkt::make_array(fkt::blobs(g, 1, n, d, k, 10.0, 1.0), 1, n, d, dt);
    std::vector<float> c;
    for (std::int64_t j = 0; j < k; ++j) c.insert(c.end(), x.values.begin(), x.values.begin() + d);  // all = x[0]
    init = fkt::make_array(c, 1, k, d, DType::float32);
  }
};

class CudaEmptyClusters : public testing::TestWithParam<Mode> {};

TEST_P(CudaEmptyClusters, RelocateLeavesNoClusterEmpty) {
  FK_REQUIRE_GPU();
  const Mode mode = GetParam();
  const DuplicateData data(mode.dtype);
  const std::int64_t n = data.n, d = data.d, k = data.k;
  const fc::DeviceArray dx = fc::upload(data.x);
  fk::KMeansOptions o = given_options(data.init.view(), k, Metric::euclidean, mode, 30);
  o.empty_clusters = fk::EmptyClusters::relocate;
  const fk::KMeansResult r = fk::fit(dx.view, o);
  EXPECT_EQ(std::set<std::int32_t>(r.labels.begin(), r.labels.end()).size(), static_cast<std::size_t>(k))
      << "an empty cluster is left";
  for (std::int64_t a = 0; a < k; ++a)
    for (std::int64_t b = a + 1; b < k; ++b)
      EXPECT_FALSE(std::equal(r.centroids.begin() + a * d, r.centroids.begin() + (a + 1) * d,
                              r.centroids.begin() + b * d))
          << "centroids " << a << " and " << b << " are equal";
  const std::vector<double> xb = fkt::prepared(data.x, 0, Metric::euclidean);
  fkt::check_labels_near_optimal(Metric::euclidean, xb, n, d, fkt::to_double(r.centroids.data(), r.centroids.size()),
                                 k, r.labels.data(), "relocate", mode.u_in);
  const fk::KMeansResult cpu = fk::fit(data.x.view(), o);
  EXPECT_LE(relative_diff(r.inertia[0], cpu.inertia[0]), 1e-4);
}

TEST_P(CudaEmptyClusters, KeepLeavesEmptyClustersInPlace) {
  FK_REQUIRE_GPU();
  const Mode mode = GetParam();
  const DuplicateData data(mode.dtype);
  const std::int64_t n = data.n, d = data.d, k = data.k;
  const fc::DeviceArray dx = fc::upload(data.x);
  fk::KMeansOptions o = given_options(data.init.view(), k, Metric::euclidean, mode, 1);
  o.final_assignment = false;  // the labels of the first assignment, the centroids after its update
  const fk::KMeansResult r = fk::fit(dx.view, o);
  EXPECT_EQ(std::set<std::int32_t>(r.labels.begin(), r.labels.end()), std::set<std::int32_t>{0});
  for (std::int64_t j = 1; j < k; ++j)
    for (std::int64_t q = 0; q < d; ++q)
      EXPECT_EQ(r.centroids[j * d + q], static_cast<float>(data.x.values[q])) << "empty cluster " << j << " moved";
  for (std::int64_t q = 0; q < d; ++q) {
    double mean = 0;
    for (std::int64_t i = 0; i < n; ++i) mean += data.x.values[i * d + q];
    mean /= static_cast<double>(n);
    EXPECT_NEAR(r.centroids[q], mean, 1e-4 * (1 + std::fabs(mean)));
  }
}

// The first update with relocate: the empty clusters take the points farthest from x[0], as on
// the CPU (the ranking of those points does not hinge on rounding for this data).
TEST_P(CudaEmptyClusters, RelocateTakesTheCpuPoints) {
  FK_REQUIRE_GPU();
  const Mode mode = GetParam();
  // tf32 distances are too coarse for the ranking; float16 / bfloat16 products of these data
  // (x and the centroid x[0] both hold 16-bit values) are exact, like float32's.
  if (mode.precision == Precision::tf32) GTEST_SKIP() << "the ranking needs float32 distances";
  const DuplicateData data(mode.dtype);
  const std::int64_t d = data.d, k = data.k;
  const fc::DeviceArray dx = fc::upload(data.x);
  fk::KMeansOptions o = given_options(data.init.view(), k, Metric::euclidean, mode, 1);
  o.empty_clusters = fk::EmptyClusters::relocate;
  o.final_assignment = false;
  const fk::KMeansResult r = fk::fit(dx.view, o), cpu = fk::fit(data.x.view(), o);
  for (std::int64_t j = 1; j < k; ++j)
    for (std::int64_t q = 0; q < d; ++q)
      EXPECT_EQ(r.centroids[j * d + q], cpu.centroids[j * d + q]) << "relocated cluster " << j;
  for (std::int64_t q = 0; q < d; ++q)
    EXPECT_NEAR(r.centroids[q], cpu.centroids[q], 1e-4 * (1 + std::fabs(cpu.centroids[q])));
}

INSTANTIATE_TEST_SUITE_P(Modes, CudaEmptyClusters, testing::ValuesIn(kModes),
                         [](const auto& i) { return std::string(i.param.name); });

// ---------------------------------------------------------------------------------------------
// tol and on_iteration: on well-separated blobs each batch stops after the CPU's iteration count,
// and the per-iteration values are the CPU's. Exact float32 starts from random rows (some blobs get
// two centroids, some none: a long trajectory through points between the split halves, which
// only float32 scores follow exactly); the other modes start from one point of every blob.

class CudaConvergence : public testing::TestWithParam<std::tuple<Metric, Mode>> {};

TEST_P(CudaConvergence, StopsAndReportsLikeCpu) {
  FK_REQUIRE_GPU();
  const auto [m, mode] = GetParam();
  const std::int64_t nb = 3, n = 3000, d = 8, k = 12;
  std::mt19937 g(91);
  const fkt::Array x = fkt::make_array(fkt::blobs(g, nb, n, d, k, 10.0, 0.5), nb, n, d, mode.dtype);
  const fc::DeviceArray dx = fc::upload(x);
  std::vector<fk::IterationInfo> gpu_calls, cpu_calls;
  fk::KMeansOptions o;
  o.n_clusters = k;
  o.max_iter = 60;
  o.tol = 1e-4;
  o.metric = m;
  o.seed = 17;
  o.precision = mode.precision;
  const fkt::Array init = fkt::first_rows(x, k);
  if (mode.u_in != 0) o.init = fk::Init::given, o.init_centroids = init.view();
  fk::KMeansOptions og = o, oc = o;
  og.on_iteration = [&](const fk::IterationInfo& i) { gpu_calls.push_back(i); };
  oc.on_iteration = [&](const fk::IterationInfo& i) { cpu_calls.push_back(i); };
  const fk::KMeansResult gpu = fk::fit(dx.view, og), cpu = fk::fit(x.view(), oc);

  EXPECT_EQ(gpu.n_iter, cpu.n_iter);
  EXPECT_EQ(gpu.converged, cpu.converged);
  for (std::int64_t b = 0; b < nb; ++b) {
    EXPECT_EQ(gpu.converged[b], 1) << "batch " << b << " did not stop on tol";
    EXPECT_LE(relative_diff(gpu.inertia[b], cpu.inertia[b]), 1e-4) << "batch " << b;
  }
  EXPECT_GE(fkt::agreement(gpu.labels.data(), cpu.labels.data(), nb * n), mode.min_agreement);
  // The same run without the callback gives the same result.
  fkt::expect_identical(fk::fit(dx.view, o), gpu, "with and without on_iteration");

  // One call per iteration run of every batch; the order of batches is not specified.
  auto by_batch = [](const fk::IterationInfo& a, const fk::IterationInfo& b) {
    return std::tie(a.batch, a.iteration) < std::tie(b.batch, b.iteration);
  };
  std::stable_sort(gpu_calls.begin(), gpu_calls.end(), by_batch);
  std::stable_sort(cpu_calls.begin(), cpu_calls.end(), by_batch);
  std::size_t expected_calls = 0;
  for (int it : gpu.n_iter) expected_calls += static_cast<std::size_t>(it);
  ASSERT_EQ(gpu_calls.size(), expected_calls);
  ASSERT_EQ(gpu_calls.size(), cpu_calls.size());
  for (std::size_t c = 0; c < gpu_calls.size(); ++c) {
    const fk::IterationInfo &a = gpu_calls[c], &w = cpu_calls[c];
    SCOPED_TRACE("batch " + std::to_string(w.batch) + " iteration " + std::to_string(w.iteration));
    ASSERT_EQ(a.batch, w.batch);
    ASSERT_EQ(a.iteration, w.iteration);
    if (mode.u_in == 0)
      EXPECT_EQ(a.changed, w.changed);
    else
      EXPECT_NEAR(a.changed, w.changed, 0.01 * n);
    EXPECT_NEAR(a.shift, w.shift, 1e-3 * (1 + w.shift));
    EXPECT_LE(std::fabs(a.inertia - w.inertia), 1e-4 * std::max(std::fabs(w.inertia), 1.0)) << a.inertia << " vs " << w.inertia;
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, CudaConvergence,
                         testing::Combine(testing::ValuesIn(kMetrics), testing::ValuesIn(kModes)), metric_mode_name);

// tol = 0 runs every iteration even after the centroids stopped moving.
TEST(CudaConvergenceTol, TolZeroRunsAllIterations) {
  FK_REQUIRE_GPU();
  const std::int64_t n = 600, d = 6, k = 4;
  std::mt19937 g(11);
  const fkt::Array x = fkt::make_array(fkt::blobs(g, 2, n, d, k, 10.0, 0.5), 2, n, d, DType::float32);
  const fc::DeviceArray dx = fc::upload(x);
  fk::KMeansOptions o;
  o.n_clusters = k;
  o.max_iter = 25;
  int calls = 0;
  o.on_iteration = [&](const fk::IterationInfo&) { ++calls; };
  const fk::KMeansResult r = fk::fit(dx.view, o);
  EXPECT_EQ(r.n_iter, (std::vector<int>{25, 25}));
  EXPECT_EQ(r.converged, (std::vector<std::uint8_t>{0, 0}));
  EXPECT_EQ(calls, 50);
}

// ---------------------------------------------------------------------------------------------
// Bad input: flashkmeans::Error of the right kind with a message naming the problem, and the
// library still works afterwards.

using fkt::expect_error;

struct CudaErrors : testing::Test {
  static constexpr std::int64_t nb = 2, n = 500, d = 7, k = 5;
  fkt::Array x = [] {
    std::mt19937 g(81);
    return fkt::make_array(fkt::gaussian(g, nb * n * d), nb, n, d, DType::float32);
  }();
  fkt::Array init = fkt::first_rows(x, k);
  fc::DeviceArray dx, dinit;
  fk::KMeansOptions opt;
  void SetUp() override {
    FK_REQUIRE_GPU();
    dx = fc::upload(x);
    dinit = fc::upload(init);
    opt.n_clusters = k;
    opt.max_iter = 3;
  }
  /// A fit and a predict on good data still work (no error left behind on the device).
  void expect_still_works() {
    fk::KMeansOptions o;
    o.n_clusters = k;
    o.max_iter = 3;
    EXPECT_NO_THROW(fk::fit(dx.view, o));
    fc::Outputs out(nb, n, k, d);
    EXPECT_NO_THROW(fk::predict_into(dx.view, dinit.view, fk::PredictOptions{}, out.buffers()));
    EXPECT_EQ(fc::count_poisoned(out.labels.download()), 0u);
  }
};

TEST_F(CudaErrors, ValidInputIsAccepted) {
  EXPECT_NO_THROW(fk::fit(dx.view, opt));
  opt.init = fk::Init::given;
  opt.init_centroids = dinit.view;
  EXPECT_NO_THROW(fk::fit(dx.view, opt));
  EXPECT_NO_THROW(fk::predict(dx.view, dinit.view));
}

TEST_F(CudaErrors, NanOrInfinityInDeviceData) {
  for (DType dt : {DType::float32, DType::float16, DType::bfloat16})
    for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
      SCOPED_TRACE(std::string(fk::to_string(dt)) + (std::isnan(bad) ? " NaN" : " inf"));
      std::vector<float> v(x.f32);
      v[static_cast<std::size_t>((1 * n + 123) * d + 4)] = bad;  // batch 1, row 123
      const fkt::Array xb = fkt::make_array(v, nb, n, d, dt);
      const fc::DeviceArray dxb = fc::upload(xb);
      expect_error([&] { fk::fit(dxb.view, opt); }, ErrorKind::invalid_argument, {"x", "NaN"});
      fc::Outputs out(nb, n, k, d);
      expect_error([&] { fk::fit_into(dxb.view, opt, out.buffers()); }, ErrorKind::invalid_argument, {"x", "NaN"});
      expect_error([&] { fk::predict(dxb.view, dinit.view); }, ErrorKind::invalid_argument, {"x", "NaN"});
      // Non-finite given centroids on the device.
      fk::KMeansOptions o = opt;
      o.init = fk::Init::given;
      o.init_centroids = dxb.view;
      o.init_centroids.rows = n;  // (nb, n, d) with K = n: the bad row is a centroid
      o.n_clusters = n;
      expect_error([&] { fk::fit(dx.view, o); }, ErrorKind::invalid_argument, {"init_centroids", "NaN"});
      expect_error([&] { fk::predict(dx.view, dxb.view); }, ErrorKind::invalid_argument, {"centroids", "NaN"});
    }
  expect_still_works();
}

// Under cosine a zero row of device data has no direction: rejected with the host check's
// message, in x (fit and predict), in given initial centroids and in predict's centroids.
TEST_F(CudaErrors, ZeroRowsUnderCosineInDeviceData) {
  for (DType dt : {DType::float32, DType::float16, DType::bfloat16}) {
    SCOPED_TRACE(fk::to_string(dt));
    std::vector<float> v(x.f32);
    std::fill_n(v.begin() + (1 * n + 6) * d, d, 0.f);  // batch 1, row 6
    v[static_cast<std::size_t>((1 * n + 9) * d + 2)] = 1e-13f;  // row 9: tiny but not all zero
    const fkt::Array xb = fkt::make_array(v, nb, n, d, dt);
    const fc::DeviceArray dxb = fc::upload(xb);
    fk::KMeansOptions o = opt;
    o.metric = fk::Metric::cosine;
    expect_error([&] { fk::fit(dxb.view, o); }, ErrorKind::invalid_argument, {"x has a zero row", "batch 1, row 6"});
    fc::Outputs out(nb, n, k, d);
    expect_error([&] { fk::fit_into(dxb.view, o, out.buffers()); }, ErrorKind::invalid_argument, {"x has a zero row"});
    EXPECT_EQ(fc::count_poisoned(out.labels.download()), static_cast<std::size_t>(nb * n));
    EXPECT_EQ(fc::count_poisoned(out.centroids.download()), static_cast<std::size_t>(nb * k * d));
    const fk::Metric p = fk::Metric::cosine;
    expect_error([&] { fk::predict(dxb.view, dinit.view, p); }, ErrorKind::invalid_argument, {"x has a zero row"});
    fk::TensorView c = dxb.view;
    c.rows = n;  // K = n: the zero row is a centroid
    o.init = fk::Init::given;
    o.init_centroids = c;
    o.n_clusters = n;
    expect_error([&] { fk::fit(dx.view, o); }, ErrorKind::invalid_argument,
                 {"init_centroids has a zero row", "batch 1, row 6"});
    expect_error([&] { fk::predict(dx.view, c, p); }, ErrorKind::invalid_argument, {"centroids has a zero row"});
    // Euclidean and dot accept zero rows.
    o = opt;
    for (fk::Metric m : {fk::Metric::euclidean, fk::Metric::dot}) {
      o.metric = m;
      EXPECT_NO_THROW(fk::fit(dxb.view, o));
    }
  }
  expect_still_works();
}

TEST_F(CudaErrors, DeviceIdOutOfRange) {
  const int count = fc::device_count();
  fk::TensorView v = dx.view;
  v.device.id = count;
  expect_error([&] { fk::fit(v, opt); }, ErrorKind::invalid_argument, {"x", "CUDA device"});
  v.device.id = -1;
  expect_error([&] { fk::fit(v, opt); }, ErrorKind::invalid_argument, {"x", "CUDA device"});
  fk::TensorView c = dinit.view;
  c.device.id = count;
  expect_error([&] { fk::predict(dx.view, c); }, ErrorKind::invalid_argument, {"centroids", "CUDA device"});
  expect_still_works();
}

TEST_F(CudaErrors, CentroidsOnAnotherDevice) {
  if (fc::device_count() < 2) GTEST_SKIP() << "needs two CUDA devices";
  fc::check(cudaSetDevice(1), "cudaSetDevice");
  const fc::DeviceArray other = fc::upload(init, fc::contiguous(init), 1);
  fc::check(cudaSetDevice(0), "cudaSetDevice");
  opt.init = fk::Init::given;
  opt.init_centroids = other.view;
  expect_error([&] { fk::fit(dx.view, opt); }, ErrorKind::invalid_argument, {"init_centroids", "device"});
  expect_error([&] { fk::predict(dx.view, other.view); }, ErrorKind::invalid_argument, {"centroids", "device"});
}

TEST_F(CudaErrors, MoreClustersThanPoints) {
  opt.n_clusters = n + 1;
  expect_error([&] { fk::fit(dx.view, opt); }, ErrorKind::invalid_argument, {"n_clusters = 501", "N = 500"});
  opt.n_clusters = n;  // K = N is fine
  EXPECT_NO_THROW(fk::fit(dx.view, opt));
}

// The kernels' grids hold up to 65535 batches: one more is a clear error, not a failed launch.
TEST_F(CudaErrors, MoreBatchesThanOneCallTakes) {
  for (const std::int64_t batches : {65535, 65536}) {
    std::vector<float> v(static_cast<std::size_t>(batches * 2));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 7);
    const fkt::Array xb = fkt::make_array(v, batches, 2, 1, DType::float32);
    const fc::DeviceArray dxb = fc::upload(xb);
    fk::KMeansOptions o;
    o.n_clusters = 1;
    o.max_iter = 2;
    if (batches == 65535) {
      EXPECT_NO_THROW(fk::fit(dxb.view, o));
      continue;
    }
    expect_error([&] { fk::fit(dxb.view, o); }, ErrorKind::invalid_argument, {"B = 65536 batches", "65535"});
    fk::TensorView c = dxb.view;
    c.rows = 1;
    expect_error([&] { fk::predict(dxb.view, c); }, ErrorKind::invalid_argument, {"B = 65536 batches"});
  }
  expect_still_works();
}

TEST_F(CudaErrors, GivenCentroidsOfTheWrongShape) {
  opt.init = fk::Init::given;
  for (const bool on_device : {false, true}) {
    fk::TensorView c = on_device ? dinit.view : init.view();
    c.rows = k - 1;  // (nb, k - 1, d)
    opt.init_centroids = c;
    expect_error([&] { fk::fit(dx.view, opt); }, ErrorKind::invalid_argument, {"init_centroids has shape", "expected"});
    c = on_device ? dinit.view : init.view();
    c.cols = d - 1;
    c.row_stride = d;  // still inside the buffer
    opt.init_centroids = c;
    expect_error([&] { fk::fit(dx.view, opt); }, ErrorKind::invalid_argument, {"init_centroids has shape"});
    c = on_device ? dinit.view : init.view();
    c.batch = 1;
    opt.init_centroids = c;
    expect_error([&] { fk::fit(dx.view, opt); }, ErrorKind::invalid_argument, {"init_centroids has shape"});
  }
  fk::TensorView c = dinit.view;
  c.cols = d - 1;
  c.row_stride = d;
  expect_error([&] { fk::predict(dx.view, c); }, ErrorKind::invalid_argument, {"centroids have D = 6", "D = 7"});
  expect_still_works();
}

TEST_F(CudaErrors, NullOutputPointers) {
  fc::Outputs out(nb, n, k, d);
  fk::OutputBuffers b = out.buffers();
  b.labels = nullptr;
  expect_error([&] { fk::fit_into(dx.view, opt, b); }, ErrorKind::invalid_argument, {"labels", "null"});
  b = out.buffers();
  b.centroids = nullptr;
  expect_error([&] { fk::fit_into(dx.view, opt, b); }, ErrorKind::invalid_argument, {"centroids", "null"});
  b = out.buffers();
  b.labels = nullptr;
  expect_error([&] { fk::predict_into(dx.view, dinit.view, fk::PredictOptions{}, b); }, ErrorKind::invalid_argument,
               {"labels", "null"});
  fk::TensorView v = dx.view;
  v.data = nullptr;
  expect_error([&] { fk::fit(v, opt); }, ErrorKind::invalid_argument, {"x", "null"});
  // Nothing was written.
  EXPECT_EQ(fc::count_poisoned(out.labels.download()), static_cast<std::size_t>(nb * n));
  EXPECT_EQ(fc::count_poisoned(out.centroids.download()), static_cast<std::size_t>(nb * k * d));
  expect_still_works();
}

// A problem far larger than the device: a clear out_of_memory error, not a crash. The view reads
// one row over and over (strides 0), so the input itself is tiny; the outputs and work buffers
// (B * N labels alone are 1 TiB) cannot be allocated.
TEST_F(CudaErrors, ProblemLargerThanTheDevice) {
  fk::TensorView v = dx.view;
  v.batch = 256, v.rows = std::int64_t{1} << 30, v.cols = 1;
  v.batch_stride = 0, v.row_stride = 0, v.col_stride = 1;
  fk::KMeansOptions o;
  o.n_clusters = 1;
  o.max_iter = 1;
  expect_error([&] { fk::fit(v, o); }, ErrorKind::out_of_memory, {});
  expect_still_works();
}

// Running out of device memory part-way through a fit's allocations leaves the caller's buffers
// untouched. Most of the free memory is taken by the test, leaving a margin that ranges from
// nothing to more than the fit needs, so that the failure falls before, between and after the
// fit's allocations; every failing fit must have written nothing.
TEST_F(CudaErrors, OutOfMemoryLeavesOutputsUntouched) {
  fk::TensorView v = dx.view;  // 2^26 reads of one row (strides 0): tiny input, ~2.5 GiB of work buffers
  v.batch = 1, v.rows = std::int64_t{1} << 26, v.cols = 1;
  v.batch_stride = 0, v.row_stride = 0, v.col_stride = 1;
  fk::KMeansOptions o;
  o.n_clusters = 4;
  o.max_iter = 2;
  o.tol = 0;
  int failures = 0, successes = 0;
  for (std::size_t margin_mib = 0; margin_mib <= 4096 && successes == 0; margin_mib += 128) {
    SCOPED_TRACE("margin " + std::to_string(margin_mib) + " MiB");
    fc::Outputs out(1, v.rows, o.n_clusters, 1);
    fc::check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    std::size_t free_bytes = 0, total = 0;
    fc::check(cudaMemGetInfo(&free_bytes, &total), "cudaMemGetInfo");
    const std::size_t margin = margin_mib << 20;
    void* hog = nullptr;
    if (free_bytes <= margin || cudaMalloc(&hog, free_bytes - margin) != cudaSuccess) {
      (void)cudaGetLastError();
      continue;
    }
    bool threw = false;
    try {
      fk::fit_into(v, o, out.buffers());
    } catch (const fk::Error& e) {
      threw = true;
      EXPECT_EQ(e.kind(), ErrorKind::out_of_memory) << e.what();
    }
    fc::check(cudaFree(hog), "cudaFree");
    if (threw) {
      ++failures;
      EXPECT_EQ(fc::count_poisoned(out.labels.download()), static_cast<std::size_t>(v.rows));
      EXPECT_EQ(fc::count_poisoned(out.centroids.download()), static_cast<std::size_t>(o.n_clusters));
    } else {
      ++successes;
      EXPECT_EQ(fc::count_poisoned(out.labels.download()), 0u);
    }
  }
  EXPECT_GT(failures, 0);
  EXPECT_GT(successes, 0);
  expect_still_works();
}

}  // namespace
