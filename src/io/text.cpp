// CSV and raw float32 inputs, the CSV and JSON writers, float16/bfloat16 rounding, and the choice
// of reader.
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "io/internal.hpp"

namespace flashkmeans::io {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t'; }

// Splits [begin, end) at commas and parses every field as a float. Returns false on the first
// field that is not a number (its text in bad).
bool parse_fields(const char* begin, const char* end, std::vector<float>& out, std::string& bad) {
  const char* p = begin;
  while (true) {
    const char* comma = static_cast<const char*>(std::memchr(p, ',', static_cast<std::size_t>(end - p)));
    const char* field_end = comma ? comma : end;
    const char* a = p;
    const char* b = field_end;
    while (a < b && is_space(*a)) ++a;
    while (b > a && is_space(b[-1])) --b;
    if (a < b && *a == '+') ++a;
    float v = 0;
    const auto r = std::from_chars(a, b, v);
    // Out-of-range values are an error; so are empty fields.
    if (a == b || r.ec != std::errc() || r.ptr != b) {
      bad.assign(p, field_end);
      return false;
    }
    out.push_back(v);
    if (!comma) return true;
    p = comma + 1;
  }
}

}  // namespace

Dataset read_csv_dataset(const Input& file, const ReadOptions& options) {
  const std::string& path = file.name;
  const char* p = reinterpret_cast<const char*>(file.data);
  const char* end = p + file.size;
  auto buf = std::make_shared<std::vector<float>>();
  std::int64_t cols = -1, rows = 0, line_no = 0;
  bool first = true;
  std::string bad;
  while (p < end) {
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
    const char* line_end = nl ? nl : end;
    const char* next = nl ? nl + 1 : end;
    ++line_no;
    const char* e = line_end;
    if (e > p && e[-1] == '\r') --e;
    const char* s = p;
    while (s < e && is_space(*s)) ++s;
    p = next;
    if (s == e) continue;  // blank line
    if (first && options.csv_header == 1) {
      first = false;
      continue;
    }
    const std::size_t before = buf->size();
    if (!parse_fields(s, e, *buf, bad)) {
      if (first && options.csv_header == -1) {  // a header line
        buf->resize(before);
        first = false;
        continue;
      }
      throw FileError(path + ": line " + std::to_string(line_no) + ": '" + bad + "' is not a number");
    }
    first = false;
    const auto n = static_cast<std::int64_t>(buf->size() - before);
    if (cols < 0) cols = n;
    if (n != cols)
      throw FileError(path + ": line " + std::to_string(line_no) + " has " + std::to_string(n) +
                      " values, the first row has " + std::to_string(cols));
    ++rows;
  }
  if (rows == 0) throw FileError(path + " holds no rows of numbers");
  Dataset ds;
  TensorView& v = ds.view;
  v.data = buf->data(), v.dtype = DType::float32;
  v.batch = 1, v.rows = rows, v.cols = cols;
  v.batch_stride = rows * cols, v.row_stride = cols, v.col_stride = 1;
  ds.storage = buf;
  ds.source = path + " (csv)";
  return ds;
}

void check_raw_shape(const std::string& name, const ReadOptions& options) {
  if (options.raw_rows <= 0 || options.raw_cols <= 0)
    throw Error(ErrorKind::invalid_argument, "raw float32 input " + name +
                                                 " needs its shape: N and D, both positive (e.g. --shape 1000,128)");
}

Dataset read_raw_dataset(const Input& file, const ReadOptions& options) {
  const std::string& path = file.name;
  check_raw_shape(path, options);
  const std::int64_t n = options.raw_rows, d = options.raw_cols;
  if (static_cast<std::uint64_t>(n) > std::numeric_limits<std::uint64_t>::max() / 4 / static_cast<std::uint64_t>(d) ||
      static_cast<std::uint64_t>(n) * static_cast<std::uint64_t>(d) * 4 != file.size)
    throw FileError(path + " has " + std::to_string(file.size) + " bytes: a raw float32 array of shape (" +
                    std::to_string(n) + ", " + std::to_string(d) + ") has " +
                    std::to_string(static_cast<unsigned long long>(n) * static_cast<unsigned long long>(d) * 4));
  Dataset ds;
  TensorView& v = ds.view;
  v.data = file.data, v.dtype = DType::float32;
  v.batch = 1, v.rows = n, v.cols = d;
  v.batch_stride = n * d, v.row_stride = d, v.col_stride = 1;
  ds.storage = file.owner, ds.mapped = true;
  ds.source = path + " (raw float32)";
  return ds;
}

