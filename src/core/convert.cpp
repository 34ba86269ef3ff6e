#include "core/convert.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace flashkmeans::detail {

float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ffu;
  std::uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);  // inf / nan
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;
  } else {  // subnormal: value = man * 2^-24
    float f = std::ldexp(static_cast<float>(man), -24);
    return sign ? -f : f;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bfloat16_to_float(std::uint16_t h) {
  const std::uint32_t bits = static_cast<std::uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float element(const TensorView& v, std::int64_t b, std::int64_t i, std::int64_t j) {
  const std::int64_t at = b * v.batch_stride + i * v.row_stride + j * v.col_stride;
  switch (v.dtype) {
    case DType::float32: return static_cast<const float*>(v.data)[at];
    case DType::float16: return half_to_float(static_cast<const std::uint16_t*>(v.data)[at]);
    case DType::bfloat16: return bfloat16_to_float(static_cast<const std::uint16_t*>(v.data)[at]);
  }
  return 0.f;
}

void copy_batch(const TensorView& v, std::int64_t b, float* out) {
  const std::int64_t n = v.rows, d = v.cols;
  if (v.dtype == DType::float32 && v.col_stride == 1) {
    const float* base = static_cast<const float*>(v.data) + b * v.batch_stride;
    for (std::int64_t i = 0; i < n; ++i) std::memcpy(out + i * d, base + i * v.row_stride, sizeof(float) * d);
    return;
  }
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < d; ++j) out[i * d + j] = element(v, b, i, j);
}

void normalize_rows(float* rows, std::int64_t n, std::int64_t d, int n_threads) {
#pragma omp parallel for num_threads(n_threads) schedule(static)
  for (std::int64_t i = 0; i < n; ++i) {
    float* r = rows + i * d;
    double s = 0;
    for (std::int64_t j = 0; j < d; ++j) s += static_cast<double>(r[j]) * r[j];
    const float inv = static_cast<float>(1.0 / std::max(std::sqrt(s), 1e-12));
    for (std::int64_t j = 0; j < d; ++j) r[j] *= inv;
  }
}

BatchRows prepare_batch(const TensorView& v, std::int64_t b, Metric metric,
                        std::vector<float>& storage, int n_threads) {
  BatchRows out;
  out.n = v.rows;
  out.d = v.cols;
  if (v.dtype == DType::float32 && v.col_stride == 1 && metric != Metric::cosine) {
    out.rows = static_cast<const float*>(v.data) + b * v.batch_stride;
    out.ld = v.row_stride;
    return out;
  }
  storage.resize(static_cast<std::size_t>(v.rows * v.cols));
  const std::int64_t n = v.rows, d = v.cols;
  float* dst = storage.data();
#pragma omp parallel for num_threads(n_threads) schedule(static)
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < d; ++j) dst[i * d + j] = element(v, b, i, j);
  if (metric == Metric::cosine) normalize_rows(dst, n, d, n_threads);
  out.rows = dst;
  out.ld = d;
  return out;
}

}  // namespace flashkmeans::detail
