// fit, predict and bench.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

#include <flashkmeans/flashkmeans.hpp>

#include "args.hpp"
#include "commands.hpp"
#include "io/io.hpp"
#include "peers.hpp"

#ifdef FK_CLI_CUDA
#include <cuda_runtime.h>
#endif

namespace flashkmeans::cli {

const char* const kFitHelp =
    "usage: flashkmeans fit DATA -k K -o OUT [options]\n"
    "\n"
    "Clusters the points of DATA (N x D; the format from the extension or --format) and writes\n"
    "OUT/centroids.npy (K, D) float32, OUT/labels.npy (N,) int32 and OUT/summary.json.\n"
    "\n"
    "  -k, --clusters K        number of clusters (required)\n"
    "  -o, --out DIR           output directory, created if missing (required)\n"
    "  --metric M              euclidean (default), cosine or dot\n"
    "  --iters N               at most N Lloyd iterations (default 100)\n"
    "  --tol T                 stop when no centroid moves by T or more (default 0: run all iterations)\n"
    "  --init I                random (default) or k-means++\n"
    "  --seed S                random seed (default 0)\n"
    "  --algorithm A           auto (default), lloyd or elkan\n"
    "  --batch-dim             DATA is a 3-D .npy (B, N, D): cluster every batch independently;\n"
    "                          outputs gain a leading B axis\n"
    "  --device D              cpu (default) or cuda\n"
    "  --precision P           CUDA float32 products: exact (default) or tf32\n"
    "  --dtype T               auto (default: the file's), float32, float16, bfloat16; float32 data is\n"
    "                          rounded to float16/bfloat16; uint16 .npy data is read as bfloat16 bits\n"
    "  --format F              npy, fvecs, bvecs, ivecs, csv or raw (default: from the extension)\n"
    "  --shape N,D             the shape of raw float32 input\n"
    "  --header yes|no|auto    whether a CSV file starts with a header line (default auto)\n"
    "  --threads N             CPU threads (default 0: all cores)\n"
    "  -q, --quiet             no progress lines (they are printed to stderr only when it is a terminal)\n";

const char* const kPredictHelp =
    "usage: flashkmeans predict DATA --centroids C -o LABELS [options]\n"
    "\n"
    "Labels every point of DATA with its nearest centroid of C (a .npy (K, D), or (B, K, D) with\n"
    "--batch-dim) and writes LABELS, an int32 .npy of shape (N,) (or (B, N)).\n"
    "\n"
    "  -c, --centroids C       centroids file, e.g. OUT/centroids.npy of flashkmeans fit (required)\n"
    "  -o, --out LABELS        output .npy file (required)\n"
    "  --metric M              euclidean (default), cosine or dot: as used by the fit\n"
    "  --batch-dim, --device, --precision, --dtype, --format, --shape, --header, --threads: as for fit\n";

const char* const kBenchHelp =
    "usage: flashkmeans bench [options]\n"
    "\n"
    "Fits synthetic data (Gaussian blobs) from K random points and prints the time per iteration and\n"
    "the throughput; then the same fits, on the same float32 data and initial centroids, by the peers\n"
    "installed for Python: scikit-learn (Lloyd) and faiss-cpu on the CPU, a naive batched PyTorch\n"
    "k-means with --device cuda.\n"
    "\n"
    "  --n N          points per batch (default 100000)\n"
    "  --d D          dimensions (default 64)\n"
    "  --k K          clusters (default 256)\n"
    "  --iters I      Lloyd iterations, all run (default 10)\n"
    "  --batch B      independent batches (default 1)\n"
    "  --dtype T      float32 (default), float16 or bfloat16\n"
    "  --metric M     euclidean (default), cosine or dot\n"
    "  --algorithm A  auto (default), lloyd or elkan\n"
    "  --device D     cpu (default) or cuda\n"
    "  --precision P  CUDA float32 products: exact (default) or tf32\n"
    "  --repeats R    timed fits after one warm-up, the best is reported (default 3)\n"
    "  --seed S       data and initialisation seed (default 0)\n"
    "  --threads N    CPU threads (default 0: all cores)\n"
    "  --json         print one JSON object instead of the table\n"
    "  --no-peers     time flashkmeans alone\n"
    "  --python P     the Python interpreter for the peers (default $FLASHKMEANS_DEMO_PYTHON, else python3)\n";

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

const std::vector<OptionSpec> kDataOptions = {
    {"batch-dim", 0, false}, {"device", 0, true}, {"precision", 0, true}, {"dtype", 0, true},
    {"format", 0, true},     {"shape", 0, true},  {"header", 0, true},    {"threads", 0, true},
    {"metric", 0, true},     {"out", 'o', true},  {"quiet", 'q', false}};

std::vector<OptionSpec> with_data_options(std::vector<OptionSpec> specs) {
  specs.insert(specs.end(), kDataOptions.begin(), kDataOptions.end());
  return specs;
}

Metric parse_metric(const Args& a) {
  const std::string m = a.choice("metric", "euclidean", {"euclidean", "cosine", "dot"});
  return m == "cosine" ? Metric::cosine : m == "dot" ? Metric::dot : Metric::euclidean;
}

Algorithm parse_algorithm(const Args& a) {
  const std::string m = a.choice("algorithm", "auto", {"auto", "lloyd", "elkan"});
  return m == "lloyd" ? Algorithm::lloyd : m == "elkan" ? Algorithm::elkan : Algorithm::automatic;
}

Precision parse_precision(const Args& a) {
  return a.choice("precision", "exact", {"exact", "tf32"}) == "tf32" ? Precision::tf32 : Precision::exact;
}

bool use_cuda(const Args& a) { return a.choice("device", "cpu", {"cpu", "cuda"}) == "cuda"; }

int parse_threads(const Args& a) { return static_cast<int>(a.integer("threads", 0, 0, 4096)); }

// Reads DATA with the format options shared by fit and predict, and applies --dtype.
io::Dataset read_data(const Args& a, const std::string& path) {
  io::ReadOptions ro;
  const std::string dtype = a.choice("dtype", "auto", {"auto", "float32", "float16", "bfloat16"});
  ro.uint16_is_bfloat16 = dtype == "bfloat16";
  ro.allow_batch = a.has("batch-dim");
  const std::string header = a.choice("header", "auto", {"yes", "no", "auto"});
  ro.csv_header = header == "yes" ? 1 : header == "no" ? 0 : -1;
  const io::Format format = a.has("format") ? io::parse_format(a.str("format", "")) : io::format_from_path(path);
  if (format == io::Format::raw) {
    const std::string shape = a.has("shape") ? a.str("shape", "") : throw UsageError("raw input needs --shape N,D");
    const std::size_t comma = shape.find(',');
    char* end = nullptr;
    ro.raw_rows = std::strtoll(shape.c_str(), &end, 10);
    if (comma == std::string::npos || end != shape.c_str() + comma) throw UsageError("--shape expects N,D");
    ro.raw_cols = std::strtoll(shape.c_str() + comma + 1, &end, 10);
    if (*end != '\0' || ro.raw_rows <= 0 || ro.raw_cols <= 0) throw UsageError("--shape expects N,D (positive)");
  } else if (a.has("shape")) {
    throw UsageError("--shape applies to raw float32 input only");
  }
  io::Dataset ds = io::read_dataset(path, format, ro);
  const TensorView& v = ds.view;
  if (dtype == "auto" || dtype == to_string(v.dtype)) return ds;
  if (v.dtype != DType::float32)
    throw UsageError("--dtype " + dtype + ": the data of " + path + " is " + to_string(v.dtype) +
                     "; only float32 data is converted");
  // Round float32 data to 16-bit values, C order.
  auto buf = std::make_shared<std::vector<std::uint16_t>>(static_cast<std::size_t>(v.batch * v.rows * v.cols));
  const bool half = dtype == "float16";
  const float* src = static_cast<const float*>(v.data);
  std::size_t o = 0;
  for (std::int64_t b = 0; b < v.batch; ++b)
    for (std::int64_t i = 0; i < v.rows; ++i)
      for (std::int64_t j = 0; j < v.cols; ++j) {
        const float x = src[b * v.batch_stride + i * v.row_stride + j * v.col_stride];
        (*buf)[o++] = half ? io::float_to_half(x) : io::float_to_bfloat16(x);
      }
  io::Dataset out;
  out.view = TensorView::batched(buf->data(), half ? DType::float16 : DType::bfloat16, v.batch, v.rows, v.cols);
  out.storage = buf;
  out.source = ds.source + ", rounded to " + dtype;
  return out;
}

std::vector<std::int64_t> out_shape(std::int64_t batch, bool batched, std::int64_t a, std::int64_t b = -1) {
  std::vector<std::int64_t> s;
  if (batched) s.push_back(batch);
  s.push_back(a);
  if (b >= 0) s.push_back(b);
  return s;
}

#ifdef FK_CLI_CUDA
std::size_t element_size(DType t) { return t == DType::float32 ? 4 : 2; }

// A C-contiguous host copy of v when it is not already one (for the copy to a CUDA device).
TensorView contiguous(const TensorView& v, std::vector<unsigned char>& storage) {
  if (v.is_contiguous()) return v;
  const std::size_t es = element_size(v.dtype);
  storage.resize(static_cast<std::size_t>(v.batch * v.rows * v.cols) * es);
  const auto* src = static_cast<const unsigned char*>(v.data);
  std::size_t o = 0;
  for (std::int64_t b = 0; b < v.batch; ++b)
    for (std::int64_t i = 0; i < v.rows; ++i)
      for (std::int64_t j = 0; j < v.cols; ++j, o += es)
        std::memcpy(storage.data() + o, src + (b * v.batch_stride + i * v.row_stride + j * v.col_stride) * es, es);
  TensorView c = v;
  c.data = storage.data();
  c.batch_stride = v.rows * v.cols, c.row_stride = v.cols, c.col_stride = 1;
  return c;
}

void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(ErrorKind::internal, std::string(what) + ": " + cudaGetErrorString(e));
}
// Device memory freed when the owner goes out of scope.
struct DeviceBuffer {
  void* p = nullptr;
  explicit DeviceBuffer(std::size_t bytes) { cuda_check(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc"); }
  ~DeviceBuffer() { cudaFree(p); }
};
#endif

// Copies a host view to the CUDA device (contiguous) and returns the device view.
TensorView to_device([[maybe_unused]] const TensorView& host, [[maybe_unused]] std::vector<void*>& owned) {
#ifdef FK_CLI_CUDA
  std::vector<unsigned char> staging;
  const TensorView c = contiguous(host, staging);
  const std::size_t bytes = static_cast<std::size_t>(c.batch * c.rows * c.cols) * element_size(c.dtype);
  void* p = nullptr;
  cuda_check(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc");
  owned.push_back(p);
  cuda_check(cudaMemcpy(p, c.data, bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
  TensorView d = c;
  d.data = p;
  d.device = Device{DeviceType::cuda, 0};
  return d;
#else
  throw Error(ErrorKind::unsupported, "--device cuda: this build of flashkmeans has no CUDA backend");
#endif
}

void free_device([[maybe_unused]] std::vector<void*>& owned) {
#ifdef FK_CLI_CUDA
  for (void* p : owned) cudaFree(p);
#endif
  owned.clear();
}

// fit on the host or on the CUDA device (outputs copied back to the host).
KMeansResult fit_on(const TensorView& x, const KMeansOptions& opt, bool cuda) {
  if (!cuda) return fit(x, opt);
  std::vector<void*> owned;
  try {
    const TensorView d = to_device(x, owned);
    KMeansResult r = fit(d, opt);
    free_device(owned);
    return r;
  } catch (...) {
    free_device(owned);
    throw;
  }
}

std::string device_name(bool cuda) {
  return cuda ? std::string("cuda:0") : std::string("cpu (") + cpu_isa() + ")";
}

void make_directory(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw io::WriteError("cannot create the output directory " + dir + ": " + ec.message());
}

}  // namespace

int run_fit(const std::vector<std::string>& argv) {
  const Args a(argv, with_data_options({{"clusters", 'k', true},
                                        {"iters", 0, true},
                                        {"tol", 0, true},
                                        {"init", 0, true},
                                        {"seed", 0, true},
                                        {"algorithm", 0, true}}));
  if (a.positional().size() != 1) throw UsageError("fit takes one DATA file");
  const std::string path = a.positional()[0];
  KMeansOptions opt;
  opt.n_clusters = a.integer("clusters", 0, 1, INT32_MAX);
  if (!a.has("clusters")) throw UsageError("option -k (--clusters) is required");
  const std::string out_dir = a.required("out");
  opt.max_iter = static_cast<int>(a.integer("iters", 100, 1, 1000000));
  opt.tol = a.number("tol", 0.0, 0.0);
  opt.init = a.choice("init", "random", {"random", "k-means++"}) == "k-means++" ? Init::kmeans_plus_plus : Init::random;
  opt.seed = static_cast<std::uint64_t>(a.integer("seed", 0, 0, INT64_MAX));
  opt.metric = parse_metric(a);
  opt.algorithm = parse_algorithm(a);
  opt.precision = parse_precision(a);
  opt.n_threads = parse_threads(a);
  const bool cuda = use_cuda(a);

  const auto t_read = Clock::now();
  const io::Dataset ds = read_data(a, path);
  const double read_s = seconds_since(t_read);
  const TensorView& x = ds.view;
  make_directory(out_dir);

  const bool progress = !a.has("quiet") && ::isatty(STDERR_FILENO);
  const auto t0 = Clock::now();
  if (progress) {
    const std::int64_t batches = x.batch;
    opt.on_iteration = [t0, batches](const IterationInfo& it) {
      if (batches > 1) std::fprintf(stderr, "batch %lld  ", static_cast<long long>(it.batch));
      std::fprintf(stderr, "iteration %4d  shift %.4g  inertia %.6g  changed %d  elapsed %.2fs\n", it.iteration,
                   it.shift, it.inertia, it.changed, seconds_since(t0));
    };
  }
  const KMeansResult r = fit_on(x, opt, cuda);
  const double fit_s = seconds_since(t0);

  const bool batched = a.has("batch-dim");
  io::write_npy(out_dir + "/centroids.npy", r.centroids.data(), out_shape(r.batch, batched, r.k, r.d));
  io::write_npy(out_dir + "/labels.npy", r.labels.data(), out_shape(r.batch, batched, r.n));

  int iterations = 0;
  double inertia = 0;
  bool converged = true;
  std::vector<double> inertias;
  std::vector<std::int64_t> iters, conv;
  for (std::int64_t b = 0; b < r.batch; ++b) {
    iterations = std::max(iterations, r.n_iter[b]);
    inertia += r.inertia[b];
    converged = converged && r.converged[b];
    inertias.push_back(r.inertia[b]), iters.push_back(r.n_iter[b]), conv.push_back(r.converged[b]);
  }
  io::JsonObject s;
  s.add("command", "fit").add("flashkmeans_version", FLASHKMEANS_VERSION).add("data", ds.source);
  s.add("batch", r.batch).add("n", r.n).add("d", r.d).add("k", r.k);
  s.add("dtype", to_string(x.dtype)).add("metric", to_string(opt.metric)).add("init", to_string(opt.init));
  s.add("seed", static_cast<std::int64_t>(opt.seed)).add("max_iter", opt.max_iter).add("tol", opt.tol);
  s.add("device", device_name(cuda));
  s.add("iterations", iterations).add("converged", converged).add("inertia", inertia);
  if (batched) s.add("iterations_per_batch", iters).add("converged_per_batch", conv).add("inertia_per_batch", inertias);
  s.add("time_s", fit_s).add("read_s", read_s);
  s.add("centroids", "centroids.npy").add("labels", "labels.npy");
  const std::string json = s.str();
  io::write_file_atomic(out_dir + "/summary.json", json.data(), json.size());
  if (!a.has("quiet"))
    std::fprintf(stderr, "fit %lld x %lld points, K = %lld: %d iterations, inertia %.6g, %.3f s on %s -> %s\n",
                 static_cast<long long>(r.batch * r.n), static_cast<long long>(r.d), static_cast<long long>(r.k),
                 iterations, inertia, fit_s, device_name(cuda).c_str(), out_dir.c_str());
  return exit_ok;
}

int run_predict(const std::vector<std::string>& argv) {
  const Args a(argv, with_data_options({{"centroids", 'c', true}}));
  if (a.positional().size() != 1) throw UsageError("predict takes one DATA file");
  const std::string path = a.positional()[0];
  const std::string centroids_path = a.required("centroids");
  const std::string out = a.required("out");
  PredictOptions opt;
  opt.metric = parse_metric(a);
  opt.precision = parse_precision(a);
  opt.n_threads = parse_threads(a);
  const bool cuda = use_cuda(a);

  const io::Dataset ds = read_data(a, path);
  io::ReadOptions cro;
  cro.allow_batch = true;
  const io::Dataset cs = io::read_dataset(centroids_path, cro);
  const TensorView& x = ds.view;
  PredictResult r;
  const auto t0 = Clock::now();
  if (!cuda) {
    r = predict(x, cs.view, opt.metric, opt.n_threads);
  } else {
    std::vector<void*> owned;
    try {
      r = predict(to_device(x, owned), to_device(cs.view, owned), opt.metric, 0);
    } catch (...) {
      free_device(owned);
      throw;
    }
    free_device(owned);
  }
  const double s = seconds_since(t0);
  io::write_npy(out, r.labels.data(), out_shape(r.batch, a.has("batch-dim"), r.n));
  if (!a.has("quiet"))
    std::fprintf(stderr, "predict %lld points against %lld centroids: %.3f s on %s -> %s\n",
                 static_cast<long long>(r.batch * r.n), static_cast<long long>(cs.view.rows), s,
                 device_name(cuda).c_str(), out.c_str());
  return exit_ok;
}

int run_bench(const std::vector<std::string>& argv) {
  const Args a(argv, {{"n", 0, true},
                      {"d", 0, true},
                      {"k", 0, true},
                      {"iters", 0, true},
                      {"batch", 0, true},
                      {"dtype", 0, true},
                      {"metric", 0, true},
                      {"algorithm", 0, true},
                      {"device", 0, true},
                      {"precision", 0, true},
                      {"repeats", 0, true},
                      {"seed", 0, true},
                      {"threads", 0, true},
                      {"json", 0, false},
                      {"no-peers", 0, false},
                      {"python", 0, true}});
  if (!a.positional().empty()) throw UsageError("bench takes no positional arguments");
  const std::string python = peer_python(a);
  if (python.empty() || python.find('\'') != std::string::npos)
    throw UsageError("--python must be a path without quotes");
  const std::int64_t n = a.integer("n", 100000, 1, INT32_MAX), d = a.integer("d", 64, 1, 65536),
                     k = a.integer("k", 256, 1, INT32_MAX), batch = a.integer("batch", 1, 1, 1 << 20);
  const int iters = static_cast<int>(a.integer("iters", 10, 1, 100000));
  const int repeats = static_cast<int>(a.integer("repeats", 3, 1, 1000));
  const std::string dtype = a.choice("dtype", "float32", {"float32", "float16", "bfloat16"});
  const auto seed = static_cast<std::uint64_t>(a.integer("seed", 0, 0, INT64_MAX));
  if (k > n) throw UsageError("--k must not exceed --n");
  KMeansOptions opt;
  opt.n_clusters = k, opt.max_iter = iters, opt.tol = 0, opt.seed = seed;
  opt.metric = parse_metric(a), opt.algorithm = parse_algorithm(a), opt.precision = parse_precision(a);
  opt.n_threads = parse_threads(a);
  const bool cuda = use_cuda(a);

  // Gaussian blobs around k random centres; the initial centroids are k distinct random points of
  // each batch (the same for flashkmeans and the peers).
  const std::size_t total = static_cast<std::size_t>(batch * n * d);
  std::vector<float> x32(total), init(static_cast<std::size_t>(batch * k * d));
  {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.f, 1.f);
    std::vector<float> centres(static_cast<std::size_t>(k * d));
    for (float& c : centres) c = 4.f * normal(rng);
    for (std::size_t p = 0; p < static_cast<std::size_t>(batch * n); ++p) {
      const std::size_t c = static_cast<std::size_t>(rng() % static_cast<std::uint64_t>(k));
      for (std::int64_t j = 0; j < d; ++j) x32[p * d + j] = centres[c * d + j] + normal(rng);
    }
    std::vector<std::int64_t> rows(static_cast<std::size_t>(n));
    for (std::int64_t b = 0; b < batch; ++b) {
      for (std::int64_t i = 0; i < n; ++i) rows[i] = i;
      for (std::int64_t j = 0; j < k; ++j) {  // partial Fisher-Yates: the first k of a shuffle
        std::swap(rows[j], rows[j + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(n - j))]);
        std::memcpy(&init[static_cast<std::size_t>((b * k + j) * d)], &x32[static_cast<std::size_t>((b * n + rows[j]) * d)],
                    sizeof(float) * d);
      }
    }
  }
  opt.init = Init::given;
  opt.init_centroids = TensorView::batched(init.data(), batch, k, d);
  std::vector<std::uint16_t> x16;
  TensorView x = TensorView::batched(x32.data(), batch, n, d);
  if (dtype != "float32") {
    x16.resize(total);
    for (std::size_t i = 0; i < total; ++i)
      x16[i] = dtype == "float16" ? io::float_to_half(x32[i]) : io::float_to_bfloat16(x32[i]);
    x = TensorView::batched(x16.data(), dtype == "float16" ? DType::float16 : DType::bfloat16, batch, n, d);
  }
  std::vector<void*> owned;
  double best = 1e300;
  int n_iter = 0;
  try {
    const TensorView input = cuda ? to_device(x, owned) : x;
    (void)fit(input, opt);  // warm-up: thread pool, device memory pool, kernels loaded
    for (int r = 0; r < repeats; ++r) {
      const auto t0 = Clock::now();
      const KMeansResult res = fit(input, opt);
      best = std::min(best, seconds_since(t0));
      n_iter = res.n_iter[0];
    }
  } catch (...) {
    free_device(owned);
    throw;
  }
  free_device(owned);
  const PeerReport peers = a.has("no-peers") ? PeerReport{{}, "not run (--no-peers)"}
                                             : time_peers(python, x32, init, batch, n, d, k, iters, repeats, cuda,
                                                          opt.n_threads);
  // The fit time includes the final assignment; per iteration it is an upper bound.
  const double per_iter = best / n_iter;
  const double points_per_s = static_cast<double>(batch * n) * n_iter / best;
  const double gflops = 2.0 * static_cast<double>(batch * n) * k * d * n_iter / best / 1e9;
  if (a.has("json")) {
    io::JsonObject j;
    j.add("command", "bench").add("flashkmeans_version", FLASHKMEANS_VERSION).add("device", device_name(cuda));
    j.add("batch", batch).add("n", n).add("d", d).add("k", k).add("iterations", n_iter).add("dtype", dtype);
    j.add("metric", to_string(opt.metric)).add("fit_s", best).add("s_per_iteration", per_iter);
    j.add("points_per_s", points_per_s).add("assignment_gflops", gflops);
    io::JsonObject p;
    for (const PeerTime& t : peers.times) p.add(t.name, t.seconds);
    j.add_object("peers_fit_s", p);
    std::fputs(j.str().c_str(), stdout);
  } else {
    std::printf("flashkmeans %s on %s\n", FLASHKMEANS_VERSION, device_name(cuda).c_str());
    std::printf("%8s %8s %6s %6s %6s %9s %12s %14s %14s %10s\n", "batch", "n", "d", "k", "iters", "dtype",
                "fit (s)", "ms/iteration", "points*it/s", "GFLOP/s");
    std::printf("%8lld %8lld %6lld %6lld %6d %9s %12.4f %14.3f %14.4g %10.2f\n", static_cast<long long>(batch),
                static_cast<long long>(n), static_cast<long long>(d), static_cast<long long>(k), n_iter,
                dtype.c_str(), best, per_iter * 1e3, points_per_s, gflops);
    if (peers.times.empty()) {
      std::printf("peers: %s\n", peers.note.c_str());
    } else {
      std::printf("peers (same float32 data and initial centroids, %d iterations, best of %d):\n", iters, repeats);
      for (const PeerTime& t : peers.times)
        std::printf("  %-40s %10.4f s  (flashkmeans %.2fx %s)\n", t.name.c_str(), t.seconds,
                    t.seconds >= best ? t.seconds / best : best / t.seconds, t.seconds >= best ? "faster" : "slower");
    }
  }
  return exit_ok;
}

}  // namespace flashkmeans::cli
