// Reading any accepted input (dtype, strides) as float32 rows.
#pragma once

#include <cstdint>
#include <vector>

#include "core/backend.hpp"
#include "flashkmeans/tensor.hpp"

namespace flashkmeans::detail {

float half_to_float(std::uint16_t h);
float bfloat16_to_float(std::uint16_t h);

/// Element (b, i, j) of a host view as float.
float element(const TensorView& v, std::int64_t b, std::int64_t i, std::int64_t j);

/// Copies batch b of v into out (rows * cols floats, C order).
void copy_batch(const TensorView& v, std::int64_t b, float* out);

/// Batch b as float32 rows for metric: a view of the caller's memory when it is float32 with unit
/// column stride and needs no normalising (zero copy), otherwise a converted copy kept in storage.
BatchRows prepare_batch(const TensorView& v, std::int64_t b, Metric metric,
                        std::vector<float>& storage, int n_threads);

/// Scales every row of (n, d) to unit L2 norm (rows of norm below 1e-12 are divided by 1e-12, as
/// the seed does, so a zero row stays zero).
void normalize_rows(float* rows, std::int64_t n, std::int64_t d, int n_threads);

}  // namespace flashkmeans::detail
