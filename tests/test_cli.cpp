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
  ASSERT_EQ(run("bench --n 2000 --d 8 --k 16 --iters 3 --repeats 1 --json", &out), 0) << out;
  for (const char* key : {"\"s_per_iteration\"", "\"points_per_s\"", "\"device\""})
    EXPECT_NE(out.find(key), std::string::npos) << out;
  EXPECT_EQ(run("bench --n 10 --k 20", &out), 2);
}
