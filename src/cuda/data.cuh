// Preparing the inputs on the device: finiteness checks, staging (layout, normalising), norms,
// initial centroids.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "flashkmeans/tensor.hpp"

namespace flashkmeans::cuda {

/// Flat indices (b * rows + row) of the first bad rows of v, -1 where there is none.
struct BadRows {
  std::int64_t nonfinite;  ///< first row holding NaN or infinity
  std::int64_t zero;       ///< first finite row without a direction (only searched when asked)
};
/// The row passes over the points (checks, staging, norms, final distances) give each row to one
/// warp of a kRowPassThreads block and walk the rows grid-stride from a bounded grid: one block
/// per row had cost more in block launches than in reading (8.4M rows: ~6 ms for the check alone,
/// against ~1 ms to read the data). Blocks for this many warps' worth of rows.
constexpr int kRowPassThreads = 256;
unsigned row_pass_blocks(std::int64_t warps);

/// Starts the scan of v on the device into flags (two unsigned of device memory); once they are
/// copied back, bad_rows_of reads them. xx (optional, B * N floats): ||row||^2 of v's rows in
/// float32, from the same read (valid when no row is bad).
void launch_bad_rows(const TensorView& v, bool zero_rows, unsigned* flags, cudaStream_t stream, float* xx = nullptr);
BadRows bad_rows_of(const unsigned* flags);

/// Copies v into dst as C-contiguous rows of ld elements of dtype out_type (ld >= v.cols, zero
/// padded), scaling every row to unit norm when normalize is set.
void stage_rows(const TensorView& v, void* dst, DType out_type, std::int64_t ld, bool normalize, cudaStream_t stream);


/// scale[b * N + i] = 1 / max(||x_bi||, 1e-12) (float64 sum, as the CPU backend normalises).
void inverse_norms(const TensorView& v, float* scale, cudaStream_t stream);

/// c[b, j, :] = float32 row rows[b * K + j] of batch b of v (the random init's gather).
void gather_rows(const TensorView& v, const std::int64_t* rows, std::int64_t k, float* c, cudaStream_t stream);

/// Scales each of the count rows of c (count, d) to unit norm (rows of norm < 1e-12 stay ~0).
void normalize_rows(float* c, std::int64_t count, std::int64_t d, cudaStream_t stream);

}  // namespace flashkmeans::cuda
