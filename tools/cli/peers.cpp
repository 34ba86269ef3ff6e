#include "peers.hpp"

#include <stdlib.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "io/io.hpp"

namespace flashkmeans::cli {

namespace {

// argv: x.npy init.npy iters repeats device threads. Prints "name<TAB>seconds" per peer timed.
const char* const kScript = R"(
import sys, time
import numpy as np
x, c = np.load(sys.argv[1]), np.load(sys.argv[2])
iters, repeats, device, threads = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
B, K = x.shape[0], c.shape[1]

def best(fn, sync=lambda: None):
    fn(); sync()
    b = float('inf')
    for _ in range(repeats):
        t = time.perf_counter(); fn(); sync(); b = min(b, time.perf_counter() - t)
    return b

if device == 'cpu':
    try:
        import sklearn
        from sklearn.cluster import KMeans
        def sk():
            for b in range(B):
                KMeans(n_clusters=K, init=c[b], n_init=1, max_iter=iters, tol=0.0, algorithm='lloyd').fit(x[b])
        try:
            from threadpoolctl import threadpool_limits
            with threadpool_limits(limits=threads or None):
                t = best(sk)
        except ImportError:
            t = best(sk)
        print(f'scikit-learn {sklearn.__version__}\t{t}')
    except ImportError:
        pass
    try:
        import faiss
        if threads:
            faiss.omp_set_num_threads(threads)
        def fa():
            for b in range(B):
                km = faiss.Kmeans(x.shape[2], K, niter=iters, max_points_per_centroid=1 << 30, min_points_per_centroid=1)
                km.train(np.ascontiguousarray(x[b]), init_centroids=c[b])
        print(f'faiss-cpu {faiss.__version__}\t{best(fa)}')
    except ImportError:
        pass
else:
    try:
        import torch
        if torch.cuda.is_available():
            xt, c0 = torch.from_numpy(x).cuda(), torch.from_numpy(c).cuda()
            def naive():
                cc = c0.clone()
                for _ in range(iters):
                    ids = torch.cdist(xt, cc).argmin(-1)
                    s = torch.zeros_like(cc).scatter_add_(1, ids[..., None].expand(-1, -1, xt.shape[2]), xt)
                    n = torch.zeros(cc.shape[:2], device=xt.device).scatter_add_(1, ids, torch.ones_like(xt[..., 0]))
                    cc = torch.where(n[..., None] > 0, s / n.clamp(min=1)[..., None], cc)
            print(f'torch {torch.__version__} (naive batched k-means)\t{best(naive, torch.cuda.synchronize)}')
    except ImportError:
        pass
)";

}  // namespace

std::string peer_python(const Args& a) {
  const char* env_python = std::getenv("FLASHKMEANS_DEMO_PYTHON");
  return a.str("python", env_python && *env_python ? env_python : "python3");
}

PythonOutput run_python(const std::string& python, const char* script, const std::vector<NpyArg>& arrays,
                        const std::vector<std::string>& args) {
  PythonOutput r;
  char tmpl[] = "/tmp/flashkmeans-python-XXXXXX";
  if (!::mkdtemp(tmpl)) {
    r.error = "no temporary directory for the data";
    return r;
  }
  const std::string dir = tmpl;
  std::ostringstream cmd;
  cmd << python << " -c \"$FK_PYTHON_SCRIPT\"";
  for (std::size_t i = 0; i < arrays.size(); ++i) {
    const std::string path = dir + "/" + std::to_string(i) + ".npy";
    io::write_npy(path, arrays[i].data, arrays[i].shape);
    cmd << " " << path;
  }
  for (const std::string& arg : args) cmd << " " << arg;
  cmd << " 2>/dev/null";
  // The script goes through the environment: no quoting of its text by the shell.
  ::setenv("FK_PYTHON_SCRIPT", script, 1);
  if (FILE* f = ::popen(cmd.str().c_str(), "r")) {
    char buf[4096];
    for (std::size_t got; (got = std::fread(buf, 1, sizeof buf, f)) > 0;) r.out.append(buf, got);
    r.status = ::pclose(f);
  } else {
    r.error = "could not start " + python;
  }
  ::unsetenv("FK_PYTHON_SCRIPT");
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  return r;
}

PeerReport time_peers(const std::string& python, const std::vector<float>& x, const std::vector<float>& init,
                      std::int64_t batch, std::int64_t n, std::int64_t d, std::int64_t k, int iters, int repeats,
                      bool cuda, int threads) {
  PeerReport r;
  const PythonOutput p = run_python("'" + python + "'", kScript, {{x.data(), {batch, n, d}}, {init.data(), {batch, k, d}}},
                                    {std::to_string(iters), std::to_string(repeats), cuda ? "cuda" : "cpu",
                                     std::to_string(threads)});
  if (!p.error.empty()) {
    r.note = p.error;
    return r;
  }
  std::istringstream lines(p.out);
  for (std::string line; std::getline(lines, line);) {
    const std::size_t tab = line.find('\t');
    if (tab != std::string::npos) r.times.push_back({line.substr(0, tab), std::strtod(line.c_str() + tab + 1, nullptr)});
  }
  if (r.times.empty())
    r.note = p.status == 0 ? "none of them is installed for " + python
                           : python + " could not run them (is it a Python with NumPy?)";
  return r;
}

}  // namespace flashkmeans::cli
