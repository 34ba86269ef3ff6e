// A non-owning view of a (B, N, D) array: the only way data enters the library.
#pragma once

#include <cstdint>

#include "flashkmeans/types.hpp"

namespace flashkmeans {

/// Points (B, N, D), or centroids (B, K, D). Strides are in elements, not bytes, and may be any
/// non-negative values (a transposed or sliced array is read as it is). Float16 and bfloat16 data
/// are passed as their uint16_t bit patterns.
struct TensorView {
  const void* data = nullptr;
  DType dtype = DType::float32;
  Device device{};
  std::int64_t batch = 0, rows = 0, cols = 0;                   ///< B, N (or K), D
  std::int64_t batch_stride = 0, row_stride = 0, col_stride = 0;  ///< in elements

  /// A C-contiguous (N, D) array (B = 1).
  static TensorView matrix(const float* data, std::int64_t rows, std::int64_t cols);
  /// A C-contiguous (B, N, D) array.
  static TensorView batched(const float* data, std::int64_t batch, std::int64_t rows,
                            std::int64_t cols);
  /// A C-contiguous (B, N, D) array of float16 or bfloat16 bits.
  static TensorView batched(const std::uint16_t* data, DType dtype, std::int64_t batch,
                            std::int64_t rows, std::int64_t cols);

  bool empty() const { return data == nullptr && batch == 0 && rows == 0 && cols == 0; }
  bool is_contiguous() const {
    return col_stride == 1 && row_stride == cols && (batch <= 1 || batch_stride == rows * cols);
  }
};

}  // namespace flashkmeans
