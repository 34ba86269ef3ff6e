// Checks at the API boundary, once, before anything is computed or written.
#pragma once

#include <cstdint>

#include "flashkmeans/options.hpp"
#include "flashkmeans/tensor.hpp"

namespace flashkmeans::detail {

/// Throws Error naming the argument (what) when v is not a usable host array: null data, empty or
/// negative shape, negative strides, sizes that overflow, a device this build cannot read.
void validate_view(const TensorView& v, const char* what);

/// The errors for a bad row at flat index r (b * rows + row) of an argument, shared by the host
/// checks and the CUDA backend's checks of device data.
[[noreturn]] void throw_nonfinite_row(const char* what, std::int64_t r, std::int64_t rows);
[[noreturn]] void throw_zero_row(const char* what, std::int64_t r, std::int64_t rows);

/// Throws when any element of v is NaN or infinite.
void validate_finite(const TensorView& v, const char* what, int n_threads);

/// Throws when a row of v (host memory) has norm below 1e-12: under the cosine metric it has no
/// direction (normalisation would leave it a zero vector, equally far from every centroid).
void validate_directions(const TensorView& v, const char* what, int n_threads);

/// Everything fit checks: the data, K against N, iterations, tol, threads, given centroids, and
/// (cosine) that every row has a direction.
void validate_fit(const TensorView& x, const KMeansOptions& opt, int n_threads);

/// Everything predict checks: the data and centroids and that their shapes agree.
void validate_predict(const TensorView& x, const TensorView& centroids, Metric metric, int n_threads);

}  // namespace flashkmeans::detail
