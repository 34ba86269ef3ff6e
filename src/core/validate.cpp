#include "core/validate.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>

#include "core/check.hpp"
#include "core/convert.hpp"
#include "core/cuda_entry.hpp"
#include "cpu/simd_kernels.hpp"

namespace flashkmeans::detail {

namespace {

bool finite_bits(std::uint16_t h, DType t) {
  // float16: exponent all ones (0x7c00) is inf/nan; bfloat16: exponent all ones (0x7f80).
  return t == DType::float16 ? (h & 0x7c00u) != 0x7c00u : (h & 0x7f80u) != 0x7f80u;
}

}  // namespace

void validate_view(const TensorView& v, const char* what) {
  FK_CHECK(v.device.type == DeviceType::cpu || v.device.type == DeviceType::cuda, invalid_argument,
           what << " has an unknown device type: expected cpu or cuda");
  if (v.device.type == DeviceType::cuda) {
    FK_CHECK(cuda_built(), unsupported,
             what << " is on a CUDA device, but this build has no CUDA backend: "
                     "pass host memory or rebuild with FLASHKMEANS_CUDA=ON");
    const int devices = cuda_device_count();
    FK_CHECK(devices > 0, unsupported, what << " is on a CUDA device, but no CUDA device is visible");
    FK_CHECK(v.device.id >= 0 && v.device.id < devices, invalid_argument,
             what << " is on CUDA device " << v.device.id << ", but " << devices << " CUDA device(s) are visible");
  }
  FK_CHECK(v.dtype == DType::float32 || v.dtype == DType::float16 || v.dtype == DType::bfloat16,
           invalid_type, what << " has an unknown dtype: expected float32, float16 or bfloat16");
  FK_CHECK(v.batch >= 0 && v.rows >= 0 && v.cols >= 0, invalid_argument,
           what << " has a negative dimension (" << v.batch << ", " << v.rows << ", " << v.cols << ")");
  FK_CHECK(v.batch > 0 && v.rows > 0 && v.cols > 0, invalid_argument,
           what << " is empty: shape (" << v.batch << ", " << v.rows << ", " << v.cols
                << "); expected at least one batch, one row and one column");
  FK_CHECK(v.data != nullptr, invalid_argument, what << " has a null data pointer");
  FK_CHECK(v.batch_stride >= 0 && v.row_stride >= 0 && v.col_stride >= 0, invalid_argument,
           what << " has a negative stride; expected non-negative element strides");
  FK_CHECK(v.rows <= std::numeric_limits<std::int32_t>::max(), invalid_argument,
           what << " has " << v.rows << " rows; at most 2^31 - 1 rows per batch are supported");
  const double elems = static_cast<double>(v.batch) * static_cast<double>(v.rows) * static_cast<double>(v.cols);
  FK_CHECK(elems < 4.0e18, invalid_argument, what << " has too many elements to index");
  // Offsets are computed in 64-bit elements: the farthest element must stay well inside that range.
  const double span = static_cast<double>(v.batch - 1) * static_cast<double>(v.batch_stride) +
                      static_cast<double>(v.rows - 1) * static_cast<double>(v.row_stride) +
                      static_cast<double>(v.cols - 1) * static_cast<double>(v.col_stride);
  FK_CHECK(span < 4.0e18, invalid_argument,
           what << " has strides (" << v.batch_stride << ", " << v.row_stride << ", " << v.col_stride
                << ") that place its last element beyond 4e18 elements from its first; expected strides "
                   "within addressable memory");
}

void throw_nonfinite_row(const char* what, std::int64_t r, std::int64_t rows) {
  std::ostringstream msg;
  msg << what << " contains NaN or infinity (first in batch " << r / rows << ", row " << r % rows
      << "); expected finite values";
  throw Error(ErrorKind::invalid_argument, msg.str());
}

void throw_zero_row(const char* what, std::int64_t r, std::int64_t rows) {
  std::ostringstream msg;
  msg << what << " has a zero row (norm below 1e-12; first in batch " << r / rows << ", row " << r % rows
      << "), which has no direction under the cosine metric: remove such rows or use the euclidean or dot metric";
  throw Error(ErrorKind::invalid_argument, msg.str());
}

void validate_finite(const TensorView& v, const char* what, int n_threads) {
  if (v.device.type != DeviceType::cpu) return;  // the CUDA backend checks device data on the device
  std::int64_t bad = -1;  // flat index of the first non-finite element, or -1
  const std::int64_t rows = v.batch * v.rows;
#pragma omp parallel for num_threads(n_threads) schedule(static) reduction(max : bad)
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t b = r / v.rows, i = r % v.rows;
    const std::int64_t base = b * v.batch_stride + i * v.row_stride;
    bool ok = true;
    if (v.dtype == DType::float32 && v.col_stride == 1) {
      ok = cpu::simd().all_finite(static_cast<const float*>(v.data) + base, v.cols);
    } else if (v.dtype == DType::float32) {
      const float* p = static_cast<const float*>(v.data) + base;
      float acc = 0.f;  // inf - inf and nan propagate into acc: one test per row
      for (std::int64_t j = 0; j < v.cols; ++j) acc += p[j * v.col_stride] * 0.f;
      ok = acc == 0.f;
    } else {
      const std::uint16_t* p = static_cast<const std::uint16_t*>(v.data) + base;
      for (std::int64_t j = 0; j < v.cols; ++j) ok &= finite_bits(p[j * v.col_stride], v.dtype);
    }
    if (!ok) bad = std::max(bad, rows - r);  // max of (rows - r) picks the first bad row
  }
  if (bad >= 0) throw_nonfinite_row(what, rows - bad, v.rows);
}

