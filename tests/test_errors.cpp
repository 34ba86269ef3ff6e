// Every bad input throws flashkmeans::Error with the right kind and a message naming the problem.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <initializer_list>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "checks.hpp"
#include "reference.hpp"

namespace fk = flashkmeans;
using fk::DType;
using fk::ErrorKind;
using fk::Metric;
using fk::TensorView;

namespace {

using fkt::expect_error;

constexpr std::int64_t N = 20, D = 3, K = 4;

struct Fixture : testing::Test {
  std::vector<float> x = [] {
    std::mt19937 g(81);
    return fkt::gaussian(g, 3 * N * D);
  }();
  std::vector<float> c = std::vector<float>(x.begin(), x.begin() + 3 * K * D);
  TensorView xv = TensorView::matrix(x.data(), N, D);
  fk::KMeansOptions opt = [] {
    fk::KMeansOptions o;
    o.n_clusters = K;
    o.max_iter = 3;
    return o;
  }();
  void fit() { fk::fit(xv, opt); }
};

using FitErrors = Fixture;
using PredictErrors = Fixture;

TEST_F(FitErrors, ValidInputIsAccepted) {  // the baseline every other test here changes one thing of
  EXPECT_NO_THROW(fit());
  opt.init = fk::Init::given;
  opt.init_centroids = TensorView::matrix(c.data(), K, D);
  EXPECT_NO_THROW(fit());
  EXPECT_NO_THROW(fk::predict(xv, TensorView::matrix(c.data(), K, D)));
}

TEST_F(FitErrors, EmptyInput) {
  for (auto [b, n, d] : {std::tuple{0, 5, 3}, std::tuple{1, 0, 3}, std::tuple{1, 5, 0}}) {
    xv = TensorView::batched(x.data(), b, n, d);
    opt.n_clusters = 1;
    expect_error([&] { fit(); }, ErrorKind::invalid_argument, {"x", "empty"});
  }
  xv = TensorView{};
  expect_error([&] { fit(); }, ErrorKind::invalid_argument, {"x", "empty"});
}

TEST_F(FitErrors, NegativeDimension) {
  xv.rows = -5;
  expect_error([&] { fit(); }, ErrorKind::invalid_argument, {"x", "negative dimension"});
}

TEST_F(FitErrors, NullData) {
  xv.data = nullptr;
  expect_error([&] { fit(); }, ErrorKind::invalid_argument, {"x", "null"});
}

TEST_F(FitErrors, NegativeStrides) {
  for (int which = 0; which < 3; ++which) {
    TensorView v = TensorView::batched(x.data(), 1, N, D);
    (which == 0 ? v.batch_stride : which == 1 ? v.row_stride : v.col_stride) = -1;
    xv = v;
    expect_error([&] { fit(); }, ErrorKind::invalid_argument, {"x", "negative stride"});
  }
}

TEST_F(FitErrors, UnknownDtype) {
  xv.dtype = static_cast<DType>(17);
  expect_error([&] { fit(); }, ErrorKind::invalid_type, {"x", "dtype"});
}

TEST_F(FitErrors, UnknownDeviceType) {
  xv.device.type = static_cast<fk::DeviceType>(7);
  expect_error([&] { fit(); }, ErrorKind::invalid_argument, {"x has an unknown device type: expected cpu or cuda"});
  TensorView cv = TensorView::matrix(c.data(), K, D);
  cv.device.type = static_cast<fk::DeviceType>(7);
  expect_error([&] { fk::predict(TensorView::matrix(x.data(), N, D), cv); }, ErrorKind::invalid_argument,
               {"centroids has an unknown device type"});
}

TEST_F(FitErrors, ClusterCount) {
  opt.n_clusters = 0;
  expect_error([&] { fit(); }, ErrorKind::invalid_argument, {"n_clusters = 0", ">= 1"});
  opt.n_clusters = -3;
  expect_error([&] { fit(); }, ErrorKind::invalid_argument, {"n_clusters = -3", ">= 1"});
  opt.n_clusters = N + 1;
  expect_error([&] { fit(); }, ErrorKind::invalid_argument, {"n_clusters = 21", "N = 20"});
  opt.n_clusters = N;  // K = N is fine
  EXPECT_NO_THROW(fit());
}

TEST_F(FitErrors, MaxIter) {
  opt.max_iter = 0;
  expect_error([&] { fit(); }, ErrorKind::invalid_argument, {"max_iter = 0", ">= 1"});
  opt.max_iter = -2;
  expect_error([&] { fit(); }, ErrorKind::invalid_argument, {"max_iter = -2"});
}

TEST_F(FitErrors, NanTol) {
  opt.tol = std::numeric_limits<double>::quiet_NaN();
  expect_error([&] { fit(); }, ErrorKind::invalid_argument, {"tol", "NaN"});
}

TEST_F(FitErrors, NegativeThreads) {
  opt.n_threads = -1;
  expect_error([&] { fit(); }, ErrorKind::invalid_argument, {"n_threads = -1"});
}

TEST_F(FitErrors, UnknownEnums) {
  opt.metric = static_cast<Metric>(9);
  expect_error([&] { fit(); }, ErrorKind::invalid_argument, {"metric"});
  opt.metric = Metric::euclidean;
  opt.init = static_cast<fk::Init>(9);
  expect_error([&] { fit(); }, ErrorKind::invalid_argument, {"init"});
  opt.init = fk::Init::random;
  opt.algorithm = static_cast<fk::Algorithm>(9);
  expect_error([&] { fit(); }, ErrorKind::invalid_argument, {"algorithm"});
}

TEST_F(FitErrors, ElkanWithDot) {
  opt.metric = Metric::dot;
  opt.algorithm = fk::Algorithm::elkan;
  expect_error([&] { fit(); }, ErrorKind::invalid_argument, {"elkan", "dot"});
}

// NaN, +Inf and -Inf anywhere in x, in every dtype; the message names the first bad row.
TEST_F(FitErrors, NonFiniteX) {
  const std::int64_t nb = 2;
  const float bad_values[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                              -std::numeric_limits<float>::infinity()};
  for (DType dt : {DType::float32, DType::float16, DType::bfloat16})
    for (float bad : bad_values) {
      SCOPED_TRACE(std::string(fk::to_string(dt)) + " " + std::to_string(bad));
      fkt::Array a = fkt::make_array(x, nb, N, D, dt);
      // Batch 1, row 7, column 2 (and a later row too: the first one must be reported).
      for (std::int64_t row : {7, 15}) {
        const std::size_t at = static_cast<std::size_t>((1 * N + row) * D + 2);
        if (dt == DType::float32)
          a.f32[at] = bad;
        else
          a.bits[at] = dt == DType::float16 ? fkt::float_to_half(bad) : fkt::float_to_bfloat16(bad);
      }
      expect_error([&] { fk::fit(a.view(), opt); }, ErrorKind::invalid_argument,
                   {"x", "NaN or infinity", "batch 1", "row 7"});
      expect_error([&] { fk::predict(a.view(), TensorView::matrix(c.data(), K, D)); }, ErrorKind::invalid_argument,
                   {"x", "NaN or infinity", "batch 1", "row 7"});
    }
}

// Every 16-bit pattern with an all-ones exponent is rejected, none other.
TEST_F(FitErrors, NonFinite16BitPatterns) {
  for (DType dt : {DType::float16, DType::bfloat16}) {
    const std::uint16_t exp_mask = dt == DType::float16 ? 0x7c00 : 0x7f80;
    std::vector<std::uint16_t> bits(static_cast<std::size_t>(N * D));
    for (std::size_t e = 0; e < bits.size(); ++e)
      bits[e] = dt == DType::float16 ? fkt::float_to_half(x[e]) : fkt::float_to_bfloat16(x[e]);
    for (std::uint16_t sign : {0x0000, 0x8000})
      for (std::uint16_t man : {0x0001, 0x0040, 0x0003}) {
        bits[5] = static_cast<std::uint16_t>(sign | exp_mask | man);  // NaNs
        expect_error([&] { fk::fit(TensorView::batched(bits.data(), dt, 1, N, D), opt); },
                     ErrorKind::invalid_argument, {"NaN or infinity"});
      }
    bits[5] = static_cast<std::uint16_t>(exp_mask - (dt == DType::float16 ? 0x0400 : 0x0080) + 0x3);  // large finite
    EXPECT_NO_THROW(fk::fit(TensorView::batched(bits.data(), dt, 1, N, D), opt)) << fk::to_string(dt);
  }
}

TEST_F(FitErrors, NonFiniteGivenCentroids) {
  opt.init = fk::Init::given;
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    c[2 * D + 1] = bad;
    opt.init_centroids = TensorView::matrix(c.data(), K, D);
    expect_error([&] { fit(); }, ErrorKind::invalid_argument, {"init_centroids", "NaN or infinity", "row 2"});
  }
}

