// Elkan's lower bounds in float16: half the bytes of the N x K bounds that stream through memory in
// every pass. A bound is stored rounded down (a smaller lower bound is still a lower bound) in
// units of a power of two chosen per fit, so that the data's distances sit well inside float16's
// range; a value past the range is stored as the largest float16, still a bound, only a loose one.
// These scalar conversions serve the generic kernels and single writes; the AVX2 (F16C) and
// AVX-512 kernels convert in hardware with the same rounding.
#pragma once

#include <cstdint>
#include <cstring>

namespace flashkmeans::cpu {

using Bound16 = std::uint16_t;

inline constexpr Bound16 kBound16Inf = 0x7c00;  ///< +inf: no bound (never a candidate)

/// The largest float16 at or below v. Never more than v, and never +inf: past float16's range
/// (+inf included) its largest finite value; at or below zero, and NaN, zero (no pruning). Only
/// the own-centroid marker kBound16Inf is +inf, written as such.
inline Bound16 bound16_down(float v) {
  if (!(v > 0.f)) return 0;
  if (v >= 65504.f) return 0x7bff;
  std::uint32_t b;
  std::memcpy(&b, &v, sizeof b);
  const int e = static_cast<int>(b >> 23) - 127;
  if (e >= -14) return static_cast<Bound16>((e + 15) << 10 | (b & 0x7fffffu) >> 13);  // truncated mantissa
  if (e >= -24) return static_cast<Bound16>(((b & 0x7fffffu) | 0x800000u) >> -(e + 1));  // subnormal
  return 0;
}

/// The value of a float16 (exact in float32).
inline float bound16_value(Bound16 h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000) << 16, e = h >> 10 & 0x1f, m = h & 0x3ff;
  std::uint32_t b;
  if (e == 0x1f) {
    b = sign | 0x7f800000u | m << 13;
  } else if (e != 0) {
    b = sign | (e + 112) << 23 | m << 13;
  } else {
    const float f = static_cast<float>(m) * 0x1.0p-24f;  // subnormal: exact
    return sign ? -f : f;
  }
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
}

}  // namespace flashkmeans::cpu
