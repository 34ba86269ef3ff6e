// Test support, part 1: a float64 brute-force k-means reference with the semantics of
// src/core/driver.cpp, 16-bit float encoders/decoders written independently of the library, and
// random data generators (std::mt19937 with fixed seeds).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <flashkmeans/flashkmeans.hpp>

namespace fkt {

using flashkmeans::DType;
using flashkmeans::Metric;

/// Unit roundoff of float32 (round to nearest).
constexpr double kU = 0x1p-24;

// ---------------------------------------------------------------------------------------------
// 16-bit formats (round to nearest even; inputs here are finite and far from overflow).

inline std::uint16_t float_to_half(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, 4);
  const std::uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u));
  if (ax >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // >= 65520 rounds to inf
  if (ax < 0x38800000u) {  // below 2^-14: a subnormal half, in units of 2^-24
    float a;
    std::memcpy(&a, &ax, 4);
    return static_cast<std::uint16_t>(sign | static_cast<std::uint32_t>(std::nearbyint(a * 16777216.0)));
  }
  std::uint32_t h = (((ax >> 23) - 112) << 10) | ((ax >> 13) & 0x3ffu);
  const std::uint32_t rest = ax & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return static_cast<std::uint16_t>(sign | h);
}

inline double half_to_double(std::uint16_t h) {
  const int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  const double s = (h & 0x8000) ? -1.0 : 1.0;
  if (exp == 0x1f) return man ? std::numeric_limits<double>::quiet_NaN() : s * std::numeric_limits<double>::infinity();
  if (exp == 0) return s * std::ldexp(static_cast<double>(man), -24);
  return s * std::ldexp(static_cast<double>(man + 1024), exp - 25);
}

inline std::uint16_t float_to_bfloat16(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<std::uint16_t>(x >> 16);
}

