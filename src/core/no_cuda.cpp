// The CUDA entry points of a build without the CUDA backend.
#include "core/check.hpp"
#include "core/cuda_entry.hpp"

namespace flashkmeans::detail {

namespace {
[[noreturn]] void no_cuda() {
  throw Error(ErrorKind::unsupported,
              "x is on a CUDA device, but this build has no CUDA backend: pass host memory or rebuild "
              "with FLASHKMEANS_CUDA=ON and a CUDA compiler");
}
}  // namespace

bool cuda_built() { return false; }
int cuda_device_count() { return 0; }
FitSummary cuda_fit_into(const TensorView&, const KMeansOptions&, const OutputBuffers&) { no_cuda(); }
KMeansResult cuda_fit(const TensorView&, const KMeansOptions&) { no_cuda(); }
void cuda_predict_into(const TensorView&, const TensorView&, const PredictOptions&, const OutputBuffers&) { no_cuda(); }
PredictResult cuda_predict(const TensorView&, const TensorView&, const PredictOptions&) { no_cuda(); }

}  // namespace flashkmeans::detail
