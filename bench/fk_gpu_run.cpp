// Times flashkmeans::fit_into on a CUDA device, for bench/bench_gpu.py: the data and initial
// centroids the peers get, read from raw files (float32, or float16 / bfloat16 bits as uint16),
// copied to the device once. Warm-up fits, then timed fits (CUDA events around fit_into on one
// stream); prints one JSON line with the median and the spread. Optionally writes the labels
// (int32) and centroids (float32) of the last fit for the script's checks.
//   fk_gpu_run --data X --init C --dtype float32|float16|bfloat16 --batch B --n N --d D --k K
//              --iters IT [--precision tf32|exact] [--metric euclidean|cosine|dot]
//              [--warmup W] [--runs R] [--labels PATH] [--centroids PATH] [--device ID]
//              [--final-assignment 0|1]   (default 0: the labels of the last iteration, as the peers return)
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include <flashkmeans/flashkmeans.hpp>

namespace fk = flashkmeans;

namespace {

[[noreturn]] void fail(const std::string& msg) {
  std::fprintf(stderr, "fk_gpu_run: %s\n", msg.c_str());
  std::exit(2);
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail(std::string(what) + ": " + cudaGetErrorString(e));
}

std::vector<unsigned char> read_bytes(const std::string& path, std::size_t bytes) {
  std::vector<unsigned char> v(bytes);
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f || std::fread(v.data(), 1, bytes, f) != bytes) fail("cannot read " + std::to_string(bytes) + " bytes from " + path);
  std::fclose(f);
  return v;
}

void write_bytes(const std::string& path, const void* data, std::size_t bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || std::fwrite(data, 1, bytes, f) != bytes) fail("cannot write " + path);
  std::fclose(f);
}

/// A device allocation that is freed on scope exit.
struct DeviceMemory {
  void* p = nullptr;
  explicit DeviceMemory(std::size_t bytes) { check(cudaMalloc(&p, std::max<std::size_t>(bytes, 1)), "cudaMalloc"); }
  ~DeviceMemory() { cudaFree(p); }
  DeviceMemory(const DeviceMemory&) = delete;
  DeviceMemory& operator=(const DeviceMemory&) = delete;
};

