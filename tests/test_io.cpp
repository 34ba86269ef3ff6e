// The data-file readers and writers of src/io: round trips of every format, and truncated,
// wrong-typed and hostile files (every one a FileError, never a crash or a huge allocation).
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "io/io.hpp"

namespace fs = std::filesystem;
using namespace flashkmeans;

namespace {

class IoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("fk_test_io_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  void write_bytes(const std::string& name, const std::string& bytes) const {
    std::ofstream(path(name), std::ios::binary) << bytes;
  }
  std::string read_bytes(const std::string& name) const {
    std::ifstream f(path(name), std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  fs::path dir_;
};

std::vector<float> sample(std::int64_t n, std::int64_t d) {
  std::vector<float> x(static_cast<std::size_t>(n * d));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 97) * 0.25f - 7.0f;
  return x;
}

float at(const TensorView& v, std::int64_t b, std::int64_t i, std::int64_t j) {
  EXPECT_EQ(v.dtype, DType::float32);
  return static_cast<const float*>(v.data)[b * v.batch_stride + i * v.row_stride + j * v.col_stride];
}

void expect_same(const io::Dataset& ds, const std::vector<float>& x, std::int64_t n, std::int64_t d) {
  ASSERT_EQ(ds.view.batch, 1);
  ASSERT_EQ(ds.view.rows, n);
  ASSERT_EQ(ds.view.cols, d);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < d; ++j) ASSERT_EQ(at(ds.view, 0, i, j), x[i * d + j]) << i << "," << j;
}

// A .npy file with the given header dict and data bytes (format version 1.0, unpadded).
std::string npy_bytes(const std::string& dict, const std::string& data, int major = 1) {
  std::string s("\x93NUMPY", 6);
  s += static_cast<char>(major), s += '\0';
  const std::size_t len = dict.size();
  if (major == 1) {
    s += static_cast<char>(len & 0xff), s += static_cast<char>(len >> 8);
  } else {
    for (int b = 0; b < 4; ++b) s += static_cast<char>((len >> (8 * b)) & 0xff);
  }
  return s + dict + data;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const io::FileError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("not a FileError: ") + e.what();
  }
  return "no error";
}

}  // namespace

TEST_F(IoTest, NpyRoundTripFloat32IsMapped) {
  const auto x = sample(37, 5);
  io::write_npy(path("x.npy"), x.data(), {37, 5});
  const io::Dataset ds = io::read_dataset(path("x.npy"));
  EXPECT_TRUE(ds.mapped);
  expect_same(ds, x, 37, 5);
  const io::NpyArray a = io::read_npy(path("x.npy"));
  EXPECT_EQ(a.descr, "<f4");
  EXPECT_EQ(a.shape, (std::vector<std::int64_t>{37, 5}));
  // The data starts at a multiple of 64 bytes, as NumPy writes it.
  EXPECT_EQ((read_bytes("x.npy").size() - x.size() * 4) % 64, 0u);
}

TEST_F(IoTest, NpyInt32AndOneDimensional) {
  const std::vector<std::int32_t> labels = {3, 1, 4, 1, 5};
  io::write_npy(path("l.npy"), labels.data(), {5});
  const io::NpyArray a = io::read_npy(path("l.npy"));
  EXPECT_EQ(a.descr, "<i4");
  ASSERT_EQ(a.shape, (std::vector<std::int64_t>{5}));
  ASSERT_EQ(a.bytes.size(), 20u);
  EXPECT_EQ(std::memcmp(a.bytes.data(), labels.data(), 20), 0);
  EXPECT_NE(read_bytes("l.npy").find("'shape': (5,)"), std::string::npos);
}

TEST_F(IoTest, NpyFloat16AndBfloat16) {
  std::vector<std::uint16_t> h = {io::float_to_half(1.5f), io::float_to_half(-2.0f), io::float_to_half(0.0f),
                                  io::float_to_half(65504.0f)};
  EXPECT_EQ(h[0], 0x3e00);
  EXPECT_EQ(h[1], 0xc000);
  EXPECT_EQ(h[3], 0x7bff);
  EXPECT_EQ(io::float_to_half(1e-7f), 0x0002);  // subnormal: 1e-7 / 2^-24 = 1.68 -> 2
  EXPECT_EQ(io::float_to_bfloat16(1.0f), 0x3f80);
  EXPECT_EQ(io::float_to_bfloat16(1.00390625f), 0x3f80);  // a tie rounds to even
  // A float16 file: '<f2'.
  std::string data(reinterpret_cast<const char*>(h.data()), 8);
  write_bytes("h.npy", npy_bytes("{'descr': '<f2', 'fortran_order': False, 'shape': (2, 2), }   \n", data));
  const io::Dataset ds = io::read_dataset(path("h.npy"));
  EXPECT_EQ(ds.view.dtype, DType::float16);
  EXPECT_EQ(static_cast<const std::uint16_t*>(ds.view.data)[0], 0x3e00);
  // uint16 is bfloat16 only when flagged.
  io::write_npy(path("b.npy"), h.data(), {2, 2});
  EXPECT_NE(error_of([&] { io::read_dataset(path("b.npy")); }).find("bfloat16"), std::string::npos);
  io::ReadOptions ro;
  ro.uint16_is_bfloat16 = true;
  EXPECT_EQ(io::read_dataset(path("b.npy"), ro).view.dtype, DType::bfloat16);
}

