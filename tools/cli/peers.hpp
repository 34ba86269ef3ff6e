// The peers `flashkmeans bench` times beside itself, on the same data and initial centroids:
// scikit-learn (Lloyd) and faiss-cpu on the CPU, a naive batched PyTorch k-means on CUDA. Each runs
// in a Python interpreter where it is installed; a peer that is not installed is left out.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace flashkmeans::cli {

struct PeerTime {
  std::string name;  ///< with its version, e.g. "scikit-learn 1.9.1"
  double seconds = 0;  ///< best whole fit of the repeats
};

struct PeerReport {
  std::vector<PeerTime> times;
  std::string note;  ///< why nothing was timed (empty when something was)
};

/// Times the installed peers with `python` on x (batch, n, d) float32 from init (batch, k, d):
/// iters Lloyd iterations each (no early stop), best of repeats after one warm-up; cuda picks the
/// GPU peers. threads > 0 limits the CPU peers' threads.
PeerReport time_peers(const std::string& python, const std::vector<float>& x, const std::vector<float>& init,
                      std::int64_t batch, std::int64_t n, std::int64_t d, std::int64_t k, int iters, int repeats,
                      bool cuda, int threads);

}  // namespace flashkmeans::cli
