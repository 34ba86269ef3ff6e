// The flashkmeans command-line tool, run as a process: outputs that load back, and exit codes.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "io/io.hpp"

#ifndef FK_CLI_PATH
#error "FK_CLI_PATH must name the flashkmeans executable"
#endif

namespace fs = std::filesystem;
using namespace flashkmeans;

namespace {

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fk_test_cli_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    // Three well-separated blobs of 50 points in 4-D.
    for (int c = 0; c < 3; ++c)
      for (int i = 0; i < 50; ++i)
        for (int j = 0; j < 4; ++j) x_.push_back(10.0f * c + 0.01f * static_cast<float>((i * 7 + j * 3) % 11));
    io::write_npy(path("x.npy"), x_.data(), {150, 4});
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Runs the tool with args; returns its exit code, and its stdout and stderr in out.
  int run(const std::string& args, std::string* out = nullptr) const {
    const std::string log = path("log.txt");
    const std::string cmd = std::string(FK_CLI_PATH) + " " + args + " >" + log + " 2>&1 </dev/null";
    const int status = std::system(cmd.c_str());
    std::ifstream f(log);
    const std::string text((std::istreambuf_iterator<char>(f)), {});
    if (out) *out = text;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  fs::path dir_;
  std::vector<float> x_;
};

std::vector<std::int32_t> labels_of(const io::NpyArray& a) {
  std::vector<std::int32_t> l(a.bytes.size() / 4);
  std::memcpy(l.data(), a.bytes.data(), a.bytes.size());
  return l;
}

}  // namespace

TEST_F(CliTest, FitWritesOutputsThatLoadBack) {
  std::string out;
  ASSERT_EQ(run("fit " + path("x.npy") + " -k 3 --init k-means++ --iters 20 --tol 1e-6 -o " + path("out"), &out), 0)
      << out;
  const io::NpyArray c = io::read_npy(path("out/centroids.npy"));
  EXPECT_EQ(c.descr, "<f4");
  EXPECT_EQ(c.shape, (std::vector<std::int64_t>{3, 4}));
  const io::NpyArray l = io::read_npy(path("out/labels.npy"));
  EXPECT_EQ(l.descr, "<i4");
  ASSERT_EQ(l.shape, (std::vector<std::int64_t>{150}));
  const auto labels = labels_of(l);
  for (int c3 = 0; c3 < 3; ++c3)
    for (int i = 0; i < 50; ++i) EXPECT_EQ(labels[c3 * 50 + i], labels[c3 * 50]) << "blob " << c3;
  EXPECT_NE(labels[0], labels[50]);
  EXPECT_NE(labels[50], labels[100]);
  std::ifstream f(path("out/summary.json"));
  const std::string summary((std::istreambuf_iterator<char>(f)), {});
  for (const char* key : {"\"iterations\"", "\"inertia\"", "\"time_s\"", "\"device\": \"cpu", "\"n\": 150", "\"k\": 3"})
    EXPECT_NE(summary.find(key), std::string::npos) << key << " in " << summary;
  // Not a terminal: no progress lines.
  EXPECT_EQ(out.find("iteration    1"), std::string::npos) << out;

  // predict with the fitted centroids gives the fit's labels.
  ASSERT_EQ(run("predict " + path("x.npy") + " --centroids " + path("out/centroids.npy") + " -o " + path("p.npy"), &out),
            0)
      << out;
  EXPECT_EQ(labels_of(io::read_npy(path("p.npy"))), labels);
}

TEST_F(CliTest, EveryInputFormat) {
  io::write_fvecs(path("x.fvecs"), x_.data(), 150, 4);
  io::write_csv(path("x.csv"), x_.data(), 150, 4, {"a", "b", "c", "d"});
  std::ofstream(path("x.f32"), std::ios::binary).write(reinterpret_cast<const char*>(x_.data()), x_.size() * 4);
  for (const std::string args : {"x.fvecs", "x.csv", "x.f32 --shape 150,4", "x.npy --dtype float16",
                                 "x.npy --dtype bfloat16", "x.npy --metric cosine --batch-dim"}) {
    std::string out;
    EXPECT_EQ(run("fit " + path(args) + " -k 3 --iters 5 -q -o " + path("o"), &out), 0) << args << ": " << out;
    EXPECT_EQ(io::read_npy(path("o/labels.npy")).shape.back(), 150) << args;
  }
}