TEST_F(IoTest, NpyVersions2And3FortranOrderAndFloat64) {
  const auto x = sample(4, 3);
  std::string f_order;  // column-major bytes
  for (int j = 0; j < 3; ++j)
    for (int i = 0; i < 4; ++i) f_order.append(reinterpret_cast<const char*>(&x[i * 3 + j]), 4);
  for (int major : {2, 3}) {
    write_bytes("f.npy", npy_bytes("{'descr': '<f4', 'fortran_order': True, 'shape': (4, 3), }    \n", f_order, major));
    const io::Dataset ds = io::read_dataset(path("f.npy"));
    expect_same(ds, x, 4, 3);
  }
  std::string f64;
  for (float v : x) {
    const double dv = v;
    f64.append(reinterpret_cast<const char*>(&dv), 8);
  }
  write_bytes("d.npy", npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (4, 3), }\n", f64));
  const io::Dataset ds = io::read_dataset(path("d.npy"));
  EXPECT_FALSE(ds.mapped);
  expect_same(ds, x, 4, 3);
}

// Data that a header of unusual length leaves unaligned is copied; an empty array has nothing to
// copy (found by fuzz/fuzz_npy: the copy of zero bytes was made into a null buffer).
TEST_F(IoTest, NpyUnalignedData) {
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }";  // 10 + 57 bytes
  ASSERT_NE((10 + dict.size()) % 4, 0u);
  const float x[2] = {1.5f, -2.0f};
  write_bytes("u.npy", npy_bytes(dict, std::string(reinterpret_cast<const char*>(x), 8)));
  const io::Dataset ds = io::read_dataset(path("u.npy"));
  EXPECT_FALSE(ds.mapped);
  expect_same(ds, {1.5f, -2.0f}, 2, 1);
  write_bytes("e.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", ""));
  const io::Dataset empty = io::read_dataset(path("e.npy"));
  EXPECT_EQ(empty.view.rows, 0);
  EXPECT_EQ(empty.view.cols, 3);
}

TEST_F(IoTest, NpyBatchesNeedTheFlag) {
  const auto x = sample(2 * 3 * 4, 1);
  io::write_npy(path("b.npy"), x.data(), {2, 3, 4});
  EXPECT_NE(error_of([&] { io::read_dataset(path("b.npy")); }).find("3-D"), std::string::npos);
  io::ReadOptions ro;
  ro.allow_batch = true;
  const io::Dataset ds = io::read_dataset(path("b.npy"), ro);
  EXPECT_EQ(ds.view.batch, 2);
  EXPECT_EQ(ds.view.rows, 3);
  EXPECT_EQ(ds.view.cols, 4);
  EXPECT_EQ(at(ds.view, 1, 2, 3), x[23]);
}

