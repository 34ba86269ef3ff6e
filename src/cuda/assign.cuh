// The fused assignment: distance scores on tensor cores and an online argmin, one pass over the
// points, the N x K score matrix never written. See docs/perf-notes.md for the floor.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

#include "flashkmeans/types.hpp"

namespace flashkmeans::cuda {

/// How the products are formed: the input's 16-bit type, one tf32 product, or three tf32
/// products (big*big + big*small + small*big) that carry a float32 product's precision.
enum class MmaKind { f16, bf16, tf32, tf32x3 };

/// Tile sizes of one assignment launch, chosen on the host for the shape (assign_plan).
struct AssignPlan {
  MmaKind kind = MmaKind::tf32;
  int bn = 128;       ///< centroids per tile
  int dp = 0;         ///< padded D of the centroid buffer (a multiple of dc)
  int kp = 0;         ///< padded K of the centroid buffer (a multiple of bn)
  int dc = 0;         ///< D chunk streamed per step; dc == dp when a point tile stays resident
  bool resident = true;
  int smem_bytes = 0;
  // The Hopper kernel (assign_wgmma.cu): warp-group products, persistent blocks.
  bool wgmma = false;
  int slices = 1;         ///< 64-point slices per warp group: 64 * groups * slices points per tile
  int groups = 2;         ///< consumer warp groups per block (2 or 3)
  int point_buffers = 1;  ///< point tiles held (2: the next one loads while this one is used)
  int stages = 0;         ///< centroid tiles in flight
  int blocks = 0;         ///< persistent blocks (one per multiprocessor)
};

/// Rows of the points must start 16-byte aligned (checked by the caller, which stages otherwise).
/// On a Hopper device the plan is the wgmma kernel's where the shape fits it (16-bit and tf32
/// products, 64 < D <= 128, K > 128). For tuning, FLASHKMEANS_ASSIGN=mma forces the mma.sync
/// kernel and FLASHKMEANS_WGMMA=bn,slices,buffers,stages[,groups] overrides the wgmma kernel's tiles.
AssignPlan assign_plan(MmaKind kind, std::int64_t k, std::int64_t d, int device);

struct AssignArgs {
  const void* x = nullptr;          ///< (B, N, D) points, unit column stride, aligned rows
  std::int64_t x_batch_stride = 0;  ///< elements
  std::int64_t x_row_stride = 0;    ///< elements
  std::int64_t n = 0, d = 0, k = 0, batches = 0;
  const void* ct = nullptr;  ///< (B, kp, dp) centroids in the compute type, zero padded
  const float* h = nullptr;  ///< (B, kp) score offsets: ||c||^2 / 2 (euclidean) or 0; +inf on padding
  Metric metric = Metric::euclidean;
  std::int32_t* labels = nullptr;         ///< (B, N) in/out: previous labels in, new labels out
  std::uint16_t* moved = nullptr;         ///< (B, moved_words(N)) optional: bit r of word w = row 16 w + r changed label
  std::int32_t* left_labels = nullptr;    ///< (B, N) optional: the previous label of each point whose label changed
  float* dist = nullptr;                  ///< (B, N) optional: each point's distance
  const float* xx = nullptr;              ///< (B, N) ||x||^2, needed for euclidean distances
  int* changed = nullptr;                 ///< (B) optional: += labels that changed
  const std::uint8_t* skip = nullptr;     ///< (B) optional: batches to leave untouched
  /// Optional (the Hopper kernel's packed fold): (B, kp) bias rows (bias_row_offset) and (B + 1)
  /// their scale sigma per batch, then the count of batches without one (sigma 0: the lookup fold).
  const void* bias = nullptr;
  const float* bias_scale = nullptr;
};

/// The bias rows: 16 elements of the compute type per centroid, [q1, q2, q3, sigma, sigma, sigma,
/// 0, ...] with q1 + q2 + q3 = -h / sigma, stored as the Hopper products read a K-major operand
/// without swizzle: 8-row groups of 256 bytes, each two 8 x 16-byte core matrices (columns 0-7,
/// then 8-15). Byte offset of element (row, col); a tile of rows starts at row * kBiasRowBytes.
constexpr int kBiasRowBytes = 32;
constexpr int kBiasAlongK = 128;     ///< bytes from a core matrix to the next along K (columns 8-15)
constexpr int kBiasAlongRows = 256;  ///< bytes from an 8-row group to the next
__host__ __device__ constexpr std::int64_t bias_row_offset(std::int64_t row, int col) {
  return row / 8 * kBiasAlongRows + col / 8 * kBiasAlongK + row % 8 * 16 + col % 8 * 2;
}

/// 16-bit words per batch of AssignArgs::moved. A bit array is small enough (N / 8 bytes) to stay
/// in L2 for the update's reads.
__host__ __device__ constexpr std::int64_t moved_words(std::int64_t n) { return (n + 15) / 16; }

/// Once per device and plan, before any launch (and outside graph capture): allows the
/// kernel its shared memory.
void prepare_assign(const AssignPlan& plan);

void launch_assign(const AssignPlan& plan, const AssignArgs& a, cudaStream_t stream);

// The Hopper kernel's share of the above (assign_wgmma.cu).
bool plan_wgmma(AssignPlan& plan, std::int64_t k, std::int64_t d, int device);
void prepare_wgmma(const AssignPlan& plan);
void launch_wgmma(const AssignPlan& plan, const AssignArgs& a, cudaStream_t stream);
/// Whether a fit with this plan and metric takes the packed fold, which needs bias rows
/// (AssignArgs::bias; FLASHKMEANS_FOLD=lookup keeps the lookup fold, a development aid).
bool wants_bias_rows(const AssignPlan& plan, Metric metric);

}  // namespace flashkmeans::cuda