void validate_directions(const TensorView& v, const char* what, int n_threads) {
  if (v.device.type != DeviceType::cpu) return;  // device data is not read on the host
  std::int64_t bad = -1;  // as in validate_finite: rows - (index of the first bad row)
  const std::int64_t rows = v.batch * v.rows;
#pragma omp parallel for num_threads(n_threads) schedule(static) reduction(max : bad)
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int64_t b = r / v.rows, i = r % v.rows;
    // normalize_rows divides by max(norm, 1e-12): below that a row cannot become a unit vector.
    // One coordinate of at least 1e-12 settles it, so a usual row costs a single read.
    double s = 0;
    bool has_direction = false;
    for (std::int64_t j = 0; j < v.cols && !has_direction; ++j) {
      const double e = element(v, b, i, j);
      has_direction = std::fabs(e) >= 1e-12;
      s += e * e;
    }
    if (!has_direction && !(std::sqrt(s) >= 1e-12)) bad = std::max(bad, rows - r);
  }
  if (bad >= 0) throw_zero_row(what, rows - bad, v.rows);
}

void validate_fit(const TensorView& x, const KMeansOptions& opt, int n_threads) {
  validate_view(x, "x");
  FK_CHECK(opt.n_clusters >= 1, invalid_argument,
           "n_clusters = " << opt.n_clusters << " is not allowed: expected n_clusters >= 1");
  FK_CHECK(opt.n_clusters <= x.rows, invalid_argument,
           "n_clusters = " << opt.n_clusters << " is larger than the number of points N = " << x.rows
                           << ": expected 1 <= n_clusters <= N");
  FK_CHECK(opt.max_iter >= 1, invalid_argument,
           "max_iter = " << opt.max_iter << " is not allowed: expected max_iter >= 1");
  FK_CHECK(!std::isnan(opt.tol), invalid_argument, "tol is NaN: expected a number (0 runs all max_iter)");
  FK_CHECK(opt.n_threads >= 0, invalid_argument,
           "n_threads = " << opt.n_threads << " is not allowed: expected 0 (all cores) or a positive count");
  FK_CHECK(opt.metric == Metric::euclidean || opt.metric == Metric::cosine || opt.metric == Metric::dot,
           invalid_argument, "unknown metric: expected euclidean, cosine or dot");
  FK_CHECK(opt.init == Init::random || opt.init == Init::kmeans_plus_plus || opt.init == Init::given,
           invalid_argument, "unknown init: expected random, kmeans_plus_plus or given");
  FK_CHECK(opt.algorithm == Algorithm::automatic || opt.algorithm == Algorithm::lloyd ||
               opt.algorithm == Algorithm::elkan,
           invalid_argument, "unknown algorithm: expected automatic, lloyd or elkan");
  FK_CHECK(!(opt.algorithm == Algorithm::elkan && opt.metric == Metric::dot), invalid_argument,
           "algorithm elkan needs a metric with a triangle inequality (euclidean or cosine), not dot: "
           "use lloyd or automatic");
  if (opt.init == Init::given) {
    const TensorView& c = opt.init_centroids;
    FK_CHECK(!c.empty(), invalid_argument, "init is given but init_centroids is empty: expected ("
                                               << x.batch << ", " << opt.n_clusters << ", " << x.cols << ")");
    validate_view(c, "init_centroids");
    FK_CHECK(c.device.type == DeviceType::cpu || (c.device.type == x.device.type && c.device.id == x.device.id),
             invalid_argument, "init_centroids are on " << to_string(c.device.type) << " device " << c.device.id
                                   << " but x is on " << to_string(x.device.type) << " device " << x.device.id
                                   << ": expected host memory or x's device");
    FK_CHECK(c.batch == x.batch && c.rows == opt.n_clusters && c.cols == x.cols, invalid_argument,
             "init_centroids has shape (" << c.batch << ", " << c.rows << ", " << c.cols << "); expected ("
                                          << x.batch << ", " << opt.n_clusters << ", " << x.cols << ")");
    validate_finite(c, "init_centroids", n_threads);
    if (opt.metric == Metric::cosine) validate_directions(c, "init_centroids", n_threads);
  } else {
    FK_CHECK(opt.init_centroids.empty(), invalid_argument,
             "init_centroids were passed but init is not 'given': set init = Init::given to use them");
  }
  validate_finite(x, "x", n_threads);
  if (opt.metric == Metric::cosine) validate_directions(x, "x", n_threads);
}

void validate_predict(const TensorView& x, const TensorView& c, Metric metric, int n_threads) {
  FK_CHECK(metric == Metric::euclidean || metric == Metric::cosine || metric == Metric::dot, invalid_argument,
           "unknown metric: expected euclidean, cosine or dot");
  validate_view(x, "x");
  validate_view(c, "centroids");
  FK_CHECK(c.device.type == DeviceType::cpu || (c.device.type == x.device.type && c.device.id == x.device.id),
           invalid_argument, "centroids are on " << to_string(c.device.type) << " device " << c.device.id
                                 << " but x is on " << to_string(x.device.type) << " device " << x.device.id
                                 << ": expected host memory or x's device");
  FK_CHECK(c.cols == x.cols, invalid_argument,
           "centroids have D = " << c.cols << " columns but x has D = " << x.cols << ": expected equal");
  FK_CHECK(c.batch == x.batch || c.batch == 1, invalid_argument,
           "centroids have " << c.batch << " batches but x has " << x.batch << ": expected "
                             << x.batch << " or 1 (shared)");
  validate_finite(c, "centroids", n_threads);
  validate_finite(x, "x", n_threads);
  if (metric == Metric::cosine) {
    validate_directions(c, "centroids", n_threads);
    validate_directions(x, "x", n_threads);
  }
}

}  // namespace flashkmeans::detail