TEST_F(IoTest, NpyMalformedFilesAreFileErrors) {
  const std::string ok_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }\n";
  const std::string data(16, '\0');
  struct Case {
    const char* name;
    std::string bytes;
    const char* message;
  };
  std::string huge_header = npy_bytes(ok_dict, data, 2);
  huge_header[8] = '\xff', huge_header[9] = '\xff', huge_header[10] = '\xff', huge_header[11] = '\x7f';
  const std::vector<Case> cases = {
      {"empty", "", "magic"},
      {"not npy", "hello world, this is text", "magic"},
      {"preamble only", std::string("\x93NUMPY\x01\x00", 8), "magic"},
      {"version 9", npy_bytes(ok_dict, data, 9), "version"},
      {"header past the end", npy_bytes(ok_dict, data).substr(0, 30), "truncated"},
      {"lying header length", huge_header, "header claims"},
      {"truncated data", npy_bytes(ok_dict, data.substr(0, 15)), "truncated"},
      {"trailing data", npy_bytes(ok_dict, data + "x"), "trailing"},
      {"int64", npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (2, 1), }\n", data), "'<i8'"},
      {"big endian", npy_bytes("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }\n", data), "big-endian"},
      {"structured", npy_bytes("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,), }\n", data),
       "structured"},
      {"unknown type", npy_bytes("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }\n", data), "'<c8'"},
      {"huge shape", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }\n", data),
       "more elements"},
      // An empty array whose other dimensions multiply past 64 bits (found by fuzz/fuzz_npy).
      {"huge empty shape",
       npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4611686018427387904, 4611686018427387904), }\n",
                 ""),
       "more elements"},
      {"lying shape", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000, 1000), }\n", data),
       "truncated"},
      {"overflowing number", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }\n", data),
       "too large"},
      {"negative dimension", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 2), }\n", data),
       "non-negative"},
      {"missing key", npy_bytes("{'descr': '<f4', 'shape': (2, 2), }\n", data), "lacks"},
      {"extra key", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), 'x': 1}\n", data),
       "unexpected key"},
      {"unterminated", npy_bytes("{'descr': '<f4", data), "unterminated"},
      {"garbage", npy_bytes("[1, 2, 3]", data), "expected '{'"},
      {"0-d", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (), }\n", std::string(4, '\0')), "shape ()"},
      {"4-d", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 2, 2), }\n", data), "expected (N, D)"},
  };
  for (const Case& c : cases) {
    write_bytes("bad.npy", c.bytes);
    const std::string msg = error_of([&] { io::read_dataset(path("bad.npy")); });
    EXPECT_NE(msg.find(c.message), std::string::npos) << c.name << ": " << msg;
    EXPECT_EQ(msg.find("not a FileError"), std::string::npos) << c.name << ": " << msg;
  }
}

TEST_F(IoTest, VecsRoundTrips) {
  const auto x = sample(9, 7);
  io::write_fvecs(path("x.fvecs"), x.data(), 9, 7);
  const io::Dataset f = io::read_dataset(path("x.fvecs"));
  EXPECT_TRUE(f.mapped);
  EXPECT_EQ(f.view.row_stride, 8);
  expect_same(f, x, 9, 7);

  std::vector<std::uint8_t> b(9 * 7);
  std::vector<float> bf(b.size());
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::uint8_t>(i * 37), bf[i] = b[i];
  io::write_bvecs(path("x.bvecs"), b.data(), 9, 7);
  expect_same(io::read_dataset(path("x.bvecs")), bf, 9, 7);

  std::vector<std::int32_t> iv(9 * 7);
  for (std::size_t i = 0; i < iv.size(); ++i) iv[i] = static_cast<std::int32_t>(i) - 20;
  io::write_ivecs(path("x.ivecs"), iv.data(), 9, 7);
  const io::IntMatrix m = io::read_ivecs(path("x.ivecs"));
  EXPECT_EQ(m.rows, 9);
  EXPECT_EQ(m.cols, 7);
  EXPECT_EQ(m.values, iv);
}

TEST_F(IoTest, VecsMalformedFilesAreFileErrors) {
  const auto x = sample(3, 4);
  io::write_fvecs(path("x.fvecs"), x.data(), 3, 4);
  const std::string good = read_bytes("x.fvecs");
  std::string mixed = good;
  mixed[20] = 5;  // the second vector's dimension word
  std::string zero = good;
  zero[0] = 0;
  std::string huge = good;
  huge[3] = 0x7f;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "empty"},          {good.substr(0, 2), "truncated"},           {good.substr(0, good.size() - 1), "whole number"},
      {mixed, "dimension 5"}, {zero, "dimension is 0"},                    {huge, "expected 1 to"},
  };
  for (const auto& [bytes, message] : cases) {
    write_bytes("bad.fvecs", bytes);
    const std::string msg = error_of([&] { io::read_dataset(path("bad.fvecs")); });
    EXPECT_NE(msg.find(message), std::string::npos) << msg;
    write_bytes("bad.ivecs", bytes);
    EXPECT_EQ(error_of([&] { io::read_ivecs(path("bad.ivecs")); }).find("not a FileError"), std::string::npos);
  }
  write_bytes("bad.bvecs", std::string("\x04\x00\x00\x00\x01\x02\x03", 7));
  EXPECT_NE(error_of([&] { io::read_dataset(path("bad.bvecs")); }).find("whole number"), std::string::npos);
}

