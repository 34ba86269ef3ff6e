#include "flashkmeans/tensor.hpp"
#include "flashkmeans/types.hpp"

namespace flashkmeans {

const char* to_string(DType t) {
  switch (t) {
    case DType::float32: return "float32";
    case DType::float16: return "float16";
    case DType::bfloat16: return "bfloat16";
  }
  return "unknown";
}
const char* to_string(DeviceType t) { return t == DeviceType::cpu ? "cpu" : "cuda"; }
const char* to_string(Metric m) {
  switch (m) {
    case Metric::euclidean: return "euclidean";
    case Metric::cosine: return "cosine";
    case Metric::dot: return "dot";
  }
  return "unknown";
}
const char* to_string(Init i) {
  switch (i) {
    case Init::random: return "random";
    case Init::kmeans_plus_plus: return "kmeans_plus_plus";
    case Init::given: return "given";
  }
  return "unknown";
}
const char* to_string(EmptyClusters e) { return e == EmptyClusters::relocate ? "relocate" : "keep"; }
const char* to_string(Algorithm a) {
  switch (a) {
    case Algorithm::automatic: return "automatic";
    case Algorithm::lloyd: return "lloyd";
    case Algorithm::elkan: return "elkan";
  }
  return "unknown";
}

const char* to_string(Precision p) { return p == Precision::exact ? "exact" : "tf32"; }

TensorView TensorView::matrix(const float* data, std::int64_t rows, std::int64_t cols) {
  return batched(data, 1, rows, cols);
}

TensorView TensorView::batched(const float* data, std::int64_t batch, std::int64_t rows, std::int64_t cols) {
  TensorView v;
  v.data = data;
  v.dtype = DType::float32;
  v.batch = batch, v.rows = rows, v.cols = cols;
  v.batch_stride = rows * cols, v.row_stride = cols, v.col_stride = 1;
  return v;
}

TensorView TensorView::batched(const std::uint16_t* data, DType dtype, std::int64_t batch, std::int64_t rows,
                               std::int64_t cols) {
  TensorView v = batched(static_cast<const float*>(nullptr), batch, rows, cols);
  v.data = data;
  v.dtype = dtype;
  return v;
}

}  // namespace flashkmeans
