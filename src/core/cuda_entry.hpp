// Where the driver hands CUDA-resident input to the CUDA backend. A build without CUDA links
// no_cuda.cpp instead, whose functions say so.
#pragma once

#include "flashkmeans/kmeans.hpp"

namespace flashkmeans::detail {

/// Whether this build has the CUDA backend.
bool cuda_built();

/// CUDA devices visible to this build (0 without the CUDA backend or without a device).
int cuda_device_count();

/// fit_into / fit / predict_into / predict for x on a CUDA device; shapes already validated.
FitSummary cuda_fit_into(const TensorView& x, const KMeansOptions& opt, const OutputBuffers& out);
KMeansResult cuda_fit(const TensorView& x, const KMeansOptions& opt);
void cuda_predict_into(const TensorView& x, const TensorView& centroids, const PredictOptions& opt,
                       const OutputBuffers& out);
PredictResult cuda_predict(const TensorView& x, const TensorView& centroids, const PredictOptions& opt);

}  // namespace flashkmeans::detail