Dataset read_dataset(const Input& input, Format format, const ReadOptions& options) {
  switch (format) {
    case Format::npy: return read_npy_dataset(input, options);
    case Format::fvecs:
    case Format::bvecs:
    case Format::ivecs: return read_vecs_dataset(input, format);
    case Format::csv: return read_csv_dataset(input, options);
    case Format::raw: return read_raw_dataset(input, options);
  }
  throw Error(ErrorKind::invalid_argument, "unknown format");
}

Dataset read_dataset(const std::string& path, Format format, const ReadOptions& options) {
  // raw input needs its shape before anything is opened (a usage error, not a file error).
  if (format == Format::raw) check_raw_shape(path, options);
  return read_dataset(Input::map(path), format, options);
}

Dataset read_dataset(const std::string& path, const ReadOptions& options) {
  return read_dataset(path, format_from_path(path), options);
}

void write_csv(const std::string& path, const float* data, std::int64_t rows, std::int64_t cols,
               const std::vector<std::string>& header) {
  std::string out;
  for (std::size_t j = 0; j < header.size(); ++j) out += header[j] + (j + 1 < header.size() ? "," : "\n");
  char num[32];
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j) {
      const auto r = std::to_chars(num, num + sizeof num, data[i * cols + j]);  // shortest round trip
      out.append(num, r.ptr);
      out += j + 1 < cols ? ',' : '\n';
    }
  write_file_atomic(path, out.data(), out.size());
}

std::string json_quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\', out += static_cast<char>(c);
    } else if (c < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", c);
      out += esc;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

namespace {
std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest round trip
  return std::string(buf, r.ptr);
}
}  // namespace

JsonObject& JsonObject::raw(const std::string& key, const std::string& encoded) {
  fields_.emplace_back(key, encoded);
  return *this;
}
JsonObject& JsonObject::add(const std::string& key, const std::string& value) { return raw(key, json_quote(value)); }
JsonObject& JsonObject::add(const std::string& key, const char* value) { return raw(key, json_quote(value)); }
JsonObject& JsonObject::add(const std::string& key, double value) { return raw(key, json_number(value)); }
JsonObject& JsonObject::add(const std::string& key, std::int64_t value) { return raw(key, std::to_string(value)); }
JsonObject& JsonObject::add(const std::string& key, bool value) { return raw(key, value ? "true" : "false"); }
JsonObject& JsonObject::add(const std::string& key, const std::vector<double>& values) {
  std::string s = "[";
  for (std::size_t i = 0; i < values.size(); ++i) s += (i ? ", " : "") + json_number(values[i]);
  return raw(key, s + "]");
}
JsonObject& JsonObject::add(const std::string& key, const std::vector<std::int64_t>& values) {
  std::string s = "[";
  for (std::size_t i = 0; i < values.size(); ++i) s += (i ? ", " : "") + std::to_string(values[i]);
  return raw(key, s + "]");
}
JsonObject& JsonObject::add_object(const std::string& key, const JsonObject& value) {
  std::string s = value.str();
  s.pop_back();  // the trailing newline
  std::string indented;
  for (char c : s) indented += c == '\n' ? std::string("\n  ") : std::string(1, c);
  return raw(key, indented);
}
std::string JsonObject::str() const {
  std::string s = "{";
  for (std::size_t i = 0; i < fields_.size(); ++i)
    s += std::string(i ? ",\n  " : "\n  ") + json_quote(fields_[i].first) + ": " + fields_[i].second;
  return s + (fields_.empty() ? "}\n" : "\n}\n");
}

std::uint16_t float_to_bfloat16(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}

std::uint16_t float_to_half(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  const std::uint32_t sign = (u >> 16) & 0x8000u;
  const std::uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u);  // NaN
  if (a >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // overflow (rounds to inf)
  if (a < 0x38800000u) {                                                     // subnormal or zero in half
    // Scale so that the half subnormal unit (2^-24) becomes 1, and round to nearest even.
    float m;
    const std::uint32_t abs_bits = a;
    std::memcpy(&m, &abs_bits, 4);
    const float scaled = m * 16777216.0f;  // exact: a power of two
    return static_cast<std::uint16_t>(sign | static_cast<std::uint32_t>(std::nearbyint(scaled)));
  }
  std::uint32_t h = ((a >> 13) - (112u << 10));
  const std::uint32_t rest = a & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return static_cast<std::uint16_t>(sign | h);
}

}  // namespace flashkmeans::io