TEST_F(FitErrors, GivenCentroidsOfWrongShape) {
  opt.init = fk::Init::given;
  opt.init_centroids = TensorView::matrix(c.data(), K + 1, D);  // wrong K
  expect_error([&] { fit(); }, ErrorKind::invalid_argument, {"init_centroids", "shape (1, 5, 3)", "expected (1, 4, 3)"});
  opt.init_centroids = TensorView::matrix(c.data(), K, D - 1);  // wrong D
  expect_error([&] { fit(); }, ErrorKind::invalid_argument, {"init_centroids", "shape (1, 4, 2)", "expected (1, 4, 3)"});
  xv = TensorView::batched(x.data(), 3, N, D);  // wrong B: (K, D) for three batches
  opt.init_centroids = TensorView::matrix(c.data(), K, D);
  expect_error([&] { fit(); }, ErrorKind::invalid_argument, {"init_centroids", "shape (1, 4, 3)", "expected (3, 4, 3)"});
  opt.init_centroids = TensorView::batched(c.data(), 3, K, D);
  EXPECT_NO_THROW(fit());
  opt.init_centroids.data = nullptr;
  expect_error([&] { fit(); }, ErrorKind::invalid_argument, {"init_centroids", "null"});
}

TEST_F(FitErrors, CentroidsWithoutGivenInit) {
  opt.init_centroids = TensorView::matrix(c.data(), K, D);
  for (fk::Init init : {fk::Init::random, fk::Init::kmeans_plus_plus}) {
    opt.init = init;
    expect_error([&] { fit(); }, ErrorKind::invalid_argument, {"init_centroids", "not 'given'"});
  }
}

