// Greedy k-means++ initialisation on the device.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "cuda/update.cuh"

namespace flashkmeans::cuda {

/// Greedy k-means++ as scikit-learn does it (and as the CPU backend does): the first centroid is a
/// random row; each next one is the best, by the potential sum_i min(closest_i, ||x_i - c||^2),
/// of 2 + ln K candidates drawn with probability proportional to closest_i, the squared distance
/// to the nearest centroid so far. Every batch of x at once; the random draws are the CPU
/// backend's (batch_rng(seed, b)). Writes c (B, K, D) float32. Device memory: B * N * (2 + ln K)
/// floats of candidate distances and B * N doubles of cumulative weights, besides small buffers.
/// Deterministic for a given device: fixed grids and fixed-order sums.
void kmeans_plus_plus(const PointsView& x, std::int64_t k, std::uint64_t seed, float* c, cudaStream_t stream);

}  // namespace flashkmeans::cuda
