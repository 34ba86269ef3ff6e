// The centroid update on the device, without float atomics and in a fixed order (deterministic).
// The sort path is incremental: member sums persist in float64, and each iteration sorts only the
// moves (a point that changed cluster leaves its old one and joins its new one) by cluster, adds
// their rows over fixed runs of that order (per-warp partial sums), then combines each cluster's
// runs in order. Also the per-iteration bookkeeping that keeps the whole loop on the device. Small
// problems (scan path) do all of the update in one kernel: each cluster's block finds its members
// in the labels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include <cuda_runtime.h>

#include "cuda/assign.cuh"
#include "flashkmeans/types.hpp"

namespace flashkmeans::cuda {

/// Called after each stage of an iteration with the stage's name (profiling); may do nothing.
using StageMark = std::function<void(const char*)>;


/// A (B, N, D) array of points as the update reads it (any of the three element types).
struct PointsView {
  const void* data = nullptr;
  DType dtype = DType::float32;
  std::int64_t batch_stride = 0, row_stride = 0;  ///< elements; unit column stride
  std::int64_t batches = 0, n = 0, d = 0;
  /// Optional (B * N): each row is read multiplied by this (cosine on 16-bit input: the update
  /// reads the original rows times 1 / ||x||, as float32, rather than rounded unit rows).
  const float* row_scale = nullptr;
};

/// The state of a fit that lives on the device (all pointers are device memory).
struct LoopState {
  std::int64_t batches = 0, n = 0, k = 0, d = 0;
  Metric metric = Metric::euclidean;
  int max_iter = 0;
  double tol = 0;
  bool final_assignment = true;
  // centroids
  float* c = nullptr;       ///< (B, K, D) current centroids
  float* c_prev = nullptr;  ///< (B, K, D) before the last update
  void* ct = nullptr;       ///< (B, kp, dp) compute-type copy for the assignment
  float* h = nullptr;       ///< (B, kp)
  void* bias = nullptr;         ///< optional: (B, kp) bias rows of the packed fold (AssignArgs::bias)
  float* bias_scale = nullptr;  ///< (B + 1) their sigma, 0 where a batch goes without; the count of those
  AssignPlan plan;
  // update
  const std::uint16_t* moved = nullptr;       ///< (B, moved_words(N)) bits: this iteration changed the label
  const std::int32_t* left_labels = nullptr;  ///< (B, N) the previous label of each moved point
  double* members = nullptr;                  ///< (B, K, D) member sums kept across iterations; == sums
                                              ///< unless the relocation edits sums
  std::int64_t* member_counts = nullptr;      ///< (B, K) member counts kept across iterations; == counts
                                              ///< unless the relocation edits counts
  float* partial = nullptr;                   ///< dense: (blocks, K, D)
  // sort path: the moves sorted by cluster (move_capacity(s) places each)
  int2* moves = nullptr;                  ///< (point id b * N + i of a join, ~id of a leave; cluster b * K + j)
  std::int64_t tiles = 0;                 ///< tiles of tile_points points per batch (the sort's unit)
  int tile_points = 0;
  std::uint32_t* tile_counts = nullptr;   ///< (B * K * tiles + 1) moves per (cluster, tile)
  std::uint32_t* tile_starts = nullptr;   ///< (B * K * tiles + 1) where each (cluster, tile) group starts
  void* scan_tmp = nullptr;               ///< the scratch of their scan (move_scan_bytes)
  std::size_t scan_bytes = 0;
  std::int64_t runs = 0;                  ///< warps (runs of the sorted moves) that add the moves' rows
  double* run_sums = nullptr;             ///< (runs + B * K + 1, D) signed rows per run and cluster
  std::int32_t* run_counts = nullptr;     ///< (runs + B * K + 1) joins - leaves per run and cluster
  bool rebuild = true;                    ///< a batch whose moves outnumber its points rebuilds its sums
  // dense path (K * D small): per-block sums in shared memory, no sort
  bool dense = false;
  int dense_rows = 0;                   ///< points per block
  int dense_groups = 1;                 ///< thread groups per block, each with its own copy of the sums
  std::int32_t* partial_counts = nullptr;  ///< dense: (blocks, K)
  // scan path (small B * N * K): one fused kernel per iteration after the assignment (scan_update)
  bool scan = false;
  double* sums = nullptr;                     ///< (B, K, D)
  std::int64_t* counts = nullptr;             ///< (B, K)
  double* shift_k = nullptr;                  ///< (B, K) ||c_new - c_old||^2
  double* objective_k = nullptr;              ///< (B, K)
  // per batch
  const double* sum_xx = nullptr;  ///< (B) sum of ||x||^2 (euclidean objective; with history only)
  int* changed = nullptr;          ///< (B)
  std::uint8_t* done = nullptr;    ///< (B)
  int* n_iter = nullptr;           ///< (B)
  double* history = nullptr;       ///< (B, max_iter, 3): shift, objective, changed
  int* iteration = nullptr;        ///< iterations run so far (all batches)
  int* finished = nullptr;         ///< 1 once every batch is done or max_iter is reached
  unsigned* tickets = nullptr;     ///< (B + 1) zero between iterations: last-block counters per batch, then over batches
  // assignment outputs used by the update
  const std::int32_t* labels = nullptr;  ///< (B, N)
  const float* dist = nullptr;           ///< (B, N)
};

/// The dense path's plan for this shape, or dense = false when K * D is too large for it.
void plan_dense(LoopState& s, int multiprocessors, std::int64_t point_bytes);
/// Blocks per batch of the dense path (partial has this many (K, D) slices per batch).
std::int64_t dense_blocks_per_batch(const LoopState& s);
/// Whether the scan path fits this shape (small B * N * K, D <= 1024): then the update after each
/// assignment is one kernel, scan_update, in place of the dense or sort path, relocation, finalize.
bool plan_scan(const LoopState& s);
/// Whether the scan path's update may go incremental (s.left_labels and the moved bits then needed).
bool plan_scan_incremental(const LoopState& s);
/// The scan path's update: per cluster, its members found in the labels and added in a fixed
/// order, the new centroid; per batch, the relocation of empty clusters (when asked) and the
/// bookkeeping.
void scan_update(const LoopState& s, const PointsView& x, bool relocate, cudaStream_t stream, const StageMark& mark);
/// The sort path's tiles and runs: s.tile_points, s.tiles and s.runs from the shape.
void plan_moves(LoopState& s, int multiprocessors);
/// Moves an iteration can make (two per point: a leave and a join).
std::int64_t move_capacity(const LoopState& s);
/// The scratch bytes of the scan in sort_moves.
std::size_t move_scan_bytes(const LoopState& s);

/// The compute-type centroids and score offsets of every batch, from s.c.
void prepare_centroids(const LoopState& s, cudaStream_t stream);

/// After prepare_centroids, with s.bias set: each batch's sigma (from its largest ||x||^2 / 2
/// and h; 0 where 16-bit parts cannot hold them) and its bias rows. The updates then keep the rows.
void prepare_bias(const LoopState& s, const float* xx, cudaStream_t stream);

/// The sort path, after the assignment: this iteration's moves sorted by cluster (then by point,
/// the leave before the join), a stable counting sort over tiles of points.
void sort_moves(const LoopState& s, cudaStream_t stream, const StageMark& mark);

/// The sort path, after sort_moves: the moves' rows added per run, then per cluster the member
/// sums and count brought up to date and the new centroid; per batch, the relocation of empty
/// clusters (when asked) and the bookkeeping. Replaces relocate_empty and finish_iteration on this
/// path.
void sort_update(const LoopState& s, const PointsView& x, bool relocate, cudaStream_t stream, const StageMark& mark);

/// The dense path: per-block sums of the labelled points in shared memory (fixed order), then
/// an ordered combine per cluster. Replaces the sort and cluster_sums when s.dense.
void dense_sums(const LoopState& s, const PointsView& x, cudaStream_t stream, const StageMark& mark);

/// scikit-learn's relocation of empty clusters onto the points farthest from their centroids.
void relocate_empty(const LoopState& s, const PointsView& x, cudaStream_t stream);

/// Once per fit, before any launch (and outside graph capture).
void prepare_update(const LoopState& s);

/// New centroids, shifts and objective terms; then the per-batch convergence bookkeeping (one
/// launch: the last block of each batch does it).
void finish_iteration(const LoopState& s, cudaStream_t stream, const StageMark& mark);

/// Where label_distances also sums each batch's distances (out null: no sums): partial holds
/// B * label_distance_parts(B, N) doubles, tickets B counters at zero (left at zero).
struct DistanceSums {
  double* out = nullptr;  ///< (B) float64 sums, in a fixed order
  double* partial = nullptr;
  unsigned* tickets = nullptr;
};
std::int64_t label_distance_parts(std::int64_t batches, std::int64_t n);

/// dist[i] = distance of point i to c[labels[i]] (the seed's convention at the end of a fit);
/// with sums, also each batch's sum of them.
void label_distances(const LoopState& s, const PointsView& x, float* dist, cudaStream_t stream, const DistanceSums& sums = {});

/// out[b] = sum of v[b, 0..N) in float64, in a fixed order.
void batch_sums(const float* v, std::int64_t batches, std::int64_t n, double* out, cudaStream_t stream);

}  // namespace flashkmeans::cuda

namespace flashkmeans::cuda {
/// Batches that converged get back the centroids from before their last update (the seed's
/// convention when final_assignment is off).
void restore_converged(const LoopState& s, cudaStream_t stream);
}  // namespace flashkmeans::cuda