TEST_F(FitErrors, GivenInitWithoutCentroids) {
  opt.init = fk::Init::given;
  expect_error([&] { fit(); }, ErrorKind::invalid_argument, {"init is given", "init_centroids is empty", "(1, 4, 3)"});
}

TEST_F(FitErrors, CudaInputInCpuOnlyBuild) {
#if FK_TEST_CUDA_BUILD
  GTEST_SKIP() << "this build has a CUDA backend";
#endif
  xv.device = fk::Device{fk::DeviceType::cuda, 0};
  expect_error([&] { fit(); }, ErrorKind::unsupported, {"x", "CUDA", "FLASHKMEANS_CUDA"});
  xv.device = fk::Device{};
  opt.init = fk::Init::given;
  opt.init_centroids = TensorView::matrix(c.data(), K, D);
  opt.init_centroids.device = fk::Device{fk::DeviceType::cuda, 1};
  expect_error([&] { fit(); }, ErrorKind::unsupported, {"init_centroids", "CUDA"});
  TensorView cv = TensorView::matrix(c.data(), K, D);
  cv.device.type = fk::DeviceType::cuda;
  expect_error([&] { fk::predict(xv, cv); }, ErrorKind::unsupported, {"centroids", "CUDA"});
}

TEST_F(PredictErrors, MismatchedDimensions) {
  expect_error([&] { fk::predict(xv, TensorView::matrix(c.data(), K, D + 1)); }, ErrorKind::invalid_argument,
               {"centroids have D = 4", "x has D = 3"});
  const TensorView x3 = TensorView::batched(x.data(), 3, N, D);
  expect_error([&] { fk::predict(x3, TensorView::batched(c.data(), 2, K, D)); }, ErrorKind::invalid_argument,
               {"centroids have 2 batches", "x has 3"});
  EXPECT_NO_THROW(fk::predict(x3, TensorView::batched(c.data(), 3, K, D)));
  EXPECT_NO_THROW(fk::predict(x3, TensorView::batched(c.data(), 1, K, D)));
}

TEST_F(PredictErrors, BadViewsAndThreads) {
  const TensorView cv = TensorView::matrix(c.data(), K, D);
  expect_error([&] { fk::predict(xv, cv, Metric::euclidean, -2); }, ErrorKind::invalid_argument, {"n_threads = -2"});
  expect_error([&] { fk::predict(xv, TensorView::matrix(c.data(), 0, D)); }, ErrorKind::invalid_argument,
               {"centroids", "empty"});
  TensorView nul = cv;
  nul.data = nullptr;
  expect_error([&] { fk::predict(xv, nul); }, ErrorKind::invalid_argument, {"centroids", "null"});
  TensorView neg = xv;
  neg.row_stride = -3;
  expect_error([&] { fk::predict(neg, cv); }, ErrorKind::invalid_argument, {"x", "negative stride"});
  std::vector<float> cbad = c;
  cbad[1] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { fk::predict(xv, TensorView::matrix(cbad.data(), K, D)); }, ErrorKind::invalid_argument,
               {"centroids", "NaN or infinity", "row 0"});
}