TEST_F(IoTest, CsvRoundTripAndHeaders) {
  const auto x = sample(6, 3);
  io::write_csv(path("x.csv"), x.data(), 6, 3, {"a", "b", "c"});
  expect_same(io::read_dataset(path("x.csv")), x, 6, 3);  // header detected
  io::ReadOptions ro;
  ro.csv_header = 0;
  EXPECT_NE(error_of([&] { io::read_dataset(path("x.csv"), ro); }).find("line 1: 'a' is not a number"),
            std::string::npos);
  io::write_csv(path("n.csv"), x.data(), 6, 3);
  expect_same(io::read_dataset(path("n.csv")), x, 6, 3);
  ro.csv_header = 1;  // skips the first line even though it is numeric
  EXPECT_EQ(io::read_dataset(path("n.csv"), ro).view.rows, 5);
  write_bytes("w.csv", "1, 2.5 ,+3\r\n\n-4,5e1,6\r\n");
  expect_same(io::read_dataset(path("w.csv")), {1, 2.5f, 3, -4, 50, 6}, 2, 3);
}

TEST_F(IoTest, CsvMalformedFilesAreFileErrors) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "no rows"},       {"a,b\n", "no rows"},        {"1,2\n3\n", "line 2 has 1 values"},
      {"1,2\n3,x\n", "line 2: 'x'"}, {"1,2\n1,,2\n", "line 2"}, {"1,2\n1e999,3\n", "line 2: '1e999'"},
  };
  for (const auto& [text, message] : cases) {
    write_bytes("bad.csv", text);
    const std::string msg = error_of([&] { io::read_dataset(path("bad.csv")); });
    EXPECT_NE(msg.find(message), std::string::npos) << "'" << text << "': " << msg;
  }
}

TEST_F(IoTest, RawFloat32NeedsTheExactShape) {
  const auto x = sample(5, 4);
  write_bytes("x.f32", std::string(reinterpret_cast<const char*>(x.data()), x.size() * 4));
  io::ReadOptions ro;
  ro.raw_rows = 5, ro.raw_cols = 4;
  const io::Dataset ds = io::read_dataset(path("x.f32"), ro);
  EXPECT_TRUE(ds.mapped);
  expect_same(ds, x, 5, 4);
  ro.raw_rows = 6;
  EXPECT_NE(error_of([&] { io::read_dataset(path("x.f32"), ro); }).find("has 80 bytes"), std::string::npos);
  ro.raw_rows = std::int64_t(1) << 62, ro.raw_cols = 1 << 20;
  EXPECT_NE(error_of([&] { io::read_dataset(path("x.f32"), ro); }).find("has 80 bytes"), std::string::npos);
  ro.raw_rows = 0;
  EXPECT_THROW(io::read_dataset(path("x.f32"), ro), Error);
}

// Bytes in memory read as a file of any format would be; a view into them keeps them alive.
TEST_F(IoTest, InputsInMemory) {
  const auto x = sample(4, 3);
  io::write_npy(path("x.npy"), x.data(), {4, 3});
  const std::string npy = read_bytes("x.npy");
  io::Dataset ds;
  {
    const io::Input in = io::Input::copy("x in memory", npy.data(), npy.size());
    ds = io::read_dataset(in, io::Format::npy);
  }
  EXPECT_TRUE(ds.mapped);  // a view into the copied bytes, which the dataset now owns
  expect_same(ds, x, 4, 3);
  EXPECT_EQ(io::read_npy(io::Input::copy("x", npy.data(), npy.size())).shape, (std::vector<std::int64_t>{4, 3}));
  const std::string csv = "1,2,3\n4,5,6\n";
  expect_same(io::read_dataset(io::Input::copy("c", csv.data(), csv.size()), io::Format::csv), {1, 2, 3, 4, 5, 6}, 2,
              3);
  const std::string msg = error_of([&] { io::read_dataset(io::Input::copy("bytes.npy", "xyz", 3), io::Format::npy); });
  EXPECT_NE(msg.find("bytes.npy is not a .npy file"), std::string::npos) << msg;
  // An empty input is read like an empty file.
  EXPECT_NE(error_of([&] { io::read_dataset(io::Input::copy("e", nullptr, 0), io::Format::fvecs); }).find("empty"),
            std::string::npos);
}

TEST_F(IoTest, FormatsFromExtensions) {
  EXPECT_EQ(io::format_from_path("a/b.NPY"), io::Format::npy);
  EXPECT_EQ(io::format_from_path("sift_base.fvecs"), io::Format::fvecs);
  EXPECT_EQ(io::format_from_path("x.txt"), io::Format::csv);
  EXPECT_EQ(io::format_from_path("x.bin"), io::Format::raw);
  EXPECT_THROW(io::format_from_path("dir.d/noext"), io::FileError);
  EXPECT_EQ(io::parse_format("bvecs"), io::Format::bvecs);
  EXPECT_THROW(io::parse_format("parquet"), Error);
}

