// The ANN-benchmark formats (corpus-texmex.irisa.fr): every vector is stored as its dimension d
// (int32, little-endian) followed by d values: float32 (.fvecs), uint8 (.bvecs) or int32 (.ivecs).
#include <cstring>

#include "io/internal.hpp"

namespace flashkmeans::io {

namespace {

// Far above any real embedding; a larger first word is a sign of a wrong or corrupt file.
constexpr std::int32_t kMaxDim = 1 << 24;

struct VecsLayout {
  std::int64_t rows = 0, cols = 0;
  std::uint64_t record = 0;  ///< bytes per vector, dimension word included
};

// Checks that the file is a whole number of records, all of the first record's dimension.
VecsLayout scan(const Input& f, std::size_t item, const char* format) {
  const std::string& path = f.name;
  if (f.size == 0) throw FileError(path + " is empty: a ." + std::string(format) + " file holds at least one vector");
  if (f.size < 4) throw FileError(path + " is truncated: it ends inside the first dimension word");
  std::int32_t d;
  std::memcpy(&d, f.data, 4);
  if (d <= 0 || d > kMaxDim)
    throw FileError(path + " is not a valid ." + format + " file: the first vector's dimension is " +
                    std::to_string(d) + " (expected 1 to " + std::to_string(kMaxDim) + ")");
  VecsLayout l;
  l.cols = d, l.record = 4 + static_cast<std::uint64_t>(d) * item;
  if (f.size % l.record != 0)
    throw FileError(path + " is truncated or not a ." + format + " file: its " + std::to_string(f.size) +
                    " bytes are not a whole number of " + std::to_string(l.record) + "-byte vectors of dimension " +
                    std::to_string(d));
  l.rows = static_cast<std::int64_t>(f.size / l.record);
  for (std::int64_t i = 1; i < l.rows; ++i) {
    std::int32_t di;
    std::memcpy(&di, f.data + static_cast<std::uint64_t>(i) * l.record, 4);
    if (di != d)
      throw FileError(path + " is not a valid ." + format + " file: vector " + std::to_string(i) + " has dimension " +
                      std::to_string(di) + ", the first has " + std::to_string(d));
  }
  return l;
}

template <typename T>
void write_vecs(const std::string& path, const T* data, std::int64_t rows, std::int64_t cols) {
  if (rows < 0 || cols <= 0 || cols > kMaxDim)
    throw Error(ErrorKind::invalid_argument, "write_vecs: cannot write " + std::to_string(rows) + " x " +
                                                 std::to_string(cols) + " vectors");
  AtomicFile f(path);
  const std::int32_t d = static_cast<std::int32_t>(cols);
  for (std::int64_t i = 0; i < rows; ++i) {
    f.write(&d, 4);
    f.write(data + i * cols, static_cast<std::size_t>(cols) * sizeof(T));
  }
  f.commit();
}

}  // namespace

Dataset read_vecs_dataset(const Input& file, Format format) {
  const std::string& path = file.name;
  Dataset ds;
  TensorView& v = ds.view;
  v.dtype = DType::float32, v.batch = 1, v.col_stride = 1;
  if (format == Format::fvecs) {
    const VecsLayout l = scan(file, 4, "fvecs");
    // Dimension words and values are both 4 bytes: the vectors are rows with a stride of d + 1.
    v.data = file.data + 4;
    v.rows = l.rows, v.cols = l.cols, v.row_stride = l.cols + 1, v.batch_stride = v.rows * v.row_stride;
    ds.storage = file.owner, ds.mapped = true;
    ds.source = path + " (fvecs)";
    return ds;
  }
  const bool bytes = format == Format::bvecs;
  const VecsLayout l = scan(file, bytes ? 1 : 4, bytes ? "bvecs" : "ivecs");
  auto buf = std::make_shared<std::vector<float>>(static_cast<std::size_t>(l.rows * l.cols));
  for (std::int64_t i = 0; i < l.rows; ++i) {
    const unsigned char* rec = file.data + static_cast<std::uint64_t>(i) * l.record + 4;
    float* out = buf->data() + i * l.cols;
    for (std::int64_t j = 0; j < l.cols; ++j) {
      if (bytes) {
        out[j] = rec[j];
      } else {
        std::int32_t x;
        std::memcpy(&x, rec + 4 * j, 4);
        out[j] = static_cast<float>(x);
      }
    }
  }
  v.data = buf->data();
  v.rows = l.rows, v.cols = l.cols, v.row_stride = l.cols, v.batch_stride = l.rows * l.cols;
  ds.storage = buf;
  ds.source = path + (bytes ? " (bvecs, uint8 converted to float32)" : " (ivecs, int32 converted to float32)");
  return ds;
}

IntMatrix read_ivecs(const std::string& path) { return read_ivecs(Input::map(path)); }

IntMatrix read_ivecs(const Input& file) {
  const VecsLayout l = scan(file, 4, "ivecs");
  IntMatrix m;
  m.rows = l.rows, m.cols = l.cols;
  m.values.resize(static_cast<std::size_t>(l.rows * l.cols));
  for (std::int64_t i = 0; i < l.rows; ++i)
    std::memcpy(m.values.data() + i * l.cols, file.data + static_cast<std::uint64_t>(i) * l.record + 4,
                static_cast<std::size_t>(l.cols) * 4);
  return m;
}

void write_fvecs(const std::string& path, const float* data, std::int64_t rows, std::int64_t cols) {
  write_vecs(path, data, rows, cols);
}
void write_bvecs(const std::string& path, const std::uint8_t* data, std::int64_t rows, std::int64_t cols) {
  write_vecs(path, data, rows, cols);
}
void write_ivecs(const std::string& path, const std::int32_t* data, std::int64_t rows, std::int64_t cols) {
  write_vecs(path, data, rows, cols);
}

}  // namespace flashkmeans::io