// fit rejects a metric outside the enum (UnknownEnums above); predict must too.
TEST_F(PredictErrors, UnknownMetric) {
  expect_error([&] { fk::predict(xv, TensorView::matrix(c.data(), K, D), static_cast<Metric>(9)); },
               ErrorKind::invalid_argument, {"metric"});
}

// Under cosine a row of norm zero has no direction: rejected in x, in given centroids and in the
// centroids of predict, in every dtype; euclidean and dot accept it.
TEST_F(FitErrors, ZeroRowsUnderCosine) {
  for (DType dt : {DType::float32, DType::float16, DType::bfloat16}) {
    SCOPED_TRACE(fk::to_string(dt));
    std::vector<float> xz = x;
    for (std::int64_t q = 0; q < D; ++q) xz[static_cast<std::size_t>((1 * N + 6) * D + q)] = 0.f;
    xz[static_cast<std::size_t>((1 * N + 9) * D)] = 0.f;  // one zero coordinate is fine
    const fkt::Array a = fkt::make_array(xz, 2, N, D, dt);
    opt.metric = Metric::cosine;
    expect_error([&] { fk::fit(a.view(), opt); }, ErrorKind::invalid_argument,
                 {"x has a zero row (norm below 1e-12; first in batch 1, row 6)", "cosine"});
    const fkt::Array cs = fkt::make_array(c, 2, K, D, dt);
    expect_error([&] { fk::predict(a.view(), cs.view(), Metric::cosine); }, ErrorKind::invalid_argument,
                 {"x has a zero row", "batch 1, row 6"});
    for (Metric m : {Metric::euclidean, Metric::dot}) {
      opt.metric = m;
      EXPECT_NO_THROW(fk::fit(a.view(), opt)) << fk::to_string(m);
      EXPECT_NO_THROW(fk::predict(a.view(), cs.view(), m)) << fk::to_string(m);
    }
  }
  std::vector<float> cz = c;
  for (std::int64_t q = 0; q < D; ++q) cz[static_cast<std::size_t>(3 * D + q)] = 0.f;
  opt.metric = Metric::cosine;
  opt.init = fk::Init::given;
  opt.init_centroids = TensorView::matrix(cz.data(), K, D);
  expect_error([&] { fit(); }, ErrorKind::invalid_argument, {"init_centroids has a zero row", "row 3", "cosine"});
  expect_error([&] { fk::predict(xv, TensorView::matrix(cz.data(), K, D), Metric::cosine); },
               ErrorKind::invalid_argument, {"centroids has a zero row", "batch 0, row 3"});
  for (std::int64_t q = 0; q < D; ++q) cz[static_cast<std::size_t>(3 * D + q)] = 1e-14f;  // norm 1.7e-14
  expect_error([&] { fk::predict(xv, TensorView::matrix(cz.data(), K, D), Metric::cosine); },
               ErrorKind::invalid_argument, {"centroids has a zero row", "row 3"});
}

// Sizes whose products do not fit the library's indices: more than 2^31 - 1 rows (labels are
// int32), more elements than 64-bit offsets can address, strides that reach past that range.
// Validation rejects them before any element is read.
TEST_F(FitErrors, SizesThatOverflow) {
  TensorView big = xv;
  big.rows = std::int64_t{1} << 31;
  big.row_stride = D;
  opt.n_clusters = 2;
  expect_error([&] { fk::fit(big, opt); }, ErrorKind::invalid_argument,
               {"x has 2147483648 rows; at most 2^31 - 1 rows per batch are supported"});
  expect_error([&] { fk::predict(big, TensorView::matrix(c.data(), K, D)); }, ErrorKind::invalid_argument,
               {"x has 2147483648 rows"});
  TensorView many = TensorView::batched(x.data(), std::int64_t{1} << 40, std::int64_t{1} << 20, std::int64_t{1} << 10);
  expect_error([&] { fk::fit(many, opt); }, ErrorKind::invalid_argument, {"x has too many elements to index"});
  TensorView far = xv;
  far.row_stride = std::int64_t{1} << 62;
  expect_error([&] { fk::fit(far, opt); }, ErrorKind::invalid_argument,
               {"x has strides (60, 4611686018427387904, 1) that place its last element beyond 4e18 elements"});
  TensorView cfar = TensorView::matrix(c.data(), K, D);
  cfar.col_stride = std::int64_t{1} << 61;
  expect_error([&] { fk::predict(xv, cfar); }, ErrorKind::invalid_argument, {"centroids has strides", "beyond 4e18"});
}