inline double bfloat16_to_double(std::uint16_t h) {
  const std::uint32_t x = static_cast<std::uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

// ---------------------------------------------------------------------------------------------
// A (B, N, D) array in one dtype, together with the exact values the library reads from it.

struct Array {
  std::int64_t batch = 0, rows = 0, cols = 0;
  DType dtype = DType::float32;
  std::vector<float> f32;            ///< the data when dtype is float32
  std::vector<std::uint16_t> bits;   ///< the data when dtype is float16 / bfloat16
  std::vector<double> values;        ///< (B, N, D) decoded values, exactly as the library sees them

  flashkmeans::TensorView view() const {
    if (dtype == DType::float32) return flashkmeans::TensorView::batched(f32.data(), batch, rows, cols);
    return flashkmeans::TensorView::batched(bits.data(), dtype, batch, rows, cols);
  }
  const double* row(std::int64_t b, std::int64_t i) const { return values.data() + (b * rows + i) * cols; }
};

/// Rounds src (B * N * D floats, C order) to dtype.
inline Array make_array(const std::vector<float>& src, std::int64_t batch, std::int64_t rows, std::int64_t cols,
                        DType dtype) {
  Array a;
  a.batch = batch, a.rows = rows, a.cols = cols, a.dtype = dtype;
  const std::size_t count = static_cast<std::size_t>(batch * rows * cols);
  a.values.resize(count);
  if (dtype == DType::float32) {
    a.f32.assign(src.begin(), src.begin() + static_cast<std::ptrdiff_t>(count));
    for (std::size_t e = 0; e < count; ++e) a.values[e] = a.f32[e];
  } else {
    a.bits.resize(count);
    for (std::size_t e = 0; e < count; ++e) {
      a.bits[e] = dtype == DType::float16 ? float_to_half(src[e]) : float_to_bfloat16(src[e]);
      a.values[e] = dtype == DType::float16 ? half_to_double(a.bits[e]) : bfloat16_to_double(a.bits[e]);
    }
  }
  return a;
}

/// The first k rows of every batch of a, as a (B, k, D) array of the same dtype and the same bits.
inline Array first_rows(const Array& a, std::int64_t k) {
  Array c;
  c.batch = a.batch, c.rows = k, c.cols = a.cols, c.dtype = a.dtype;
  for (std::int64_t b = 0; b < a.batch; ++b) {
    const std::size_t from = static_cast<std::size_t>(b * a.rows * a.cols), len = static_cast<std::size_t>(k * a.cols);
    if (a.dtype == DType::float32)
      c.f32.insert(c.f32.end(), a.f32.begin() + from, a.f32.begin() + from + len);
    else
      c.bits.insert(c.bits.end(), a.bits.begin() + from, a.bits.begin() + from + len);
    c.values.insert(c.values.end(), a.values.begin() + from, a.values.begin() + from + len);
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// Generators.

/// count i.i.d. N(0, sigma^2) floats.
inline std::vector<float> gaussian(std::mt19937& g, std::int64_t count, double sigma = 1.0) {
  std::normal_distribution<double> nd(0.0, sigma);
  std::vector<float> v(static_cast<std::size_t>(count));
  for (float& f : v) f = static_cast<float>(nd(g));
  return v;
}

/// (B, N, D) Gaussian blobs: in every batch, point i belongs to blob i % centers; the centers are
/// drawn afresh per batch as N(0, radius^2 / D) vectors (norm about radius), the points scatter
/// around them with standard deviation sigma per coordinate.
inline std::vector<float> blobs(std::mt19937& g, std::int64_t batch, std::int64_t n, std::int64_t d,
                                std::int64_t centers, double radius = 10.0, double sigma = 1.0) {
  std::normal_distribution<double> nd(0.0, 1.0);
  std::vector<float> v(static_cast<std::size_t>(batch * n * d));
  std::vector<double> c(static_cast<std::size_t>(centers * d));
  const double cs = radius / std::sqrt(static_cast<double>(d));
  for (std::int64_t b = 0; b < batch; ++b) {
    for (double& e : c) e = cs * nd(g);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t q = 0; q < d; ++q)
        v[static_cast<std::size_t>((b * n + i) * d + q)] = static_cast<float>(c[(i % centers) * d + q] + sigma * nd(g));
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// The float64 reference. Points are "prepared" as the library prepares them: unit rows for cosine.

inline void normalize_rows(double* v, std::int64_t n, std::int64_t d) {
  for (std::int64_t i = 0; i < n; ++i) {
    double s = 0;
    for (std::int64_t q = 0; q < d; ++q) s += v[i * d + q] * v[i * d + q];
    const double inv = 1.0 / std::max(std::sqrt(s), 1e-12);
    for (std::int64_t q = 0; q < d; ++q) v[i * d + q] *= inv;
  }
}

/// Batch b of a as (N, D) doubles, normalised for cosine.
inline std::vector<double> prepared(const Array& a, std::int64_t b, Metric m) {
  std::vector<double> x(a.row(b, 0), a.row(b, 0) + a.rows * a.cols);
  if (m == Metric::cosine) normalize_rows(x.data(), a.rows, a.cols);
  return x;
}

inline double dot(const double* a, const double* b, std::int64_t d) {
  double s = 0;
  for (std::int64_t q = 0; q < d; ++q) s += a[q] * b[q];
  return s;
}

/// The distance of PredictResult: squared L2, 1 - x.c (x and c unit for cosine), -x.c.
inline double distance(Metric m, const double* x, const double* c, std::int64_t d) {
  if (m == Metric::euclidean) {
    double s = 0;
    for (std::int64_t q = 0; q < d; ++q) s += (x[q] - c[q]) * (x[q] - c[q]);
    return s;
  }
  return m == Metric::cosine ? 1.0 - dot(x, c, d) : -dot(x, c, d);
}

struct Assignment {
  std::vector<std::int32_t> labels;
  std::vector<double> dist;
};

/// Nearest centroid of every point (first index on exact ties).
inline Assignment assign(Metric m, const std::vector<double>& x, std::int64_t n, const std::vector<double>& c,
                         std::int64_t k, std::int64_t d) {
  Assignment a;
  a.labels.resize(static_cast<std::size_t>(n));
  a.dist.resize(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    double best = std::numeric_limits<double>::infinity();
    std::int32_t arg = 0;
    for (std::int64_t j = 0; j < k; ++j) {
      const double s = distance(m, &x[i * d], &c[j * d], d);
      if (s < best) best = s, arg = static_cast<std::int32_t>(j);
    }
    a.labels[i] = arg, a.dist[i] = best;
  }
  return a;
}

/// One update with EmptyClusters::keep: the mean of the members, the old centroid for a cluster
/// without members; for cosine and dot every row is then normalised (as driver.cpp does).
inline std::vector<double> update(Metric m, const std::vector<double>& x, std::int64_t n,
                                  const std::vector<std::int32_t>& labels, const std::vector<double>& old_c,
                                  std::int64_t k, std::int64_t d) {
  std::vector<double> c(static_cast<std::size_t>(k * d), 0.0);
  std::vector<std::int64_t> count(static_cast<std::size_t>(k), 0);
  for (std::int64_t i = 0; i < n; ++i) {
    ++count[labels[i]];
    for (std::int64_t q = 0; q < d; ++q) c[labels[i] * d + q] += x[i * d + q];
  }
  for (std::int64_t j = 0; j < k; ++j)
    for (std::int64_t q = 0; q < d; ++q)
      c[j * d + q] = count[j] ? c[j * d + q] / static_cast<double>(count[j]) : old_c[j * d + q];
  if (m != Metric::euclidean) normalize_rows(c.data(), k, d);
  return c;
}

struct Run {
  std::vector<double> centroids;     ///< after the last update
  std::vector<std::int32_t> labels;  ///< the final assignment against those centroids
};

/// iters Lloyd iterations from c0 (raw initial centroids; normalised here for cosine, as the driver
/// does), then a final assignment.
inline Run lloyd(Metric m, const std::vector<double>& x, std::int64_t n, std::vector<double> c0, std::int64_t k,
                 std::int64_t d, int iters) {
  if (m == Metric::cosine) normalize_rows(c0.data(), k, d);
  Run r;
  r.centroids = std::move(c0);
  for (int it = 0; it < iters; ++it)
    r.centroids = update(m, x, n, assign(m, x, n, r.centroids, k, d).labels, r.centroids, k, d);
  r.labels = assign(m, x, n, r.centroids, k, d).labels;
  return r;
}

/// A bound on the float32 error of the library's score (and distance) of point x against a
/// centroid of squared norm at most cmax2: a D-term float32 dot product (error at most
/// D u |x| |c|), plus the rounding of the norms and of the epilogue; doubled for a comparison of
/// two scores. Scores are computed as ||c||^2 - 2 x.c (+ ||x||^2) for euclidean, -x.c otherwise.
inline double score_tolerance(Metric m, const double* x, double cmax2, std::int64_t d) {
  const double x2 = dot(x, x, d), dd = static_cast<double>(d);
  if (m == Metric::euclidean) return (4 * dd + 8) * kU * (x2 + cmax2) + 1e-30;
  return (4 * dd + 16) * kU * std::sqrt(x2 * cmax2) + 1e-30;
}

/// The largest squared norm among the k rows of c.
inline double max_sq_norm(const double* c, std::int64_t k, std::int64_t d) {
  double m = 0;
  for (std::int64_t j = 0; j < k; ++j) m = std::max(m, dot(c + j * d, c + j * d, d));
  return m;
}

inline std::vector<double> to_double(const float* p, std::size_t count) { return std::vector<double>(p, p + count); }

}  // namespace fkt
