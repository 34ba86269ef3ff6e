// Enumerations shared by the whole public API.
#pragma once

#include <cstdint>

namespace flashkmeans {

/// Element type of an input array. Computation is always accumulated in float32 (or wider).
enum class DType : std::uint8_t {
  float32,   ///< IEEE binary32
  float16,   ///< IEEE binary16, stored as uint16_t bits
  bfloat16,  ///< bfloat16 (upper half of a binary32), stored as uint16_t bits
};

/// Where an array lives.
enum class DeviceType : std::uint8_t {
  cpu,   ///< host memory
  cuda,  ///< CUDA device memory (needs a build with FLASHKMEANS_CUDA=ON)
};

struct Device {
  DeviceType type = DeviceType::cpu;
  int id = 0;  ///< device ordinal for CUDA; ignored for the CPU
};

/// What "nearest" means.
enum class Metric : std::uint8_t {
  euclidean,  ///< squared L2 distance; the update is the mean of the members
  cosine,     ///< points and centroids are L2-normalised; label = argmax of the dot product;
              ///< the update is the mean of the members, L2-normalised
  dot,        ///< label = argmax of the raw inner product x.c (points are not normalised);
              ///< the update is the cosine one, so centroids are unit vectors after the first update
};

/// How the initial centroids are chosen.
enum class Init : std::uint8_t {
  random,      ///< K rows drawn uniformly with replacement, per batch (the seed's behaviour)
  kmeans_plus_plus,  ///< greedy k-means++ (2 + ln K local trials per step, as scikit-learn)
  given,       ///< KMeansOptions::init_centroids, shape (B, K, D) or (K, D) for B = 1
};

/// What happens to a cluster that receives no point in an iteration.
enum class EmptyClusters : std::uint8_t {
  relocate,  ///< move it onto the points farthest from their centroids (scikit-learn's behaviour)
  keep,      ///< keep its previous centroid (the seed's and Flash-KMeans' behaviour)
};

/// How the assignment step is computed. Every choice gives Lloyd's labels.
enum class Algorithm : std::uint8_t {
  automatic,  ///< the fastest exact choice for the shape (see docs/algorithms.md)
  lloyd,      ///< every point against every centroid, in cache-blocked SIMD tiles
  elkan,      ///< Elkan's triangle-inequality bounds: skips distances that cannot change a label
};

/// How a CUDA device multiplies float32 inputs. float16 and bfloat16 inputs always multiply in
/// their own precision with float32 accumulation; the CPU always computes in float32.
enum class Precision : std::uint8_t {
  exact,  ///< float32 scores: the labels of the CPU backend, up to float32 rounding
  tf32,   ///< tensor-core tf32 products (10-bit mantissas) with float32 accumulation: fastest,
          ///< the precision PyTorch and Triton use for float32 matrix products when tf32 is on
};

const char* to_string(DType);
const char* to_string(DeviceType);
const char* to_string(Metric);
const char* to_string(Init);
const char* to_string(EmptyClusters);
const char* to_string(Algorithm);
const char* to_string(Precision);

}  // namespace flashkmeans