TEST_F(FitErrors, NullOutputBuffers) {
  std::vector<std::int32_t> labels(N);
  std::vector<float> cent(K * D);
  expect_error([&] { fk::fit_into(xv, opt, {nullptr, cent.data(), nullptr}); }, ErrorKind::invalid_argument,
               {"fit_into needs labels and centroids buffers: got a null pointer"});
  expect_error([&] { fk::fit_into(xv, opt, {labels.data(), nullptr, nullptr}); }, ErrorKind::invalid_argument,
               {"fit_into needs labels and centroids buffers: got a null pointer"});
  expect_error([&] { fk::predict_into(xv, TensorView::matrix(c.data(), K, D), {}, {nullptr, nullptr, nullptr}); },
               ErrorKind::invalid_argument, {"predict_into needs a labels buffer: got a null pointer"});
}

// Output buffers of B batches filled with values no fit produces, and the check that they kept them.
struct PoisonedOutputs {
  static constexpr std::int32_t kLabel = 0x5a5a5a5a;
  static constexpr float kValue = -7.25e33f;
  std::vector<std::int32_t> labels;
  std::vector<float> cent, dist;

  explicit PoisonedOutputs(std::int64_t nb)
      : labels(static_cast<std::size_t>(nb * N)), cent(static_cast<std::size_t>(nb * K * D)),
        dist(static_cast<std::size_t>(nb * N)) {
    poison();
  }
  fk::OutputBuffers buffers() { return {labels.data(), cent.data(), dist.data()}; }
  void poison() {
    std::fill(labels.begin(), labels.end(), kLabel);
    std::fill(cent.begin(), cent.end(), kValue);
    std::fill(dist.begin(), dist.end(), kValue);
  }
  void expect_untouched(const char* what) const {
    EXPECT_TRUE(std::all_of(labels.begin(), labels.end(), [](std::int32_t l) { return l == kLabel; })) << what;
    EXPECT_TRUE(std::all_of(cent.begin(), cent.end(), [](float v) { return v == kValue; })) << what;
    EXPECT_TRUE(std::all_of(dist.begin(), dist.end(), [](float v) { return v == kValue; })) << what;
  }
};

