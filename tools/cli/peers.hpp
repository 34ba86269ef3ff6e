// Peers run in a Python subprocess: the runner that `flashkmeans demo` and `flashkmeans bench`
// share, and the peers the bench times beside itself on the same data and initial centroids
// (scikit-learn (Lloyd) and faiss-cpu on the CPU, a naive batched PyTorch k-means on CUDA). A peer
// that is not installed for the interpreter is left out.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "args.hpp"

namespace flashkmeans::cli {

/// The interpreter for the peers: --python, else $FLASHKMEANS_DEMO_PYTHON (which the Python
/// package's `flashkmeans` command sets to its own interpreter), else python3.
std::string peer_python(const Args& a);

/// A float32 array handed to a Python script as a .npy file.
struct NpyArg {
  const float* data;
  std::vector<std::int64_t> shape;
};

struct PythonOutput {
  std::string error;  ///< why the script could not be started (empty when it was)
  int status = -1;    ///< its exit status (pclose)
  std::string out;    ///< its standard output
};

/// Runs the Python source `script` with the interpreter command `python` (a shell word: quoted by
/// the caller where needed). The arrays are written as .npy files into a fresh temporary directory,
/// removed afterwards; sys.argv holds their paths, then args. Standard error is discarded.
PythonOutput run_python(const std::string& python, const char* script, const std::vector<NpyArg>& arrays,
                        const std::vector<std::string>& args);

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