TEST_F(CliTest, ExitCodes) {
  std::string out;
  EXPECT_EQ(run("--help", &out), 0);
  EXPECT_NE(out.find("usage: flashkmeans COMMAND"), std::string::npos);
  for (const char* cmd : {"fit", "predict", "bench"}) {
    EXPECT_EQ(run(std::string(cmd) + " --help", &out), 0) << cmd;
    EXPECT_NE(out.find(std::string("usage: flashkmeans ") + cmd), std::string::npos) << out;
  }
  EXPECT_EQ(run("", &out), 2);
  EXPECT_EQ(run("frobnicate", &out), 2);
  EXPECT_EQ(run("fit " + path("x.npy") + " -o " + path("o"), &out), 2) << out;  // no -k
  EXPECT_EQ(run("fit " + path("x.npy") + " -k 3", &out), 2) << out;             // no -o
  EXPECT_EQ(run("fit " + path("x.npy") + " -k 3 --metric manhattan -o " + path("o"), &out), 2);
  EXPECT_EQ(run("fit " + path("x.npy") + " -k 3 --frob -o " + path("o"), &out), 2);
  EXPECT_EQ(run("fit " + path("x.npy") + " -k three -o " + path("o"), &out), 2);
  EXPECT_EQ(run("fit " + path("none.npy") + " -k 3 -o " + path("o"), &out), 3);
  std::ofstream(path("bad.npy")) << "not an npy file";
  EXPECT_EQ(run("fit " + path("bad.npy") + " -k 3 -o " + path("o"), &out), 3);
  EXPECT_NE(out.find("magic"), std::string::npos) << out;
  EXPECT_EQ(run("fit " + path("x.npy") + " -k 500 -o " + path("o"), &out), 1) << out;  // K > N
  std::ofstream(path("file")) << "x";
  EXPECT_EQ(run("fit " + path("x.npy") + " -k 3 -o " + path("file/sub"), &out), 4) << out;
  EXPECT_EQ(run("predict " + path("x.npy") + " --centroids " + path("none.npy") + " -o " + path("p.npy"), &out), 3);
  EXPECT_FALSE(fs::exists(path("p.npy")));
}

TEST_F(CliTest, Bench) {
  std::string out;
  ASSERT_EQ(run("bench --n 2000 --d 8 --k 16 --iters 3 --repeats 1 --json --no-peers", &out), 0) << out;
  for (const char* key : {"\"s_per_iteration\"", "\"points_per_s\"", "\"device\"", "\"peers_fit_s\""})
    EXPECT_NE(out.find(key), std::string::npos) << out;
  EXPECT_EQ(run("bench --n 10 --k 20", &out), 2);
  EXPECT_EQ(run("bench --n 2000 --d 8 --k 16 --python \"a'b\"", &out), 2) << out;
}

// The peers run through the named interpreter; what it prints ("name<TAB>seconds" lines) is the
// table. A stand-in interpreter checks the plumbing without depending on what is installed.
TEST_F(CliTest, BenchPeers) {
  std::string out;
  const std::string fake = path("fakepython");
  {
    std::ofstream f(fake);
    f << "#!/bin/sh\n"
         "# called as: fakepython -c SCRIPT x.npy init.npy iters repeats device threads\n"
         "[ -f \"$3\" ] && [ -f \"$4\" ] || exit 3\n"
         "printf 'peer-a 1.0\\t0.5\\npeer-b 2.0 (%s, %s iterations)\\t0.25\\n' \"$7\" \"$5\"\n";
  }
  fs::permissions(fake, fs::perms::owner_all);
  ASSERT_EQ(run("bench --n 2000 --d 8 --k 16 --iters 3 --repeats 1 --python " + fake, &out), 0) << out;
  EXPECT_NE(out.find("peer-a 1.0"), std::string::npos) << out;
  EXPECT_NE(out.find("0.5000 s"), std::string::npos) << out;
  EXPECT_NE(out.find("peer-b 2.0 (cpu, 3 iterations)"), std::string::npos) << out;
  ASSERT_EQ(run("bench --n 2000 --d 8 --k 16 --iters 3 --repeats 1 --json --python " + fake, &out), 0) << out;
  EXPECT_NE(out.find("\"peer-a 1.0\": 0.5"), std::string::npos) << out;
  // An interpreter that is not there: the bench still succeeds and says why there are no peers.
  ASSERT_EQ(run("bench --n 2000 --d 8 --k 16 --iters 3 --repeats 1 --python " + path("missing"), &out), 0) << out;
  EXPECT_NE(out.find("could not run them"), std::string::npos) << out;
  ASSERT_EQ(run("bench --n 2000 --d 8 --k 16 --iters 3 --repeats 1 --no-peers", &out), 0) << out;
  EXPECT_NE(out.find("peers: not run (--no-peers)"), std::string::npos) << out;
}

