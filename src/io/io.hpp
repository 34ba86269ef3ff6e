// Readers and writers for the data files of the command-line tool: NumPy .npy, the ANN-benchmark
// .fvecs/.bvecs/.ivecs, CSV and raw float32. Every malformed, truncated or hostile file throws
// flashkmeans::io::FileError (a flashkmeans::Error) naming the file and what was wrong; sizes in a
// header are checked against the file's size before anything is allocated or mapped. Writers write
// a temporary file next to the destination and rename it, so a failed write leaves no partial file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "flashkmeans/errors.hpp"
#include "flashkmeans/tensor.hpp"
#include "flashkmeans/types.hpp"

namespace flashkmeans::io {

/// A file that cannot be read as what it claims to be (missing, truncated, malformed, wrong type).
class FileError : public Error {
 public:
  explicit FileError(const std::string& message) : Error(ErrorKind::invalid_argument, message) {}
};

/// A whole file mapped read-only into memory (pages are loaded on demand and can be dropped by the
/// kernel, so a large input costs address space, not memory). An empty file maps to size 0.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const unsigned char* data() const { return data_; }
  std::uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const unsigned char* data_ = nullptr;
  std::uint64_t size_ = 0;
};

/// The bytes of an input: a memory-mapped file (Input::map) or a copy in memory (Input::copy, for
/// data that never was a file, tests, and the fuzz targets, whose exact-size heap copy lets
/// AddressSanitizer catch a read one byte past the end). Readers parse these bytes; a Dataset that
/// views them holds `owner`, which keeps them alive.
struct Input {
  const unsigned char* data = nullptr;
  std::uint64_t size = 0;
  std::string name;                   ///< the path, or a name for messages
  std::shared_ptr<const void> owner;  ///< keeps data alive (a MappedFile, or the copied bytes)

  /// The file at path, mapped read-only (MappedFile); FileError if it cannot be opened or mapped.
  static Input map(const std::string& path);
  /// A copy of size bytes at data, named name in messages.
  static Input copy(const std::string& name, const void* data, std::size_t size);
};

/// The file formats, chosen from a path's extension by format_from_path (or named explicitly).
enum class Format { npy, fvecs, bvecs, ivecs, csv, raw };

/// .npy, .fvecs, .bvecs, .ivecs, .csv/.txt, .f32/.bin/.raw (raw float32). Throws FileError otherwise.
Format format_from_path(const std::string& path);
/// "npy", "fvecs", "bvecs", "ivecs", "csv" or "raw"; throws Error(invalid_argument) otherwise.
Format parse_format(const std::string& name);
const char* to_string(Format);

/// How to read a data file.
struct ReadOptions {
  /// .npy arrays of uint16 ('<u2') hold bfloat16 bits only when the caller says so.
  bool uint16_is_bfloat16 = false;
  /// .npy: accept a 3-D array (B, N, D) as B independent batches; otherwise only 1-D and 2-D.
  bool allow_batch = false;
  /// CSV: -1 detects a header (a first line with a field that is not a number), 0 no, 1 yes.
  int csv_header = -1;
  /// raw: the shape (N, D) (B = 1); the file must hold exactly N * D float32 values.
  std::int64_t raw_rows = 0, raw_cols = 0;
};

/// Points read from a file: a (B, N, D) view into the input's bytes, i.e. the memory-mapped file
/// (float32, float16 and bfloat16 .npy, .fvecs, raw float32: no copy) or into owned memory
/// (converted formats).
struct Dataset {
  TensorView view;        ///< host memory; strides may differ from C order (.fvecs, Fortran .npy)
  bool mapped = false;    ///< true when view points into the input's bytes (for a file: its mapping)
  std::string source;     ///< what the data was read from, for messages (path and format)
  std::shared_ptr<const void> storage;  ///< keeps the mapping or the owned buffer alive
};

/// Reads points from path in the given format (or the one its extension names).
Dataset read_dataset(const std::string& path, Format format, const ReadOptions& options = {});
Dataset read_dataset(const std::string& path, const ReadOptions& options = {});
/// Reads points from bytes already at hand (the format must be named).
Dataset read_dataset(const Input& input, Format format, const ReadOptions& options = {});

/// An int32 matrix read from an .ivecs file (e.g. ground-truth neighbours), C order.
struct IntMatrix {
  std::int64_t rows = 0, cols = 0;
  std::vector<std::int32_t> values;
};
IntMatrix read_ivecs(const std::string& path);
IntMatrix read_ivecs(const Input& input);

/// A .npy array loaded into memory, for outputs read back (labels, centroids).
struct NpyArray {
  std::string descr;                 ///< NumPy's type string, e.g. "<f4", "<i4"
  std::vector<std::int64_t> shape;
  std::vector<unsigned char> bytes;  ///< C order, little-endian
};
NpyArray read_npy(const std::string& path);
NpyArray read_npy(const Input& input);

/// Writes a C-order .npy file (format version 1.0, or 2.0 if the header needs it).
void write_npy(const std::string& path, const float* data, const std::vector<std::int64_t>& shape);
void write_npy(const std::string& path, const std::int32_t* data, const std::vector<std::int64_t>& shape);
void write_npy(const std::string& path, const std::uint16_t* data, const std::vector<std::int64_t>& shape);

/// Writers of the other formats (tests and format conversion). rows * cols values, C order.
void write_fvecs(const std::string& path, const float* data, std::int64_t rows, std::int64_t cols);
void write_bvecs(const std::string& path, const std::uint8_t* data, std::int64_t rows, std::int64_t cols);
void write_ivecs(const std::string& path, const std::int32_t* data, std::int64_t rows, std::int64_t cols);
void write_csv(const std::string& path, const float* data, std::int64_t rows, std::int64_t cols,
               const std::vector<std::string>& header = {});

/// An output file that is written in full or not at all: bytes go to a temporary file in the same
/// directory, which commit() renames onto the destination; without commit() it is removed.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(const void* data, std::size_t size);
  void commit();

 private:
  std::string path_, temp_;
  int fd_ = -1;
};

/// An output file that could not be written (missing directory, no permission, disk full).
class WriteError : public Error {
 public:
  explicit WriteError(const std::string& message) : Error(ErrorKind::invalid_argument, message) {}
};

/// Writes bytes to path through an AtomicFile.
void write_file_atomic(const std::string& path, const void* data, std::size_t size);

/// A small JSON object writer for summaries: keys in insertion order, values already encoded.
class JsonObject {
 public:
  JsonObject& add(const std::string& key, const std::string& value);  ///< a string
  JsonObject& add(const std::string& key, const char* value);
  JsonObject& add(const std::string& key, double value);
  JsonObject& add(const std::string& key, std::int64_t value);
  JsonObject& add(const std::string& key, int value) { return add(key, static_cast<std::int64_t>(value)); }
  JsonObject& add(const std::string& key, bool value);
  JsonObject& add(const std::string& key, const std::vector<double>& values);
  JsonObject& add(const std::string& key, const std::vector<std::int64_t>& values);
  JsonObject& add_object(const std::string& key, const JsonObject& value);
  std::string str() const;  ///< pretty-printed, ends with a newline

 private:
  JsonObject& raw(const std::string& key, const std::string& encoded);
  std::vector<std::pair<std::string, std::string>> fields_;
};
std::string json_quote(const std::string& s);

/// float32 to float16 / bfloat16 bits, rounding to nearest even.
std::uint16_t float_to_half(float f);
std::uint16_t float_to_bfloat16(float f);

}  // namespace flashkmeans::io