// On any validation error fit_into and predict_into write nothing: poisoned outputs stay poisoned.
TEST_F(FitErrors, NothingWrittenOnError) {
  const std::int64_t nb = 2;
  std::vector<float> x2(x.begin(), x.begin() + nb * N * D), c2(x.begin(), x.begin() + nb * K * D);
  std::vector<float> xbad = x2, xzero = x2;
  xbad[static_cast<std::size_t>((1 * N + 17) * D + 1)] = std::numeric_limits<float>::quiet_NaN();  // last batch
  for (std::int64_t q = 0; q < D; ++q) xzero[static_cast<std::size_t>((1 * N + 19) * D + q)] = 0.f;
  const TensorView good = TensorView::batched(x2.data(), nb, N, D);
  const TensorView cgood = TensorView::batched(c2.data(), nb, K, D);

  PoisonedOutputs outputs(nb);
  const fk::OutputBuffers out = outputs.buffers();

  struct FitCase {
    const char* name;
    std::function<void(TensorView&, fk::KMeansOptions&)> change;
  };
  const FitCase fit_cases[] = {
      {"NaN in the last batch", [&](TensorView& v, fk::KMeansOptions&) { v.data = xbad.data(); }},
      {"zero row under cosine", [&](TensorView& v, fk::KMeansOptions& o) { v.data = xzero.data(), o.metric = Metric::cosine; }},
      {"K > N", [](TensorView&, fk::KMeansOptions& o) { o.n_clusters = N + 1; }},
      {"max_iter = 0", [](TensorView&, fk::KMeansOptions& o) { o.max_iter = 0; }},
      {"given centroids of wrong shape", [&](TensorView&, fk::KMeansOptions& o) {
         o.init = fk::Init::given, o.init_centroids = TensorView::batched(c2.data(), 1, K, D); }},
      {"NaN in given centroids", [&](TensorView&, fk::KMeansOptions& o) {
         c2[5] = std::numeric_limits<float>::infinity();
         o.init = fk::Init::given, o.init_centroids = TensorView::batched(c2.data(), nb, K, D); }},
      {"negative stride", [](TensorView& v, fk::KMeansOptions&) { v.col_stride = -1; }},
  };
  for (const FitCase& fc : fit_cases) {
    std::vector<float> c_saved = c2;
    TensorView v = good;
    fk::KMeansOptions o = opt;
    fc.change(v, o);
    outputs.poison();
    EXPECT_THROW(fk::fit_into(v, o, out), fk::Error) << fc.name;
    outputs.expect_untouched(fc.name);
    c2 = c_saved;
  }
  const std::pair<const char*, std::function<void()>> predict_cases[] = {
      {"NaN in x", [&] { fk::predict_into(TensorView::batched(xbad.data(), nb, N, D), cgood, {}, out); }},
      {"NaN in centroids", [&] {
         std::vector<float> cb = c2;
         cb.back() = std::numeric_limits<float>::quiet_NaN();
         fk::predict_into(good, TensorView::batched(cb.data(), nb, K, D), {}, out); }},
      {"zero row under cosine", [&] {
         fk::PredictOptions po;
         po.metric = Metric::cosine;
         fk::predict_into(TensorView::batched(xzero.data(), nb, N, D), cgood, po, out); }},
      {"D mismatch", [&] { fk::predict_into(good, TensorView::batched(c2.data(), nb, K - 1, D + 1), {}, out); }},
      {"batch mismatch", [&] { fk::predict_into(good, TensorView::batched(c2.data(), 3, 1, D), {}, out); }},
      {"negative threads", [&] {
         fk::PredictOptions po;
         po.n_threads = -1;
         fk::predict_into(good, cgood, po, out); }},
  };
  for (const auto& [name, call] : predict_cases) {
    outputs.poison();
    EXPECT_THROW(call(), fk::Error) << name;
    outputs.expect_untouched(name);
  }
  // The same buffers are filled by a good call.
  EXPECT_NO_THROW(fk::fit_into(good, opt, out));
  EXPECT_TRUE(std::none_of(outputs.labels.begin(), outputs.labels.end(),
                           [](std::int32_t l) { return l == PoisonedOutputs::kLabel; }));
}

// An error that arises while batch 1 runs, after batch 0 is done (running out of memory, here
// simulated by the progress callback throwing std::bad_alloc, or the callback's own exception)
// leaves fit_into's outputs as they were: results reach the caller's buffers only at the end.
TEST_F(FitErrors, NothingWrittenOnErrorInALaterBatch) {
  const std::int64_t nb = 3;
  std::vector<float> x3(x.begin(), x.begin() + nb * N * D);
  const TensorView v = TensorView::batched(x3.data(), nb, N, D);
  PoisonedOutputs outputs(nb);
  for (const fk::Algorithm algo : {fk::Algorithm::lloyd, fk::Algorithm::elkan}) {
    fk::KMeansOptions o = opt;
    o.algorithm = algo;
    std::int64_t batches_seen = 0;
    o.on_iteration = [&](const fk::IterationInfo& info) {
      batches_seen = std::max(batches_seen, info.batch + 1);
      if (info.batch == 1 && info.iteration == 2) throw std::bad_alloc();
    };
    expect_error([&] { fk::fit_into(v, o, outputs.buffers()); }, ErrorKind::out_of_memory,
                 {"not enough host memory"});
    EXPECT_EQ(batches_seen, 2);  // batch 0 had finished
    outputs.expect_untouched("std::bad_alloc in batch 1");

    o.on_iteration = [](const fk::IterationInfo& info) {
      if (info.batch == 2) throw std::runtime_error("stop");
    };
    EXPECT_THROW(fk::fit_into(v, o, {outputs.labels.data(), outputs.cent.data(), nullptr}), std::runtime_error);
    outputs.expect_untouched("the callback's exception in batch 2");
  }
}

// Nothing is written or half-done on a throw: the output of a good call afterwards is unaffected.
TEST_F(FitErrors, LibraryUsableAfterErrors) {
  const fk::KMeansResult before = fk::fit(xv, opt);
  opt.n_clusters = 0;
  EXPECT_THROW(fit(), fk::Error);
  opt.n_clusters = K;
  const fk::KMeansResult after = fk::fit(xv, opt);
  EXPECT_EQ(before.labels, after.labels);
  EXPECT_EQ(before.centroids, after.centroids);
}

}  // namespace
