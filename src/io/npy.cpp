// NumPy .npy files (format versions 1.0, 2.0 and 3.0): the header parser, the reader (a view into
// the mapped file for float32, float16 and flagged bfloat16) and the writer.
#include <cstring>
#include <limits>

#include "io/io.hpp"
#include "io/internal.hpp"

namespace flashkmeans::io {

namespace {

constexpr unsigned char kMagic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
// Larger headers are not written by NumPy (its own limit is 10 KiB for reading by default).
constexpr std::uint32_t kMaxHeader = 1u << 20;

struct NpyHeader {
  std::string descr;
  bool fortran_order = false;
  std::vector<std::int64_t> shape;
  std::uint64_t data_offset = 0;
  std::uint64_t count = 0;  ///< product of shape
};

// A parser of the header's Python dict literal, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (1000, 128), }
class DictParser {
 public:
  DictParser(const std::string& text, const std::string& path) : s_(text), path_(path) {}

  NpyHeader parse() {
    NpyHeader h;
    bool have_descr = false, have_order = false, have_shape = false;
    skip();
    expect('{');
    while (true) {
      skip();
      if (peek() == '}') break;
      const std::string key = string_literal();
      skip();
      expect(':');
      skip();
      if (key == "descr") {
        if (peek() != '\'' && peek() != '"')
          fail("the element type ('descr') is a structured type; only plain numeric arrays are read");
        h.descr = string_literal(), have_descr = true;
      } else if (key == "fortran_order") {
        h.fortran_order = boolean(), have_order = true;
      } else if (key == "shape") {
        h.shape = tuple(), have_shape = true;
      } else {
        fail("unexpected key '" + key + "' in the header");
      }
      skip();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      skip();
      if (peek() != '}') fail("expected ',' or '}' in the header");
    }
    ++i_;
    if (!have_descr || !have_order || !have_shape)
      fail("the header lacks one of 'descr', 'fortran_order', 'shape'");
    return h;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw FileError(path_ + " is not a valid .npy file: " + what);
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "' at byte " + std::to_string(i_) + " of the header");
    ++i_;
  }
  std::string string_literal() {
    const char q = peek();
    if (q != '\'' && q != '"') fail("expected a quoted string at byte " + std::to_string(i_) + " of the header");
    ++i_;
    const std::size_t start = i_;
    while (i_ < s_.size() && s_[i_] != q) {
      if (s_[i_] == '\\') fail("escapes in header strings are not supported");
      ++i_;
    }
    if (i_ >= s_.size()) fail("unterminated string in the header");
    return s_.substr(start, i_++ - start);
  }
  bool boolean() {
    if (s_.compare(i_, 4, "True") == 0) return i_ += 4, true;
    if (s_.compare(i_, 5, "False") == 0) return i_ += 5, false;
    fail("'fortran_order' must be True or False");
  }
  std::vector<std::int64_t> tuple() {
    std::vector<std::int64_t> dims;
    expect('(');
    while (true) {
      skip();
      if (peek() == ')') break;
      if (peek() < '0' || peek() > '9') fail("'shape' must be a tuple of non-negative integers");
      std::int64_t v = 0;
      while (peek() >= '0' && peek() <= '9') {
        if (v > (std::numeric_limits<std::int64_t>::max() - 9) / 10) fail("a dimension of 'shape' is too large");
        v = v * 10 + (s_[i_++] - '0');
      }
      if (peek() == 'L') ++i_;  // Python 2 longs
      dims.push_back(v);
      if (dims.size() > 32) fail("'shape' has more than 32 dimensions");
      skip();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      if (peek() != ')') fail("expected ',' or ')' in 'shape'");
    }
    ++i_;
    return dims;
  }

