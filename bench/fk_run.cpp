// Times flashkmeans::fit on data from raw float32 files, for bench/bench_cpu.py: the same data and
// initial centroids the peers get. Prints one JSON line per algorithm.
//   fk_run DATA N D K ITERS INIT [RUNS] [ALGORITHMS...]    (ALGORITHMS: automatic lloyd elkan)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <flashkmeans/flashkmeans.hpp>

namespace {

std::vector<float> read_floats(const char* path, std::size_t count) {
  std::vector<float> v(count);
  FILE* f = std::fopen(path, "rb");
  if (!f || std::fread(v.data(), sizeof(float), count, f) != count) {
    std::fprintf(stderr, "fk_run: cannot read %zu floats from %s\n", count, path);
    std::exit(2);
  }
  std::fclose(f);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr, "usage: fk_run DATA N D K ITERS INIT [RUNS] [ALGORITHMS...]\n");
    return 2;
  }
  const long n = std::atol(argv[2]), d = std::atol(argv[3]), k = std::atol(argv[4]);
  const int iters = std::atoi(argv[5]), runs = std::max(1, argc > 7 ? std::atoi(argv[7]) : 3);
  const auto x = read_floats(argv[1], static_cast<std::size_t>(n * d));
  const auto c0 = read_floats(argv[6], static_cast<std::size_t>(k * d));
  std::vector<std::string> algos;
  for (int a = 8; a < argc; ++a) algos.emplace_back(argv[a]);
  if (algos.empty()) algos = {"automatic", "lloyd"};

  for (const std::string& name : algos) {
    flashkmeans::KMeansOptions opt;
    opt.n_clusters = k;
    opt.max_iter = iters;
    opt.tol = 0.0;
    opt.init = flashkmeans::Init::given;
    opt.init_centroids = flashkmeans::TensorView::matrix(c0.data(), k, d);
    opt.algorithm = name == "lloyd" ? flashkmeans::Algorithm::lloyd
                    : name == "elkan" ? flashkmeans::Algorithm::elkan
                                      : flashkmeans::Algorithm::automatic;
    const auto view = flashkmeans::TensorView::matrix(x.data(), n, d);
    std::vector<double> ms;
    flashkmeans::KMeansResult r;
    // Warm-up, as bench_cpu.py warms up the peers: two fits at least (the first ones of a process
    // touch fresh memory, which a virtual machine makes slow), and fits for 0.2 s at least (short
    // fits are then timed on running cores and a thread pool that is awake).
    const auto warm_start = std::chrono::steady_clock::now();
    for (int w = 0; w < 2 || std::chrono::steady_clock::now() - warm_start < std::chrono::milliseconds(200); ++w)
      r = flashkmeans::fit(view, opt);
    for (int run = 0; run < runs; ++run) {
      const auto t0 = std::chrono::steady_clock::now();
      r = flashkmeans::fit(view, opt);
      const auto t1 = std::chrono::steady_clock::now();
      ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    const std::size_t h = ms.size() / 2;  // the median as Python's statistics.median takes it
    const double median = ms.size() % 2 ? ms[h] : (ms[h - 1] + ms[h]) / 2;
    std::printf("{\"method\": \"flashkmeans_%s\", \"isa\": \"%s\", \"ms\": %.3f, \"n_iter\": %d, \"inertia\": %.9g, "
                "\"labels_file\": null}\n",
                name.c_str(), flashkmeans::cpu_isa(), median, r.n_iter[0], r.inertia[0]);
    if (const char* out = std::getenv("FK_RUN_LABELS")) {
      FILE* f = std::fopen((std::string(out) + "." + name).c_str(), "wb");
      if (f) {
        std::fwrite(r.labels.data(), sizeof(int), r.labels.size(), f);
        std::fclose(f);
      }
      f = std::fopen((std::string(out) + "." + name + ".centroids").c_str(), "wb");
      if (f) {
        std::fwrite(r.centroids.data(), sizeof(float), r.centroids.size(), f);
        std::fclose(f);
      }
    }
  }
  return 0;
}