std::string json_escape(const std::string& in) {
  std::string out;
  for (char ch : in) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += (ch == '\n' || ch == '\t') ? ' ' : ch;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::map<std::string, std::string> a{{"precision", "tf32"}, {"metric", "euclidean"}, {"warmup", "2"},
                                       {"runs", "5"}, {"device", "0"}};
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strncmp(argv[i], "--", 2) != 0) fail(std::string("unexpected argument ") + argv[i]);
    a[argv[i] + 2] = argv[i + 1];
  }
  for (const char* key : {"data", "init", "dtype", "batch", "n", "d", "k", "iters"})
    if (!a.count(key)) fail(std::string("missing --") + key + " (see the header of bench/fk_gpu_run.cpp)");

  const std::int64_t b = std::atoll(a["batch"].c_str()), n = std::atoll(a["n"].c_str()),
                     d = std::atoll(a["d"].c_str()), k = std::atoll(a["k"].c_str());
  const int iters = std::atoi(a["iters"].c_str()), warmup = std::max(0, std::atoi(a["warmup"].c_str())),
            runs = std::max(1, std::atoi(a["runs"].c_str())), device = std::atoi(a["device"].c_str());
  const std::string& dt = a["dtype"];
  const fk::DType dtype = dt == "float32"   ? fk::DType::float32
                          : dt == "float16" ? fk::DType::float16
                          : dt == "bfloat16" ? fk::DType::bfloat16
                                             : (fail("--dtype must be float32, float16 or bfloat16"), fk::DType::float32);
  const std::size_t esize = dtype == fk::DType::float32 ? 4 : 2;
  fk::KMeansOptions opt;
  opt.n_clusters = k;
  opt.max_iter = iters;
  opt.tol = 0.0;  // fixed iterations, as the peers run
  opt.metric = a["metric"] == "cosine" ? fk::Metric::cosine : a["metric"] == "dot" ? fk::Metric::dot : fk::Metric::euclidean;
  opt.precision = a["precision"] == "exact" ? fk::Precision::exact : fk::Precision::tf32;
  opt.init = fk::Init::given;
  opt.empty_clusters = fk::EmptyClusters::keep;  // the peers keep empty clusters too
  // The peers return the labels of their last assignment and the centroids updated from them: the
  // same work (iters assignments) and the same outputs.
  opt.final_assignment = a.count("final-assignment") && a["final-assignment"] == "1";

  check(cudaSetDevice(device), "cudaSetDevice");
  cudaDeviceProp prop;
  check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");

  // Data and initial centroids on the device, copied once.
  const std::size_t x_bytes = static_cast<std::size_t>(b * n * d) * esize, c_bytes = static_cast<std::size_t>(b * k * d) * esize;
  DeviceMemory x(x_bytes), c0(c_bytes);
  {
    const std::vector<unsigned char> hx = read_bytes(a["data"], x_bytes);
    check(cudaMemcpy(x.p, hx.data(), x_bytes, cudaMemcpyHostToDevice), "cudaMemcpy data");
  }
  {
    const std::vector<unsigned char> hc = read_bytes(a["init"], c_bytes);
    check(cudaMemcpy(c0.p, hc.data(), c_bytes, cudaMemcpyHostToDevice), "cudaMemcpy init");
  }
  auto view = [&](const void* p, std::int64_t rows) {
    fk::TensorView v;
    v.data = p, v.dtype = dtype, v.device = {fk::DeviceType::cuda, device};
    v.batch = b, v.rows = rows, v.cols = d;
    v.batch_stride = rows * d, v.row_stride = d, v.col_stride = 1;
    return v;
  };
  const fk::TensorView xv = view(x.p, n);
  opt.init_centroids = view(c0.p, k);

  DeviceMemory labels(static_cast<std::size_t>(b * n) * sizeof(std::int32_t)),
      centroids(static_cast<std::size_t>(b * k * d) * sizeof(float));
  const fk::OutputBuffers out{static_cast<std::int32_t*>(labels.p), static_cast<float*>(centroids.p), nullptr};
  cudaStream_t stream;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreate");
  opt.cuda_stream = stream;
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");

  // float16 / bfloat16 data multiply in their own precision: the setting applies to float32 only.
  const std::string method = dtype == fk::DType::float32 ? "flashkmeans_" + a["precision"] : std::string("flashkmeans");
  fk::FitSummary s;
  std::vector<float> ms;
  try {
    for (int r = 0; r < warmup + runs; ++r) {
      check(cudaEventRecord(start, stream), "cudaEventRecord");
      s = fk::fit_into(xv, opt, out);
      check(cudaEventRecord(stop, stream), "cudaEventRecord");
      check(cudaEventSynchronize(stop), "cudaEventSynchronize");
      float t = 0;
      check(cudaEventElapsedTime(&t, start, stop), "cudaEventElapsedTime");
      if (r >= warmup) ms.push_back(t);
    }
  } catch (const fk::Error& e) {
    std::printf("{\"method\": \"%s\", \"error\": \"%s\"}\n", method.c_str(), json_escape(e.what()).c_str());
    return 1;
  }
  std::vector<float> sorted = ms;
  std::sort(sorted.begin(), sorted.end());
  const double median = sorted.size() % 2 ? sorted[sorted.size() / 2]
                                          : 0.5 * (sorted[sorted.size() / 2 - 1] + sorted[sorted.size() / 2]);
  const double inertia = std::accumulate(s.inertia.begin(), s.inertia.end(), 0.0);
  const int n_iter = *std::max_element(s.n_iter.begin(), s.n_iter.end());

  if (a.count("labels")) {
    std::vector<std::int32_t> h(static_cast<std::size_t>(b * n));
    check(cudaMemcpy(h.data(), labels.p, h.size() * sizeof(std::int32_t), cudaMemcpyDeviceToHost), "cudaMemcpy labels");
    write_bytes(a["labels"], h.data(), h.size() * sizeof(std::int32_t));
  }
  if (a.count("centroids")) {
    std::vector<float> h(static_cast<std::size_t>(b * k * d));
    check(cudaMemcpy(h.data(), centroids.p, h.size() * sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy centroids");
    write_bytes(a["centroids"], h.data(), h.size() * sizeof(float));
  }
  std::printf("{\"method\": \"%s\", \"device\": \"%s\", \"ms\": %.4f, \"ms_min\": %.4f, \"ms_max\": %.4f, "
              "\"times\": [",
              method.c_str(), json_escape(prop.name).c_str(), median, sorted.front(), sorted.back());
  for (std::size_t i = 0; i < ms.size(); ++i) std::printf("%s%.4f", i ? ", " : "", ms[i]);
  std::printf("], \"n_iter\": %d, \"inertia\": %.10g}\n", n_iter, inertia);
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaStreamDestroy(stream);
  return 0;
}