  const std::string& s_;
  const std::string& path_;
  std::size_t i_ = 0;
};

std::uint32_t read_le32(const unsigned char* p) {
  return std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16 | std::uint32_t(p[3]) << 24;
}

// Parses the preamble and header of a .npy file and checks the data size against the file.
NpyHeader parse_header(const Input& f) {
  const std::string& path = f.name;
  const unsigned char* p = f.data;
  if (f.size < 10 || std::memcmp(p, kMagic, 6) != 0)
    throw FileError(path + " is not a .npy file: it does not start with the NumPy magic bytes");
  const int major = p[6];
  std::uint64_t header_len, preamble;
  if (major == 1) {
    header_len = std::uint32_t(p[8]) | std::uint32_t(p[9]) << 8, preamble = 10;
  } else if (major == 2 || major == 3) {
    if (f.size < 12) throw FileError(path + " is truncated: the .npy preamble is incomplete");
    header_len = read_le32(p + 8), preamble = 12;
  } else {
    throw FileError(path + ": .npy format version " + std::to_string(major) + "." + std::to_string(p[7]) +
                    " is not supported (expected 1.x, 2.x or 3.x)");
  }
  if (header_len > kMaxHeader)
    throw FileError(path + " is not a valid .npy file: its header claims " + std::to_string(header_len) +
                    " bytes (at most " + std::to_string(kMaxHeader) + " are accepted)");
  if (preamble + header_len > f.size)
    throw FileError(path + " is truncated: the .npy header claims " + std::to_string(header_len) +
                    " bytes, the file has " + std::to_string(f.size - preamble) + " after the preamble");
  const std::string text(reinterpret_cast<const char*>(p + preamble), header_len);
  NpyHeader h = DictParser(text, path).parse();
  h.data_offset = preamble + header_len;

  // The product of the non-zero dimensions must fit as well: an empty array (one dimension 0)
  // still has its other dimensions multiplied into strides.
  std::uint64_t extent = 1;
  bool empty = false;
  for (std::int64_t dim : h.shape) {
    const auto u = static_cast<std::uint64_t>(dim);
    if (u == 0) {
      empty = true;
      continue;
    }
    if (extent > std::numeric_limits<std::uint64_t>::max() / 16 / u)
      throw FileError(path + " is not a valid .npy file: its shape " + shape_string(h.shape) +
                      " has more elements than any file can hold");
    extent *= u;
  }
  const std::uint64_t count = empty ? 0 : extent;
  h.count = count;
  const std::size_t item = descr_item_size(h.descr);
  if (item == 0) return h;  // unknown type: the caller says which it wanted
  const std::uint64_t need = count * item, have = f.size - h.data_offset;
  if (have < need)
    throw FileError(path + " is truncated: shape " + shape_string(h.shape) + " of '" + h.descr + "' needs " +
                    std::to_string(need) + " bytes of data, the file has " + std::to_string(have));
  if (have > need)
    throw FileError(path + " is not a valid .npy file: shape " + shape_string(h.shape) + " of '" + h.descr +
                    "' needs " + std::to_string(need) + " bytes of data, the file has " + std::to_string(have) +
                    " (trailing bytes)");
  return h;
}

std::string npy_header(const char* descr, const std::vector<std::int64_t>& shape) {
  std::string dict = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': (";
  for (std::size_t i = 0; i < shape.size(); ++i) dict += std::to_string(shape[i]) + (i + 1 < shape.size() ? ", " : "");
  if (shape.size() == 1) dict += ",";
  dict += "), }";
  // Pad with spaces and a newline so that the data starts at a multiple of 64 bytes.
  std::size_t preamble = 10;
  if (dict.size() + 1 + preamble > 65535) preamble = 12;
  const std::size_t total = (preamble + dict.size() + 1 + 63) / 64 * 64;
  dict.append(total - preamble - dict.size() - 1, ' ');
  dict += '\n';
  std::string out(reinterpret_cast<const char*>(kMagic), 6);
  const std::size_t len = dict.size();
  if (preamble == 10) {
    out += '\x01', out += '\x00';
    out += static_cast<char>(len & 0xff), out += static_cast<char>(len >> 8);
  } else {
    out += '\x02', out += '\x00';
    for (int b = 0; b < 4; ++b) out += static_cast<char>((len >> (8 * b)) & 0xff);
  }
  return out + dict;
}

template <typename T>
void write_npy_impl(const std::string& path, const char* descr, const T* data, const std::vector<std::int64_t>& shape) {
  std::uint64_t count = 1;
  for (std::int64_t d : shape) {
    if (d < 0) throw Error(ErrorKind::invalid_argument, "write_npy: negative dimension in " + shape_string(shape));
    count *= static_cast<std::uint64_t>(d);
  }
  const std::string header = npy_header(descr, shape);
  AtomicFile f(path);
  f.write(header.data(), header.size());
  if (count > 0) f.write(data, count * sizeof(T));
  f.commit();
}

}  // namespace

std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) s += std::to_string(shape[i]) + (i + 1 < shape.size() ? ", " : "");
  return s + (shape.size() == 1 ? ",)" : ")");
}

std::size_t descr_item_size(const std::string& descr) {
  if (descr.size() < 3) return 0;
  const char order = descr[0], kind = descr[1];
  if (order != '<' && order != '|' && order != '=' && order != '>') return 0;
  if (kind != 'f' && kind != 'i' && kind != 'u' && kind != 'b') return 0;
  const std::string digits = descr.substr(2);
  if (digits == "1") return 1;
  if (digits == "2") return 2;
  if (digits == "4") return 4;
  if (digits == "8") return 8;
  return 0;
}