TEST_F(IoTest, MissingFilesAndDirectories) {
  EXPECT_NE(error_of([&] { io::read_dataset(path("none.npy")); }).find("cannot open"), std::string::npos);
  EXPECT_NE(error_of([&] { io::read_dataset(dir_.string() + "/.npy"); }).find("cannot open"), std::string::npos);
  fs::create_directories(path("d.npy"));
  EXPECT_NE(error_of([&] { io::read_dataset(path("d.npy")); }).find("not a regular file"), std::string::npos);
}

TEST_F(IoTest, WritesAreAtomic) {
  const auto x = sample(3, 3);
  io::write_npy(path("x.npy"), x.data(), {3, 3});
  const std::string before = read_bytes("x.npy");
  {
    io::AtomicFile f(path("x.npy"));
    f.write("partial", 7);
    // destroyed without commit: the old file stays, the temporary file is removed
  }
  EXPECT_EQ(read_bytes("x.npy"), before);
  int files = 0;
  for (auto it = fs::directory_iterator(dir_); it != fs::directory_iterator(); ++it) ++files;
  EXPECT_EQ(files, 1);
  EXPECT_THROW(io::write_npy(path("missing/x.npy"), x.data(), {3, 3}), io::WriteError);
  // Written files get ordinary permissions, not mkstemp's 0600.
  EXPECT_NE(fs::status(path("x.npy")).permissions() & fs::perms::owner_read, fs::perms::none);
}

TEST_F(IoTest, JsonSummary) {
  io::JsonObject inner;
  inner.add("x", 1);
  io::JsonObject o;
  o.add("name", "a\"b\n").add("pi", 3.25).add("nan", 0.0 / 0.0 * 0 + std::numeric_limits<double>::quiet_NaN());
  o.add("ok", true).add("list", std::vector<double>{1.5, 2}).add_object("inner", inner);
  EXPECT_EQ(o.str(),
            "{\n  \"name\": \"a\\\"b\\u000a\",\n  \"pi\": 3.25,\n  \"nan\": null,\n  \"ok\": true,\n"
            "  \"list\": [1.5, 2],\n  \"inner\": {\n    \"x\": 1\n  }\n}\n");
}

// A 1M x 128 float32 .npy (512 MB) is read memory-mapped: reading it allocates no memory of its
// own (the file is created sparse, so the test writes almost nothing to disk).
TEST_F(IoTest, LargeNpyIsMemoryMapped) {
  const std::int64_t n = 1'000'000, d = 128;
  const std::string p = path("big.npy");
  {
    const std::vector<float> one_row(d, 0.0f);
    io::write_npy(p, one_row.data(), {1, d});  // a valid header, then grow the data part
    const std::string bytes = read_bytes("big.npy");
    const std::size_t header = bytes.size() - d * 4;
    std::string big_header = bytes.substr(0, header);
    const std::size_t at_shape = big_header.find("(1, 128)");
    ASSERT_NE(at_shape, std::string::npos);
    big_header.replace(at_shape, 8, "(1000000, 128)");
    big_header.erase(big_header.size() - 7, 6);  // keep the length: drop 6 pad spaces
    ASSERT_EQ(big_header.size(), header);
    const int fd = ::open(p.c_str(), O_WRONLY | O_TRUNC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, big_header.data(), header), static_cast<ssize_t>(header));
    ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(header + n * d * 4)), 0);
    const float marker = 42.5f;
    ASSERT_EQ(::pwrite(fd, &marker, 4, static_cast<off_t>(header + ((n - 1) * d + 7) * 4)), 4);
    ::close(fd);
  }
  auto anon_kb = [] {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line))
      if (line.rfind("RssAnon:", 0) == 0) return std::stol(line.substr(8));
    return -1L;
  };
  const long before = anon_kb();
  const io::Dataset ds = io::read_dataset(p);
  EXPECT_TRUE(ds.mapped);
  EXPECT_EQ(ds.view.rows, n);
  EXPECT_EQ(ds.view.cols, d);
  EXPECT_EQ(at(ds.view, 0, n - 1, 7), 42.5f);
  EXPECT_EQ(at(ds.view, 0, n / 2, 3), 0.0f);
  if (before >= 0) {
    EXPECT_LT(anon_kb() - before, 8 * 1024) << "kB of anonymous memory for a mapped read";
  }
}