namespace {

std::uint32_t be32(const std::vector<unsigned char>& b, std::size_t at) {
  return (std::uint32_t{b[at]} << 24) | (std::uint32_t{b[at + 1]} << 16) | (std::uint32_t{b[at + 2]} << 8) | b[at + 3];
}

// Bitwise CRC-32 (PNG's), written independently of the tool's table-driven one.
std::uint32_t crc32_bitwise(const unsigned char* p, std::size_t n) {
  std::uint32_t c = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}

}  // namespace

// demo: runs on the embedded digits, scores well against the true digits, and writes a PNG whose
// chunks, zlib stream (stored blocks) and scanlines all check out.
TEST_F(CliTest, DemoWritesAValidPng) {
  std::string out;
  const std::string png = path("demo.png");
  ASSERT_EQ(run("demo --no-compare --repeats 1 -o " + png, &out), 0) << out;
  const std::size_t at = out.find("ARI ");
  ASSERT_NE(at, std::string::npos) << out;
  EXPECT_GT(std::atof(out.c_str() + at + 4), 0.4) << out;

  std::ifstream f(png, std::ios::binary);
  const std::vector<unsigned char> b((std::istreambuf_iterator<char>(f)), {});
  const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  ASSERT_GE(b.size(), 8u);
  ASSERT_EQ(std::memcmp(b.data(), signature, 8), 0);

  std::uint32_t width = 0, height = 0, palette_size = 0;
  std::vector<unsigned char> z;
  std::vector<std::string> types;
  for (std::size_t i = 8; i < b.size();) {
    ASSERT_LE(i + 12, b.size());
    const std::uint32_t len = be32(b, i);
    ASSERT_LE(i + 12 + len, b.size());
    const std::string type(b.begin() + i + 4, b.begin() + i + 8);
    EXPECT_EQ(crc32_bitwise(b.data() + i + 4, len + 4), be32(b, i + 8 + len)) << "CRC of " << type;
    types.push_back(type);
    if (type == "IHDR") {
      ASSERT_EQ(len, 13u);
      width = be32(b, i + 8);
      height = be32(b, i + 12);
      EXPECT_EQ(b[i + 16], 8);  // bit depth
      EXPECT_EQ(b[i + 17], 3);  // palette colour
    } else if (type == "PLTE") {
      ASSERT_EQ(len % 3, 0u);
      palette_size = len / 3;
    } else if (type == "IDAT") {
      z.insert(z.end(), b.begin() + i + 8, b.begin() + i + 8 + len);
    }
    i += 12 + len;
  }
  ASSERT_GE(types.size(), 4u);
  EXPECT_EQ(types.front(), "IHDR");
  EXPECT_EQ(types.back(), "IEND");
  EXPECT_EQ(width, 756u);
  EXPECT_EQ(height, 384u);
  ASSERT_GT(palette_size, 2u);

  // zlib header, then stored deflate blocks, then the Adler-32 of the scanlines.
  ASSERT_GE(z.size(), 6u);
  EXPECT_EQ((z[0] * 256 + z[1]) % 31, 0);
  EXPECT_EQ(z[0] & 0x0F, 8);
  std::vector<unsigned char> raw;
  std::size_t pos = 2;
  for (bool last = false; !last;) {
    ASSERT_LE(pos + 5, z.size());
    last = z[pos] & 1;
    ASSERT_EQ((z[pos] >> 1) & 3, 0) << "not a stored block";
    const unsigned len = z[pos + 1] | (z[pos + 2] << 8), nlen = z[pos + 3] | (z[pos + 4] << 8);
    ASSERT_EQ(len ^ 0xFFFFu, nlen);
    ASSERT_LE(pos + 5 + len, z.size());
    raw.insert(raw.end(), z.begin() + pos + 5, z.begin() + pos + 5 + len);
    pos += 5 + len;
  }
  ASSERT_EQ(pos + 4, z.size());
  std::uint32_t s1 = 1, s2 = 0;
  for (unsigned char c : raw) s1 = (s1 + c) % 65521, s2 = (s2 + s1) % 65521;
  EXPECT_EQ((s2 << 16) | s1, be32(z, pos));
  ASSERT_EQ(raw.size(), static_cast<std::size_t>(height) * (width + 1));
  std::size_t coloured = 0;
  for (std::uint32_t y = 0; y < height; ++y) {
    ASSERT_EQ(raw[y * (width + 1)], 0) << "filter of row " << y;
    for (std::uint32_t x = 1; x <= width; ++x) {
      ASSERT_LT(raw[y * (width + 1) + x], palette_size);
      coloured += raw[y * (width + 1) + x] >= 2;
    }
  }
  EXPECT_GT(coloured, 10000u);  // the points were drawn

  EXPECT_EQ(run("demo stray", &out), 2) << out;
}