Dataset read_npy_dataset(const Input& input, const ReadOptions& options) {
  const std::string& path = input.name;
  const NpyHeader h = parse_header(input);
  const std::string& d = h.descr;
  if (d.size() >= 2 && d[0] == '>' && descr_item_size(d) > 1)
    throw FileError(path + ": big-endian data ('" + d + "') is not supported; convert it with "
                    "a.astype(a.dtype.newbyteorder('<'))");
  DType dtype;
  bool to_float32 = false;
  if (d == "<f4" || d == "=f4") {
    dtype = DType::float32;
  } else if (d == "<f2" || d == "=f2") {
    dtype = DType::float16;
  } else if (d == "<u2" || d == "=u2") {
    if (!options.uint16_is_bfloat16)
      throw FileError(path + " holds uint16 values ('" + d + "'): if they are bfloat16 bits, say so "
                      "(--dtype bfloat16); integer data is not clustered");
    dtype = DType::bfloat16;
  } else if (d == "<f8" || d == "=f8") {
    dtype = DType::float32, to_float32 = true;
  } else {
    throw FileError(path + " holds '" + d + "' values: expected float32 ('<f4'), float16 ('<f2'), float64 "
                    "('<f8', converted to float32) or bfloat16 bits as uint16 ('<u2')");
  }

  const std::size_t nd = h.shape.size();
  if (nd == 0 || nd > 3)
    throw FileError(path + " holds an array of shape " + shape_string(h.shape) +
                    ": expected (N, D), (N,) or, for batches, (B, N, D)");
  if (nd == 3 && !options.allow_batch)
    throw FileError(path + " holds a 3-D array " + shape_string(h.shape) +
                    ": read it as (B, N, D) batches (--batch-dim), or reshape it to (N, D)");
  std::int64_t dims[3] = {1, 1, 1};  // B, N, D
  if (nd == 1) dims[1] = h.shape[0];
  if (nd == 2) dims[1] = h.shape[0], dims[2] = h.shape[1];
  if (nd == 3) dims[0] = h.shape[0], dims[1] = h.shape[1], dims[2] = h.shape[2];
  // Element strides of the stored order: C order (last index fastest) or Fortran (first fastest).
  std::int64_t strides[3];
  if (!h.fortran_order) {
    strides[2] = 1, strides[1] = dims[2], strides[0] = dims[1] * dims[2];
  } else if (nd == 3) {
    strides[0] = 1, strides[1] = dims[0], strides[2] = dims[0] * dims[1];
  } else {
    strides[0] = dims[1] * dims[2], strides[1] = 1, strides[2] = dims[1];
  }

  Dataset ds;
  ds.source = path + " (npy, '" + d + "'" + (h.fortran_order ? ", Fortran order" : "") + ")";
  TensorView& v = ds.view;
  v.dtype = dtype;
  v.batch = dims[0], v.rows = dims[1], v.cols = dims[2];
  v.batch_stride = strides[0], v.row_stride = strides[1], v.col_stride = strides[2];
  const unsigned char* data = input.data + h.data_offset;
  const std::size_t item = descr_item_size(d);
  if (to_float32) {
    auto buf = std::make_shared<std::vector<float>>();
    buf->resize(static_cast<std::size_t>(h.count));
    for (std::uint64_t i = 0; i < h.count; ++i) {
      double x;
      std::memcpy(&x, data + i * 8, 8);
      (*buf)[i] = static_cast<float>(x);
    }
    v.data = buf->data();
    ds.storage = buf;
  } else if (reinterpret_cast<std::uintptr_t>(data) % item != 0) {
    // A header of unusual length leaves the data unaligned: copy it to aligned memory.
    auto buf = std::make_shared<std::vector<std::uint32_t>>((h.count * item + 3) / 4);
    if (h.count > 0) std::memcpy(buf->data(), data, h.count * item);  // an empty vector's data() may be null
    v.data = buf->data();
    ds.storage = buf;
  } else {
    v.data = data;
    ds.storage = input.owner;
    ds.mapped = true;
  }
  return ds;
}

NpyArray read_npy(const std::string& path) { return read_npy(Input::map(path)); }

NpyArray read_npy(const Input& file) {
  const std::string& path = file.name;
  const NpyHeader h = parse_header(file);
  if (descr_item_size(h.descr) == 0)
    throw FileError(path + " holds '" + h.descr + "' values: expected a plain numeric type");
  if (h.fortran_order) throw FileError(path + " is stored in Fortran order: expected C order");
  NpyArray a;
  a.descr = h.descr, a.shape = h.shape;
  const std::uint64_t bytes = h.count * descr_item_size(h.descr);
  a.bytes.assign(file.data + h.data_offset, file.data + h.data_offset + bytes);
  return a;
}

void write_npy(const std::string& path, const float* data, const std::vector<std::int64_t>& shape) {
  write_npy_impl(path, "<f4", data, shape);
}
void write_npy(const std::string& path, const std::int32_t* data, const std::vector<std::int64_t>& shape) {
  write_npy_impl(path, "<i4", data, shape);
}
void write_npy(const std::string& path, const std::uint16_t* data, const std::vector<std::int64_t>& shape) {
  write_npy_impl(path, "<u2", data, shape);
}

}  // namespace flashkmeans::io
