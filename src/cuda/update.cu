#include "cuda/update.cuh"

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_scan.cuh>

#include <algorithm>
#include <cfloat>
#include <cstdlib>
#include <cstring>

#include "cuda/buffer.cuh"
#include "cuda/check.cuh"
#include "cuda/data.cuh"
#include "cuda/elements.cuh"

namespace flashkmeans::cuda {

namespace {

constexpr int kBlock = 128;
using BlockSum = cub::BlockReduce<double, kBlock>;

// Thread 0's value r (a block reduction's result) to every thread of the block, through slot;
// the second barrier lets the slot be reused at once.
template <class T>
__device__ T from_first_thread(const T& r, T* slot) {
  if (threadIdx.x == 0) *slot = r;
  __syncthreads();
  const T x = *slot;
  __syncthreads();
  return x;
}

// Sum over the block of v (every thread gets it); fixed reduction tree, so deterministic.
__device__ double block_sum(double v, typename BlockSum::TempStorage& tmp, double* shared_out) {
  return from_first_thread(BlockSum(tmp).Sum(v), shared_out);
}

DType compute_dtype(MmaKind k) {
  return k == MmaKind::f16 ? DType::float16 : k == MmaKind::bf16 ? DType::bfloat16 : DType::float32;
}

// Bias row of centroid (b, j) for score offset h (AssignArgs::bias), by one thread; zeros where
// the batch goes without (sigma 0: the products then add nothing).
__device__ void write_bias_row(const LoopState& s, DType ct_type, std::int64_t b, std::int64_t j, float h) {
  const float sigma = s.bias_scale[b];
  std::uint16_t q[3] = {0, 0, 0}, one[3] = {0, 0, 0};
  if (sigma != 0.f) {
    split3(-h / sigma, ct_type, q);
    split3(sigma, ct_type, one);  // a power of two: one[0] is sigma exactly
  }
  const std::int64_t row = b * s.plan.kp + j;
  auto* at = static_cast<unsigned char*>(s.bias) + bias_row_offset(row, 0);
  const uint4 first = {q[0] | (static_cast<unsigned>(q[1]) << 16), q[2] | (static_cast<unsigned>(one[0]) << 16),
                       one[0] | (static_cast<unsigned>(one[0]) << 16), 0u};
  *reinterpret_cast<uint4*>(at) = first;
  *reinterpret_cast<uint4*>(at + kBiasAlongK) = make_uint4(0u, 0u, 0u, 0u);  // columns 8-15
}

// The compute-type row and score offset of centroid (b, j) from its float32 value c_row (null on
// padding rows). Called by a whole block; sum(v) is the block's fixed-order sum of v.
template <class Sum>
__device__ void write_compute_row(const LoopState& s, DType ct_type, std::int64_t b, std::int64_t j,
                                  const float* c_row, Sum sum) {
  const int dp = s.plan.dp, kp = s.plan.kp;
  const std::int64_t at = (b * kp + j) * dp;
  double sq = 0;
  const bool tf32 = s.plan.kind == MmaKind::tf32;  // stored rounded: the kernel skips the conversion
  for (int q = threadIdx.x; q < dp; q += blockDim.x) {
    float v = c_row && q < s.d ? c_row[q] : 0.f;
    if (tf32) v = __uint_as_float(to_tf32(v));
    const float r = store_rounded(s.ct, at + q, ct_type, v);
    sq += static_cast<double>(r) * r;
  }
  const double total = sum(sq);
  if (threadIdx.x == 0) {
    const float h = !c_row ? __int_as_float(0x7f800000) : s.metric == Metric::euclidean ? static_cast<float>(0.5 * total) : 0.f;
    s.h[b * kp + j] = h;
    if (s.bias) write_bias_row(s, ct_type, b, j, h);
  }
}

__global__ void prepare_kernel(LoopState s, DType ct_type) {
  __shared__ typename BlockSum::TempStorage tmp;
  __shared__ double red;
  const std::int64_t b = blockIdx.y, j = blockIdx.x;
  write_compute_row(s, ct_type, b, j, j < s.k ? s.c + (b * s.k + j) * s.d : nullptr,
                    [&](double v) { return block_sum(v, tmp, &red); });
}

// A lane owns 4 adjacent columns (one vector load per row); rows are fetched 8 at a time so that
// their loads are in flight together.
constexpr int kColsPerLane = 4;
constexpr int kRowsInFlight = 8;
constexpr int kDenseThreads = 256;
constexpr int kDenseSmem = 200 * 1024;

__device__ __forceinline__ void load4(const PointsView& x, std::int64_t at, bool vector, std::int64_t cols_left, float (&v)[4]) {
  load4_as_float(x.data, at, x.dtype, vector, cols_left, v);
}

// The sort path's update is incremental: each cluster's member sums (float64) persist across
// iterations; an iteration adds the rows that joined a cluster and subtracts those that left it.
// After the first iterations few points move (docs/perf-notes.md), so this reads a small share of
// the rows a full sum would. Every input value is exact in float64, and the moves are added in a
// fixed order (by cluster, then point id): the same result on every run.
//
// The moves are sorted by a stable counting sort whose unit is a tile of tile_points points of
// one batch, a block each: count_moves_kernel counts each tile's moves per cluster (cluster-major,
// so that an exclusive scan of the counts gives where each (cluster, tile) group starts), then
// place_moves_kernel lists the tile's moves in point order (a point's leave before its join),
// ranks them within their group and writes them there.
//
// An iteration that moved more than half of a batch's points rebuilds the batch's sums instead:
// every point joins its cluster and the sums start from zero, N rows read instead of a leave and a
// join for each moved point (more than N). The first iteration moves every point (from label -1),
// so it always rebuilds.
constexpr int kTileThreads = 256;
constexpr int kTileRound = kTileThreads * 4;  // points a block lists at a time, four a thread

// Where cluster g's moves begin in the sorted list (g = B K: the moves' count).
__device__ __forceinline__ std::int64_t move_offset(const LoopState& s, std::int64_t g) {
  return static_cast<std::int64_t>(s.tile_starts[g * s.tiles]);
}

// Whether batch b rebuilds its sums this iteration (see above; s.changed is this iteration's
// count of moved points until the batch's bookkeeping, after the update).
__device__ __forceinline__ bool rebuilds(const LoopState& s, std::int64_t b) {
  return s.rebuild && 2 * static_cast<std::int64_t>(s.changed[b]) > s.n;
}

// Point i of batch b's move, if it moved (rebuild: every point joins): its cluster before (-1:
// none) and after.
__device__ __forceinline__ bool move_of(const LoopState& s, std::int64_t b, std::int64_t i, std::uint32_t word,
                                        bool rebuild, int& from, int& to) {
  if (rebuild) {
    from = -1, to = s.labels[b * s.n + i];
    return true;
  }
  if (!(word >> (i & 15) & 1u)) return false;
  from = s.left_labels[b * s.n + i], to = s.labels[b * s.n + i];
  return true;
}

// Grid (tiles, B), after a memset of the counts. A converged batch has no moves (its moved bits
// are from an earlier iteration). kSharedCounters: the tile's counts gather in shared memory (K of
// them) and only those of clusters with moves are written, else each move adds to global memory.
template <bool kSharedCounters>
__global__ void __launch_bounds__(kTileThreads) count_moves_kernel(LoopState s) {
  extern __shared__ std::uint32_t counters[];  // K, with kSharedCounters
  const std::int64_t b = blockIdx.y, t = blockIdx.x, first = t * s.tile_points, last = min(s.n, first + s.tile_points);
  if (s.done[b]) return;
  if constexpr (kSharedCounters) {
    for (std::int64_t j = threadIdx.x; j < s.k; j += kTileThreads) counters[j] = 0;
    __syncthreads();
  }
  auto count = [&](int j) {
    if constexpr (kSharedCounters) atomicAdd(counters + j, 1u);
    else atomicAdd(s.tile_counts + (b * s.k + j) * s.tiles + t, 1u);
  };
  const std::uint16_t* moved = s.moved + b * moved_words(s.n);
  const bool rebuild = rebuilds(s, b);
  for (std::int64_t i = first + threadIdx.x; i < last; i += kTileThreads) {
    int from = -1, to = -1;
    if (!move_of(s, b, i, rebuild ? 0u : moved[i >> 4], rebuild, from, to)) continue;
    count(to);
    if (from >= 0) count(from);
  }
  if constexpr (kSharedCounters) {
    __syncthreads();
    for (std::int64_t j = threadIdx.x; j < s.k; j += kTileThreads)
      if (counters[j]) s.tile_counts[(b * s.k + j) * s.tiles + t] = counters[j];
  }
}

// After the scan, grid (tiles, B): rounds of kTileRound points, each listed in order in shared
// memory (a block scan of the moves per thread), then ranked by one warp, 32 moves at a time:
// lanes of one cluster take consecutive ranks in lane order, from a counter per cluster that the
// group's first lane reads and advances. kSharedCounters: the counters are the block's, in shared
// memory (K of them), and a move goes to its group's start plus its rank; otherwise (K too large)
// the counter is the group's count in global memory, counted down, and a move goes to the next
// group's start minus what is left.
template <bool kSharedCounters>
__global__ void __launch_bounds__(kTileThreads) place_moves_kernel(LoopState s) {
  using Scan = cub::BlockScan<int, kTileThreads>;
  __shared__ typename Scan::TempStorage scan_tmp;
  __shared__ std::int32_t list_id[2 * kTileRound], list_key[2 * kTileRound];
  __shared__ std::uint32_t list_pos[2 * kTileRound];
  extern __shared__ std::uint32_t counters[];  // K, with kSharedCounters
  const std::int64_t b = blockIdx.y, t = blockIdx.x, first = t * s.tile_points, last = min(s.n, first + s.tile_points);
  if (s.done[b]) return;
  const int lane = threadIdx.x % 32;
  const unsigned below = (1u << lane) - 1;
  if constexpr (kSharedCounters)
    for (std::int64_t j = threadIdx.x; j < s.k; j += kTileThreads) counters[j] = 0;
  const std::uint16_t* moved = s.moved + b * moved_words(s.n);
  const bool rebuild = rebuilds(s, b);
  for (std::int64_t r0 = first; r0 < last; r0 += kTileRound) {
    const std::int64_t i0 = r0 + 4 * threadIdx.x;  // four points in one 16-bit word
    const std::uint32_t word = i0 < last && !rebuild ? moved[i0 >> 4] : 0u;
    int from[4], to[4], moves = 0;
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      from[u] = to[u] = -1;
      if (i0 + u < last && move_of(s, b, i0 + u, word, rebuild, from[u], to[u])) moves += from[u] >= 0 ? 2 : 1;
    }
    int at = 0, listed = 0;
    Scan(scan_tmp).ExclusiveSum(moves, at, listed);
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      const std::int32_t id = static_cast<std::int32_t>(b * s.n + i0 + u);
      if (from[u] >= 0) list_id[at] = ~id, list_key[at++] = static_cast<std::int32_t>(b * s.k + from[u]);
      if (to[u] >= 0) list_id[at] = id, list_key[at++] = static_cast<std::int32_t>(b * s.k + to[u]);
    }
    __syncthreads();
    if (threadIdx.x < 32) {
      for (int e0 = 0; e0 < listed; e0 += 32) {
        const bool valid = e0 + lane < listed;
        const std::int32_t key = valid ? list_key[e0 + lane] : -1;
        const unsigned peers = __match_any_sync(0xffffffffu, key);
        const int leader = __ffs(peers) - 1, rank = __popc(peers & below), group = __popc(peers);
        if constexpr (kSharedCounters) {
          std::uint32_t* counter = counters + (key - b * s.k);
          std::uint32_t base = valid && lane == leader ? *counter : 0u;
          base = __shfl_sync(0xffffffffu, base, leader);
          if (valid) {
            list_pos[e0 + lane] = base + rank;
            if (lane == leader) *counter = base + group;
          }
        } else {
          std::uint32_t* left = s.tile_counts + static_cast<std::int64_t>(key) * s.tiles + t;
          std::uint32_t remaining = valid && lane == leader ? *left : 0u;
          remaining = __shfl_sync(0xffffffffu, remaining, leader);
          if (valid) {
            list_pos[e0 + lane] = s.tile_starts[static_cast<std::int64_t>(key) * s.tiles + t + 1] - remaining + rank;
            if (lane == leader) *left = remaining - group;
          }
        }
        __syncwarp();  // the next group of the same cluster reads the counter written here
      }
    }
    __syncthreads();
    for (int e = threadIdx.x; e < listed; e += kTileThreads) {
      const std::uint32_t pos =
          kSharedCounters ? s.tile_starts[static_cast<std::int64_t>(list_key[e]) * s.tiles + t] + list_pos[e] : list_pos[e];
      s.moves[pos] = make_int2(list_id[e], list_key[e]);  // one scattered write a move
    }
    __syncthreads();  // the lists are rewritten by the next round
  }
}

// The length of the runs the moves are added in: total / s.runs (rounded up), at least
// kMinRunRows, so that there are never more than s.runs runs.
constexpr std::int64_t kMinRunRows = 16;
__device__ __forceinline__ std::int64_t run_rows(const LoopState& s, std::int64_t total) {
  return max(kMinRunRows, (total + s.runs - 1) / s.runs);
}

// One warp adds run p (run_rows consecutive positions of the sorted moves), segment by segment:
// a join's row with its sign, a leave's negated. The segment of cluster g in run p goes to row
// g + p of run_sums (and its joins - leaves to run_counts): unique, because runs and clusters
// both advance along the sorted order. The walk takes kWalkStep positions at a time: it lists the
// step's move ids and segment starts in shared memory, then reads the rows kSumRows at a time
// (their loads in flight together); a segment may go on into the next step and the next run.
constexpr int kWalkThreads = 256;
constexpr int kWalkStep = 256;

// Four rows in flight per warp and four blocks per multiprocessor (64 registers): more warps
// keep more rows in flight than longer lists per warp (H100, ncu, the first three iterations at
// 8.4M x 128 float16: 1.64 / 1.96 / 0.51 ms, against 2.23 / 2.68 / 0.69 with eight rows and three
// blocks; 500K float32 0.13 / 0.12 / 0.05 against 0.16 / 0.15 / 0.07; two rows with six or eight
// blocks, four with five or six, eight with four, sixteen with two or three: all slower).
constexpr int kSumRows = 4;
__global__ void __launch_bounds__(kWalkThreads, 4) move_sums_kernel(LoopState s, PointsView x, bool vector) {
  constexpr int kWarps = kWalkThreads / 32, kPerLane = kWalkStep / 32;
  __shared__ std::int32_t move_id[kWarps][kWalkStep], start_key[kWarps][kWalkStep];
  __shared__ std::uint8_t start_at[kWarps][kWalkStep];  // position in the step
  const std::int64_t total = move_offset(s, s.batches * s.k), rows = run_rows(s, total);
  const std::int64_t p = (blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x) / 32;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const std::int64_t first = p * rows;
  if (first >= total) return;
  const std::int64_t last = min(total, first + rows);
  const unsigned n = static_cast<unsigned>(x.n), below = (1u << lane) - 1;
  for (std::int64_t d0 = 0; d0 < s.d; d0 += 32 * kColsPerLane) {
    const std::int64_t col = d0 + lane * kColsPerLane, cols_left = s.d - col;
    double acc[kColsPerLane] = {};
    int count = 0;  // joins - leaves of the segment
    std::int32_t cur = s.moves[first].y;
    auto flush = [&] {
      if (cols_left > 0)
#pragma unroll
        for (int u = 0; u < kColsPerLane; ++u)
          if (u < cols_left) s.run_sums[(cur + p) * s.d + col + u] = acc[u];
      if (d0 == 0 && lane == 0) s.run_counts[cur + p] = count;
#pragma unroll
      for (int u = 0; u < kColsPerLane; ++u) acc[u] = 0;
      count = 0;
    };
    for (std::int64_t c0 = first; c0 < last; c0 += kWalkStep) {
      const int steps = static_cast<int>(min(static_cast<std::int64_t>(kWalkStep), last - c0));
      std::int32_t key[kPerLane];
#pragma unroll
      for (int u = 0; u < kPerLane; ++u) {
        const std::int64_t pos = c0 + 32 * u + lane;
        const int2 m = pos < last ? s.moves[pos] : make_int2(0, -1);
        key[u] = m.y;
        if (pos < last) move_id[warp][32 * u + lane] = m.x;
      }
      // List the step's segment starts, in sorted order.
      int starts = 0;
#pragma unroll
      for (int u = 0; u < kPerLane; ++u) {
        const std::int32_t up = __shfl_up_sync(0xffffffffu, key[u], 1);
        const std::int32_t prev_last = u == 0 ? cur : __shfl_sync(0xffffffffu, key[u > 0 ? u - 1 : 0], 31);
        const bool start = key[u] >= 0 && key[u] != (lane == 0 ? prev_last : up);
        const unsigned sm = __ballot_sync(0xffffffffu, start);
        if (start) {
          start_key[warp][starts + __popc(sm & below)] = key[u];
          start_at[warp][starts + __popc(sm & below)] = static_cast<std::uint8_t>(32 * u + lane);
        }
        starts += __popc(sm);
      }
      __syncwarp();
      // Add the rows, kSumRows loads in flight; close a segment at each listed start before them.
      int f = 0;
      for (int e0 = 0; e0 < steps; e0 += kSumRows) {
        float v[kSumRows][kColsPerLane], sc[kSumRows];
#pragma unroll
        for (int r = 0; r < kSumRows; ++r) {
          sc[r] = 0.f;
          if (e0 + r < steps) {
            const std::int32_t id = move_id[warp][e0 + r];
            const unsigned pid = static_cast<unsigned>(id < 0 ? ~id : id), b = pid / n, i = pid - b * n;
            const long long row = static_cast<long long>(b) * x.batch_stride + static_cast<long long>(i) * x.row_stride;
            if (cols_left > 0) load4(x, row + col, vector, cols_left, v[r]);
            sc[r] = (x.row_scale ? x.row_scale[pid] : 1.f) * (id < 0 ? -1.f : 1.f);
          }
        }
#pragma unroll
        for (int r = 0; r < kSumRows; ++r) {
          if (e0 + r >= steps) break;
          while (f < starts && start_at[warp][f] <= e0 + r) {  // close the segment before this row
            flush();
            cur = start_key[warp][f++];
          }
          count += move_id[warp][e0 + r] < 0 ? -1 : 1;
          if (cols_left > 0)
#pragma unroll
            for (int c = 0; c < kColsPerLane; ++c) acc[c] += v[r][c] * sc[r];
        }
      }
      __syncwarp();  // the lists are rewritten by the next step
    }
    flush();
  }
}

// The dense path. Thread group q (of dense_groups) holds its own copy of the sums; a thread owns
// kColsPerLane adjacent columns and adds its group's share of the block's points in order, 8 rows
// in flight: no atomics, the same result on every run.
__global__ void dense_block_kernel(LoopState s, PointsView x, std::int64_t blocks_per_batch, bool vector) {
  extern __shared__ float sh[];
  const int groups = s.dense_groups, D = static_cast<int>(s.d), K = static_cast<int>(s.k);
  float* sums = sh;                                                                     // [groups][K][D]
  int* counts = reinterpret_cast<int*>(sh + static_cast<std::size_t>(groups) * K * D);  // [groups][K]
  for (int i = threadIdx.x; i < groups * K * D; i += blockDim.x) sums[i] = 0.f;
  for (int i = threadIdx.x; i < groups * K; i += blockDim.x) counts[i] = 0;
  __syncthreads();
  const std::int64_t b = blockIdx.y, block = blockIdx.x;
  const std::int64_t first = block * s.dense_rows, last = min(s.n, first + s.dense_rows);
  const int width = (D + kColsPerLane - 1) / kColsPerLane;  // threads per group
  const int q = threadIdx.x / width, col = (threadIdx.x % width) * kColsPerLane;
  if (q < groups && first < last) {
    const std::int64_t span = (last - first + groups - 1) / groups;
    const std::int64_t lo = first + q * span, hi = min(last, lo + span);
    float* my = sums + static_cast<std::size_t>(q) * K * D;
    const std::int32_t* labels = s.labels + b * s.n;
    const std::int64_t base = b * x.batch_stride, cols_left = D - col;
    for (std::int64_t i0 = lo; i0 < hi; i0 += kRowsInFlight) {
      const int count = static_cast<int>(hi - i0 < kRowsInFlight ? hi - i0 : kRowsInFlight);
      int l[kRowsInFlight];
      float v[kRowsInFlight][kColsPerLane];
#pragma unroll
      for (int u = 0; u < kRowsInFlight; ++u) {
        l[u] = u < count ? labels[i0 + u] : 0;
        if (u < count) {
          load4(x, base + (i0 + u) * x.row_stride + col, vector, cols_left, v[u]);
          if (x.row_scale) {
            const float scale = x.row_scale[b * s.n + i0 + u];
#pragma unroll
            for (int c = 0; c < kColsPerLane; ++c) v[u][c] *= scale;
          }
        }
      }
#pragma unroll
      for (int u = 0; u < kRowsInFlight; ++u) {
        if (u >= count) break;
#pragma unroll
        for (int c = 0; c < kColsPerLane; ++c)
          if (c < cols_left) my[l[u] * D + col + c] += v[u][c];
        if (col == 0) counts[q * K + l[u]] += 1;
      }
    }
  }
  __syncthreads();
  float* out = s.partial + (b * blocks_per_batch + block) * K * D;
  for (int e = threadIdx.x; e < K * D; e += blockDim.x) {
    float t = 0.f;
    for (int g = 0; g < groups; ++g) t += sums[static_cast<std::size_t>(g) * K * D + e];
    out[e] = t;
  }
  std::int32_t* out_counts = s.partial_counts + (b * blocks_per_batch + block) * K;
  for (int k = threadIdx.x; k < K; k += blockDim.x) {
    int t = 0;
    for (int g = 0; g < groups; ++g) t += counts[g * K + k];
    out_counts[k] = t;
  }
}

__global__ void dense_combine_kernel(LoopState s, std::int64_t blocks_per_batch) {
  const std::int64_t g = blockIdx.x, b = g / s.k, j = g % s.k;
  const std::int64_t col = blockIdx.y * static_cast<std::int64_t>(blockDim.x) + threadIdx.x;
  const std::int64_t first = b * blocks_per_batch;
  constexpr int kInFlight = 8;  // loads issued together, added in block order
  if (col == 0) {
    std::int64_t c = 0;
    for (std::int64_t p = 0; p < blocks_per_batch; ++p) c += s.partial_counts[(first + p) * s.k + j];
    s.counts[g] = c;
  }
  if (col >= s.d) return;
  double sum = 0;
  for (std::int64_t p0 = 0; p0 < blocks_per_batch; p0 += kInFlight) {
    float v[kInFlight];
#pragma unroll
    for (int u = 0; u < kInFlight; ++u)
      v[u] = p0 + u < blocks_per_batch ? s.partial[((first + p0 + u) * s.k + j) * s.d + col] : 0.f;
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) sum += v[u];
  }
  s.sums[g * s.d + col] = sum;
}

// Empty clusters take the points farthest from their centroids, farthest first (ties: lower
// index), in cluster order; each such point leaves its cluster's sums (scikit-learn's rule).
// Clusters emptied by a move are not refilled. Run by one block for batch b; on_move(j, from) is
// called by every thread after the point has moved from cluster `from` to the empty cluster j.
// Reads go through __ldcg: on the scan path other blocks of the same kernel wrote the sums.
template <class OnMove>
__device__ void relocate_empty_clusters(const LoopState& s, const PointsView& x, std::int64_t b, OnMove on_move) {
  const std::int64_t K = s.k, N = s.n, D = s.d;
  std::int64_t* counts = s.counts + b * K;
  bool any = false;
  for (std::int64_t j = threadIdx.x; j < K; j += blockDim.x)
    if (__ldcg(counts + j) == 0) counts[j] = -1, any = true;  // -1: empty before any move
  if (!__syncthreads_or(any)) return;

  __shared__ float prev_d, red_d[32];
  __shared__ long long prev_i, red_i[32];
  if (threadIdx.x == 0) prev_d = __int_as_float(0x7f800000), prev_i = -1;
  __syncthreads();
  const float* dist = s.dist + b * N;
  for (std::int64_t j = 0; j < K; ++j) {
    if (__ldcg(counts + j) != -1) continue;  // uniform: every thread reads the same value
    __syncthreads();
    const float pd = prev_d;
    const long long pi = prev_i;
    float bd = -__int_as_float(0x7f800000);
    long long bi = -1;
    for (std::int64_t i = threadIdx.x; i < N; i += blockDim.x) {
      const float di = dist[i];
      const bool after = di < pd || (di == pd && i > pi);
      if (after && (bi < 0 || di > bd)) bd = di, bi = i;  // i grows per thread: ties keep the lower
    }
    for (int off = 16; off > 0; off >>= 1) {
      const float od = __shfl_xor_sync(0xffffffffu, bd, off);
      const long long oi = __shfl_xor_sync(0xffffffffu, bi, off);
      if (oi >= 0 && (bi < 0 || od > bd || (od == bd && oi < bi))) bd = od, bi = oi;
    }
    if (threadIdx.x % 32 == 0) red_d[threadIdx.x / 32] = bd, red_i[threadIdx.x / 32] = bi;
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w)
        if (red_i[w] >= 0 && (bi < 0 || red_d[w] > bd || (red_d[w] == bd && red_i[w] < bi))) bd = red_d[w], bi = red_i[w];
      prev_d = bd, prev_i = bi;
    }
    __syncthreads();
    const long long i = prev_i;
    if (i < 0) break;  // fewer points than empty clusters cannot happen (K <= N)
    const std::int64_t from = s.labels[b * N + i];
    const std::int64_t row_at = b * x.batch_stride + i * x.row_stride;
    const float scale = x.row_scale ? x.row_scale[b * N + i] : 1.f;
    for (std::int64_t q = threadIdx.x; q < D; q += blockDim.x) {
      const double v = load_as_float(x.data, row_at + q, x.dtype) * scale;
      s.sums[(b * K + from) * D + q] = __ldcg(s.sums + (b * K + from) * D + q) - v;
      s.sums[(b * K + j) * D + q] = v;
    }
    if (threadIdx.x == 0) counts[from] = __ldcg(counts + from) - 1, counts[j] = 1;
    __syncthreads();
    on_move(j, from);
  }
  for (std::int64_t j = threadIdx.x; j < K; j += blockDim.x)
    if (__ldcg(counts + j) == -1) counts[j] = 0;
  __syncthreads();
}

// The sort and dense paths' relocation: one block per batch, after the sums are complete.
constexpr int kRelocateThreads = 1024;
__global__ void relocate_kernel(LoopState s, PointsView x) {
  const std::int64_t b = blockIdx.x;
  if (s.done[b]) return;
  relocate_empty_clusters(s, x, b, [](std::int64_t, std::int64_t) {});
}

// Four float64 values reduced together (one pass over the block instead of four).
struct Quad {
  double v[4];
};
struct QuadSum {
  __device__ Quad operator()(const Quad& a, const Quad& b) const {
    return {{a.v[0] + b.v[0], a.v[1] + b.v[1], a.v[2] + b.v[2], a.v[3] + b.v[3]}};
  }
};

// Fixed-order reductions over a block of THREADS threads; every thread gets the result. Each
// component of a Quad goes through the same tree as a lone value would.
template <int THREADS>
struct BlockReducer {
  using Reduce = cub::BlockReduce<double, THREADS>;
  using Reduce4 = cub::BlockReduce<Quad, THREADS>;
  struct Storage {
    typename Reduce::TempStorage tmp;
    typename Reduce4::TempStorage tmp4;
    double out;
    Quad out4;
  };
  Storage* st;
  __device__ int rank() const { return threadIdx.x; }
  __device__ int size() const { return blockDim.x; }
  __device__ void sync() const { __syncthreads(); }
  __device__ double sum(double v) const { return from_first_thread(Reduce(st->tmp).Sum(v), &st->out); }
  template <class Op>
  __device__ Quad reduce(const Quad& v, Op op) const {
    return from_first_thread(Reduce4(st->tmp4).Reduce(v, op), &st->out4);
  }
};

// The same for one warp (the warp-per-cluster finish): a butterfly of shuffles, after which every
// lane holds the same value (each step adds the same two operands in every lane).
struct WarpReducer {
  __device__ int rank() const { return threadIdx.x % 32; }
  __device__ int size() const { return 32; }
  __device__ void sync() const { __syncwarp(); }
  __device__ double sum(double v) const {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
  }
  template <class Op>
  __device__ Quad reduce(Quad v, Op op) const {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
      Quad o;
#pragma unroll
      for (int c = 0; c < 4; ++c) o.v[c] = __shfl_xor_sync(0xffffffffu, v.v[c], off);
      v = op(v, o);
    }
    return v;
  }
};

// A value of a row that other blocks of the same kernel may have written: read past L1.
template <bool kGlobal, class T>
__device__ __forceinline__ T row_value(const T* p) {
  if constexpr (kGlobal) return __ldcg(p);
  else return *p;
}

// The new centroid of cluster (b, j) from its sums (D values, float64) and member count: the
// mean, or old (the centroid before the update) when it has no member; normalised under cosine
// and dot; its squared shift and objective term; its compute-type row. row: D floats of scratch
// that may be prev (each element is read before prev's is written) or s.c's row when prev is
// null; prev: where old is saved (null: it is there already). kGlobal: the rows are in global
// memory (no bound on D), else in shared memory. Each thread reads only the elements it writes.
// Called by the whole team that red reduces over (a block or a warp).
template <bool kGlobal, class Red>
__device__ void finalize_cluster(const LoopState& s, DType ct_type, std::int64_t b, std::int64_t j, std::int64_t count,
                                 const double* sums, const float* old, float* row, float* prev, const Red& red) {
  const std::int64_t g = b * s.k + j, D = s.d;
  double sq = 0;
  for (std::int64_t q = red.rank(); q < D; q += red.size()) {
    const float v = count > 0 ? static_cast<float>(row_value<kGlobal>(sums + q) * (1.0 / static_cast<double>(count)))
                              : row_value<kGlobal>(old + q);
    row[q] = v;
    sq += static_cast<double>(v) * v;
  }
  if (s.metric != Metric::euclidean) {
    const double norm = sqrt(red.sum(sq));
    const float inv = static_cast<float>(1.0 / (norm > 1e-12 ? norm : 1e-12));
    for (std::int64_t q = red.rank(); q < D; q += red.size()) row[q] *= inv;
  }
  // Shift, sums . row, ||row||^2 and ||compute-type row||^2 in one reduction; the compute-type row
  // (write_compute_row's values; its padding columns stay the zeros prepare_centroids wrote).
  const std::int64_t at = (b * s.plan.kp + j) * s.plan.dp;
  const bool tf32 = s.plan.kind == MmaKind::tf32;  // stored rounded: the kernel skips the conversion
  Quad t = {{0, 0, 0, 0}};
  for (std::int64_t q = red.rank(); q < D; q += red.size()) {
    const float v = row[q], o = row_value<kGlobal>(old + q);
    const double diff = static_cast<double>(v) - o;
    t.v[0] += diff * diff;
    t.v[1] += row_value<kGlobal>(sums + q) * v;
    t.v[2] += static_cast<double>(v) * v;
    const float r = store_rounded(s.ct, at + q, ct_type, tf32 ? __uint_as_float(to_tf32(v)) : v);
    t.v[3] += static_cast<double>(r) * r;
    if (prev) prev[q] = o;
    s.c[g * D + q] = v;
  }
  t = red.reduce(t, QuadSum());
  if (red.rank() == 0) {
    const double sc = t.v[1], cc = t.v[2];
    s.shift_k[g] = t.v[0];
    s.objective_k[g] = count == 0 ? 0.0 : s.metric == Metric::euclidean ? static_cast<double>(count) * cc - 2 * sc : sc;
    const float h = s.metric == Metric::euclidean ? static_cast<float>(0.5 * t.v[3]) : 0.f;
    s.h[b * s.plan.kp + j] = h;
    if (s.bias) write_bias_row(s, ct_type, b, j, h);
  }
}

// Called by every block of batch b once its share of the batch is written (`expected` blocks per
// batch, a ticket per batch): true in the last one to arrive, which then sees every other
// block's writes. The ticket is reset for the next iteration.
__device__ bool last_of_batch(const LoopState& s, std::int64_t b, unsigned expected) {
  __shared__ bool last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    last = atomicAdd(s.tickets + b, 1u) == expected - 1;
    if (last) s.tickets[b] = 0;
  }
  __syncthreads();
  if (last) __threadfence();
  return last;
}

// Batch b's verdict, in its last block: the largest shift, the objective, the history entry, the
// convergence test (values other blocks wrote are read past L1).
template <class Red>
__device__ void bookkeeping_batch(const LoopState& s, std::int64_t b, const Red& red) {
  const int it = *static_cast<volatile int*>(s.iteration);
  Quad t = {{0, 0, 0, 0}};  // objective terms (sum), shifts (max)
  for (std::int64_t j = threadIdx.x; j < s.k; j += blockDim.x) {
    t.v[0] += __ldcg(s.objective_k + b * s.k + j);
    t.v[1] = fmax(t.v[1], __ldcg(s.shift_k + b * s.k + j));
  }
  t = red.reduce(t, [](const Quad& a, const Quad& c) { return Quad{{a.v[0] + c.v[0], a.v[1] > c.v[1] ? a.v[1] : c.v[1], 0, 0}}; });
  const double obj = t.v[0], mx = sqrt(t.v[1]);
  if (threadIdx.x == 0) {
    if (s.history) {  // (sum_xx is there only then)
      const double objective = s.metric == Metric::euclidean ? fmax(0.0, s.sum_xx[b] + obj)
                               : s.metric == Metric::cosine  ? static_cast<double>(s.n) - obj
                                                             : -obj;
      double* h = s.history + (b * s.max_iter + it) * 3;
      h[0] = mx, h[1] = objective, h[2] = s.changed[b];
    }
    s.changed[b] = 0;
    s.n_iter[b] = it + 1;
    if (mx < s.tol) s.done[b] = 1;
  }
}

// After a batch's last block (done or not): the last batch to finish advances the iteration and
// decides whether the loop is finished.
__device__ void finish_batch(const LoopState& s) {
  if (threadIdx.x != 0) return;
  __threadfence();
  if (atomicAdd(s.tickets + s.batches, 1u) == s.batches - 1) {  // every batch's verdict is in
    __threadfence();
    int all_done = 1;
    for (std::int64_t c = 0; c < s.batches; ++c) all_done &= static_cast<volatile std::uint8_t*>(s.done)[c] != 0;
    const int it = *static_cast<volatile int*>(s.iteration);
    *s.iteration = it + 1;
    *s.finished = (it + 1 >= s.max_iter || all_done) ? 1 : 0;
    s.tickets[s.batches] = 0;
  }
}

// The dense path's new centroid of cluster g (one block each) from s.sums and s.counts; the last
// block of each batch then does the batch's bookkeeping (finish_iteration). D <= 4 * kDenseThreads
// there: the row fits shared memory.
__global__ void finalize_kernel(LoopState s, DType ct_type) {
  __shared__ typename BlockReducer<kBlock>::Storage red_storage;
  extern __shared__ float row[];  // D floats
  const BlockReducer<kBlock> red{&red_storage};
  const std::int64_t g = blockIdx.x, b = g / s.k, j = g % s.k, D = s.d;
  if (!s.done[b]) finalize_cluster<false>(s, ct_type, b, j, s.counts[g], s.sums + g * D, s.c + g * D, row, s.c_prev + g * D, red);
  if (!last_of_batch(s, b, static_cast<unsigned>(s.k))) return;
  if (!s.done[b]) bookkeeping_batch(s, b, red);
  finish_batch(s);
}

// The relocation of batch b's empty clusters (relocate_empty_clusters), by the batch's
// last block of the fused update: the clusters were finalised already, so each cluster a move
// touches is finalised again from its new sums (its old centroid is in c_prev), in place.
template <class Red>
__device__ void relocate_batch(const LoopState& s, const PointsView& x, std::int64_t b, DType ct_type, const Red& red) {
  const std::int64_t K = s.k, D = s.d;
  auto refinalize = [&](std::int64_t j) {
    const std::int64_t g = b * K + j;
    const std::int64_t count = __ldcg(s.counts + g);
    __syncthreads();
    finalize_cluster<true>(s, ct_type, b, j, count, s.sums + g * D, s.c_prev + g * D, s.c + g * D, nullptr, red);
    __syncthreads();
  };

  relocate_empty_clusters(s, x, b, [&](std::int64_t j, std::int64_t from) {
    refinalize(j);
    refinalize(from);
  });
}

// The end of a fused update, in every block of batch b once its cluster is finalised: the
// batch's last block relocates empty clusters (when asked) and does the bookkeeping, and the last
// batch to get there advances the iteration.
template <class Red>
__device__ void close_batch(const LoopState& s, const PointsView& x, std::int64_t b, bool relocate, DType ct_type,
                            const Red& red) {
  if (!last_of_batch(s, b, static_cast<unsigned>(s.k))) return;
  if (!s.done[b]) {
    if (relocate) relocate_batch(s, x, b, ct_type, red);
    bookkeeping_batch(s, b, red);
  }
  finish_batch(s);
}

// The sort path's member sums of cluster g, by a team (red: a block or a warp): members[g] (zero
// where the batch rebuilds) += the signed rows of g's moves (the run rows of g, added in run
// order), also into s.sums when the relocation edits a copy of its own. With sums_row, each
// column's new sum and old centroid also go to sums_row and old_row (shared memory). Returns the
// member count, kept the same way; the team's first thread writes it back.
template <class Red>
__device__ std::int64_t update_members(const LoopState& s, std::int64_t g, const Red& red, double* sums_row, float* old_row) {
  const std::int64_t D = s.d, lo = move_offset(s, g), hi = move_offset(s, g + 1);
  const bool rebuild = rebuilds(s, g / s.k);  // the sums start from zero
  const std::int64_t rows = run_rows(s, move_offset(s, s.batches * s.k));
  const std::int64_t p0 = lo / rows, p1 = hi > lo ? (hi - 1) / rows : p0 - 1;
  for (std::int64_t col = red.rank(); col < D; col += red.size()) {
    double moved = 0;
#pragma unroll 8  // the loads issued together, the adds still in run order
    for (std::int64_t p = p0; p <= p1; ++p) moved += s.run_sums[(g + p) * D + col];
    const double m = (rebuild ? 0.0 : s.members[g * D + col]) + moved;
    s.members[g * D + col] = m;
    if (s.sums != s.members) s.sums[g * D + col] = m;  // for the relocation, which edits sums
    if (sums_row) sums_row[col] = m, old_row[col] = s.c[g * D + col];
  }
  std::int64_t count = rebuild ? 0 : s.member_counts[g];
  for (std::int64_t p = p0; p <= p1; ++p) count += s.run_counts[g + p];
  red.sync();  // every member has read member_counts[g] before it is replaced
  if (red.rank() == 0) {
    s.member_counts[g] = count;
    if (s.counts != s.member_counts) s.counts[g] = count;
  }
  return count;
}

// The sort path's last step, one block per cluster g: members[g] and its count brought up to date
// from g's run rows (update_members), then the new centroid; the batch's last block relocates and
// does the bookkeeping (as the scan path does). kGlobal: the rows are read again from global memory (any D) instead of
// being kept in shared memory (16 D bytes, up to kFinishSmemD columns: three fewer round trips to
// L2 per block, 210 against 185 us per iteration at 32 x 74K, K = 1,000).
// 16 D bytes of dynamic shared memory plus the kernel's static ~700 stay within the 48 KB a launch
// gets without the attribute.
constexpr std::int64_t kFinishSmemD = 3000;

// At most 64 registers: eight blocks per multiprocessor (the kernel is latency-bound; seven, with
// the relocation's registers, measured 205 against 187 us per iteration at 32 x 74K).
template <bool kGlobal>
__global__ void __launch_bounds__(kBlock, 8) sort_finish_kernel(LoopState s, PointsView x, bool relocate, DType ct_type) {
  __shared__ typename BlockReducer<kBlock>::Storage red_storage;
  extern __shared__ __align__(16) unsigned char smem[];  // 16 D bytes unless kGlobal
  const BlockReducer<kBlock> red{&red_storage};
  const std::int64_t g = blockIdx.x, b = g / s.k, j = g % s.k, D = s.d;
  double* sums_row = reinterpret_cast<double*>(smem);
  float* old_row = reinterpret_cast<float*>(sums_row + (kGlobal ? 0 : D));
  float* row = old_row + (kGlobal ? 0 : D);
  if (!s.done[b]) {
    const std::int64_t count = update_members(s, g, red, kGlobal ? nullptr : sums_row, old_row);
    float* prev = s.c_prev + g * D;  // global rows: also the new row until it is written to s.c
    if constexpr (kGlobal) {
      finalize_cluster<true>(s, ct_type, b, j, count, s.members + g * D, s.c + g * D, prev, prev, red);
    } else {
      __syncthreads();
      finalize_cluster<false>(s, ct_type, b, j, count, sums_row, old_row, row, prev, red);
    }
  }
  close_batch(s, x, b, relocate, ct_type, red);
}

// The sort path's finish with a warp per cluster, for many small clusters (the block-per-cluster
// finish is latency-bound there; see warp_finish): kFinishWarps clusters a block, the same sums and centroid per cluster as
// sort_finish_kernel, with the warp's rows in shared memory (D <= kWarpFinishD). The relocation
// and bookkeeping follow in close_batches_kernel.
constexpr int kFinishWarps = kBlock / 32;
constexpr std::int64_t kWarpFinishD = 512;  // kFinishWarps * 16 D bytes of shared memory

__global__ void __launch_bounds__(kBlock) sort_finish_warp_kernel(LoopState s, DType ct_type) {
  extern __shared__ __align__(16) unsigned char smem[];  // kFinishWarps * 16 D bytes
  const WarpReducer red;
  const int warp = threadIdx.x / 32;
  const std::int64_t g = static_cast<std::int64_t>(blockIdx.x) * kFinishWarps + warp, D = s.d;
  if (g >= s.batches * s.k) return;  // (no block-wide barrier below)
  const std::int64_t b = g / s.k, j = g % s.k;
  if (s.done[b]) return;
  double* sums_row = reinterpret_cast<double*>(smem) + warp * 2 * D;
  float* old_row = reinterpret_cast<float*>(sums_row + D);
  float* row = old_row + D;
  const std::int64_t count = update_members(s, g, red, sums_row, old_row);
  __syncwarp();
  finalize_cluster<false>(s, ct_type, b, j, count, sums_row, old_row, row, s.c_prev + g * D, red);
}

// After sort_finish_warp_kernel, one block per batch: the relocation and the bookkeeping that
// the block-per-cluster finish does in each batch's last block.
__global__ void __launch_bounds__(kBlock) close_batches_kernel(LoopState s, PointsView x, bool relocate, DType ct_type) {
  __shared__ typename BlockReducer<kBlock>::Storage red_storage;
  const BlockReducer<kBlock> red{&red_storage};
  const std::int64_t b = blockIdx.x;
  if (!s.done[b]) {
    if (relocate) relocate_batch(s, x, b, ct_type, red);
    bookkeeping_batch(s, b, red);
  }
  finish_batch(s);
}

// The fused update for small problems (s.scan): one block per cluster (b, j) finds its members by
// reading the batch's labels, adds their rows in a fixed order, finalises the centroid; the
// batch's last block relocates and does the bookkeeping. One launch after the assignment instead
// of the sort or block sums, combine, relocation, finalize and bookkeeping.
//
// Members: rounds of THREADS * kScanPerThread labels (read four at a time; with PREFETCH the next
// round's are loaded while this one is listed); each thread's matches go into a list in shared
// memory in thread order (a block scan gives the offsets), so the list order depends on the
// labels only. The list is added up when it would
// overflow and at the end: thread group q (of `groups`, each `width` threads of 4 columns) adds
// entries q, q + groups, ... in order into float64 accumulators; the groups' sums are then added
// in group order. No atomics: the same result on every run.
constexpr int kScanPerThread = 16;

__host__ __device__ constexpr std::int64_t scan_head_bytes(std::int64_t d, int threads, bool incremental) {
  const std::int64_t width = (d + 3) / 4, groups = threads / width;
  // incremental: two lists, the entries and the moved points of a round they are picked from
  const std::int64_t list = (incremental ? 2 : 1) * std::int64_t{threads} * kScanPerThread * 4;
  const std::int64_t part = groups * width * 4 * 8;
  return list > part ? list : part;
}

// Built with 256 threads and the next round prefetched (~125 registers, two blocks per
// multiprocessor). 512 threads without the prefetch (64 registers) measured no faster on an H100
// (5K x 64, K = 50: 32.0 against 30.5 us per iteration; 50K x 128, K = 256: 100.5 against 98.8).
// INCREMENTAL: built with the incremental rounds (s.left_labels set); without them the kernel is
// the full scan alone, whose registers and schedule the other branch would otherwise share.
template <int THREADS, bool PREFETCH, bool INCREMENTAL>
__global__ void __launch_bounds__(THREADS, 2)
    scan_update_kernel(LoopState s, PointsView x, bool vector, bool relocate, DType ct_type) {
  constexpr int kScanRound = THREADS * kScanPerThread;
  using Scan = cub::BlockScan<int, THREADS>;
  using Red = BlockReducer<THREADS>;
  __shared__ typename Scan::TempStorage scan_tmp;
  __shared__ typename Red::Storage red_storage;
  extern __shared__ __align__(16) unsigned char smem[];
  const Red red{&red_storage};
  const std::int64_t b = blockIdx.y, j = blockIdx.x, K = s.k, N = s.n, g = b * K + j;
  const int D = static_cast<int>(s.d), width = (D + 3) / 4, groups = THREADS / width;
  int* list = reinterpret_cast<int*>(smem);        // [kScanRound] member ids
  double* part = reinterpret_cast<double*>(smem);  // [groups][width * 4], after the last list
  double* sums_row = reinterpret_cast<double*>(smem + scan_head_bytes(D, THREADS, INCREMENTAL));
  float* old_row = reinterpret_cast<float*>(sums_row + D);
  float* row = old_row + D;

  if (!s.done[b]) {
    const int q = threadIdx.x / width, col = (threadIdx.x % width) * 4;
    const bool worker = q < groups;
    const std::int32_t* lab = s.labels + b * N;
    const bool aligned = (reinterpret_cast<std::uintptr_t>(lab) & 15) == 0;
    const std::int64_t base = b * x.batch_stride + col;
    const float* scale = x.row_scale ? x.row_scale + b * N : nullptr;
    double acc[4] = {0, 0, 0, 0};
    // List entries: point ids; with kSigned (incremental rounds) id * 2, + 1 for a point that
    // left the cluster (its row is subtracted).
    auto add_list = [&](int fill, auto kSigned) {
      if (!worker) return;
      for (int e0 = q; e0 < fill; e0 += groups * kRowsInFlight) {
        float v[kRowsInFlight][kColsPerLane];
#pragma unroll
        for (int rr = 0; rr < kRowsInFlight; ++rr) {
          const int e = e0 + rr * groups;
          if (e < fill) {
            const int entry = list[e], i = decltype(kSigned)::value ? entry >> 1 : entry;
            load4(x, base + static_cast<std::int64_t>(i) * x.row_stride, vector, D - col, v[rr]);
            if (scale || decltype(kSigned)::value) {
              const float sc = (scale ? scale[i] : 1.f) * (decltype(kSigned)::value && (entry & 1) ? -1.f : 1.f);
#pragma unroll
              for (int c = 0; c < kColsPerLane; ++c) v[rr][c] *= sc;
            }
          }
        }
#pragma unroll
        for (int rr = 0; rr < kRowsInFlight; ++rr)
          if (e0 + rr * groups < fill)
#pragma unroll
            for (int c = 0; c < kColsPerLane; ++c) acc[c] += v[rr][c];
      }
    };
    // The labels of round r0 (kScanPerThread per thread, four adjacent ones per load).
    auto load_round = [&](std::int64_t r0, int (&w)[kScanPerThread]) {
#pragma unroll
      for (int u = 0; u < kScanPerThread / 4; ++u) {
        const std::int64_t at = r0 + (static_cast<std::int64_t>(u) * THREADS + threadIdx.x) * 4;
        if (aligned && at + 4 <= N) {
          const int4 t = *reinterpret_cast<const int4*>(lab + at);
          w[4 * u] = t.x, w[4 * u + 1] = t.y, w[4 * u + 2] = t.z, w[4 * u + 3] = t.w;
        } else {
#pragma unroll
          for (int e = 0; e < 4; ++e) w[4 * u + e] = at + e < N ? lab[at + e] : -1;
        }
      }
    };
    int w[kScanPerThread];
    if (PREFETCH) load_round(0, w);  // issued before the choice below: its latency hides that of the choice
    // Full: the members are every point labelled j. Incremental (after the first iteration, when
    // few points moved): the member sums of the last iteration plus the rows that joined minus
    // those that left, found through the moved bits. At most kScanRound moves (a round's moved
    // points fit the list) and N / 8 (two label reads per moved point against N / 4 vector loads).
    const bool incremental =
        INCREMENTAL && *s.iteration > 0 &&
        s.changed[b] <= (N / 8 < kScanRound ? N / 8 : static_cast<std::int64_t>(kScanRound));
    std::int64_t count = 0;  // full: members; incremental: joined - left (uniform over the block)
    int fill = 0;
    if (INCREMENTAL && incremental) {  // (folded away in the full-scan build)
      for (int c = threadIdx.x; c < D; c += THREADS) sums_row[c] = s.members[g * D + c];  // read early
      count = s.member_counts[g];
      const std::uint16_t* mv = s.moved + b * moved_words(N);
      const std::int32_t* prev = s.left_labels + b * N;
      const std::int64_t words = moved_words(N);
      constexpr int kWords = kScanPerThread;  // moved words per thread and round (16 points each)
      for (std::int64_t w0 = 0; w0 < words; w0 += static_cast<std::int64_t>(THREADS) * kWords) {
        // The round's moved points, listed in point order (at most kScanRound of them).
        const std::int64_t wt = w0 + static_cast<std::int64_t>(threadIdx.x) * kWords;
        unsigned bits[kWords];
        int moved = 0;
#pragma unroll
        for (int u = 0; u < kWords; ++u) bits[u] = wt + u < words ? mv[wt + u] : 0u, moved += __popc(bits[u]);
        int at = 0, total = 0;
        Scan(scan_tmp).ExclusiveSum(moved, at, total);
        int* moved_ids = list + kScanRound;
#pragma unroll
        for (int u = 0; u < kWords; ++u)
          for (unsigned m = bits[u]; m; m &= m - 1) moved_ids[at++] = static_cast<int>((wt + u) * 16 + __ffs(m) - 1);
        __syncthreads();
        // A contiguous share of that list per thread (kept in order): both labels of 8 points
        // read at once; then the entries of those that joined or left cluster j.
        constexpr int kInFlight = 8;
        const int per = (total + THREADS - 1) / THREADS, e0 = threadIdx.x * per;  // per <= kScanPerThread
        const int mine = per < total - e0 ? per : (total > e0 ? total - e0 : 0);
        unsigned join = 0, leave = 0;
        for (int h = 0; h < mine; h += kInFlight) {
          int now[kInFlight], before[kInFlight];
#pragma unroll
          for (int u = 0; u < kInFlight; ++u)
            if (h + u < mine) {
              const int i = moved_ids[e0 + h + u];
              now[u] = lab[i], before[u] = prev[i];
            }
#pragma unroll
          for (int u = 0; u < kInFlight; ++u)
            if (h + u < mine) {
              if (now[u] == j) join |= 1u << (h + u);
              else if (before[u] == j) leave |= 1u << (h + u);
            }
        }
        Scan(scan_tmp).ExclusiveSum(__popc(join) + (__popc(leave) << 16), at, total);
        at = (at & 0xffff) + (at >> 16);
        for (unsigned m = join | leave; m; m &= m - 1) {
          const int u = __ffs(m) - 1;
          list[at++] = moved_ids[e0 + u] * 2 + static_cast<int>(leave >> u & 1u);
        }
        fill = (total & 0xffff) + (total >> 16);
        count += (total & 0xffff) - (total >> 16);
        __syncthreads();
        add_list(fill, std::true_type{});
        __syncthreads();
        fill = 0;
      }
    } else {
      for (std::int64_t r0 = 0; r0 < N; r0 += kScanRound) {
        if (!PREFETCH) load_round(r0, w);
        unsigned mask = 0;
#pragma unroll
        for (int e = 0; e < kScanPerThread; ++e)
          if (w[e] == j) mask |= 1u << e;
        if (PREFETCH && r0 + kScanRound < N) load_round(r0 + kScanRound, w);  // in flight during this round
        int offset = 0, total = 0;
        Scan(scan_tmp).ExclusiveSum(__popc(mask), offset, total);
        if (fill + total > kScanRound) {  // uniform: add up the list before it overflows
          add_list(fill, std::false_type{});
          __syncthreads();
          fill = 0;
        }
        for (int pos = fill + offset; mask; mask &= mask - 1) {
          const int bit = __ffs(mask) - 1;
          list[pos++] = static_cast<int>(r0 + (static_cast<std::int64_t>(bit / 4) * THREADS + threadIdx.x) * 4 + bit % 4);
        }
        fill += total;
        count += total;
        __syncthreads();
      }
      add_list(fill, std::false_type{});
    }
    __syncthreads();  // the list is read no more: part takes its place
    if (worker)
#pragma unroll
      for (int c = 0; c < kColsPerLane; ++c) part[q * width * 4 + col + c] = acc[c];
    for (int c = threadIdx.x; c < D; c += THREADS) old_row[c] = s.c[g * D + c];
    __syncthreads();
    for (int c = threadIdx.x; c < D; c += THREADS) {
      double t = incremental ? sums_row[c] : 0.0;
      for (int p = 0; p < groups; ++p) t += part[p * width * 4 + c];
      sums_row[c] = t;
      s.members[g * D + c] = t;
      if (s.sums != s.members) s.sums[g * D + c] = t;  // for the relocation, which edits sums
    }
    if (threadIdx.x == 0) {
      s.member_counts[g] = count;
      if (s.counts != s.member_counts) s.counts[g] = count;
    }
    __syncthreads();
    finalize_cluster<false>(s, ct_type, b, j, count, sums_row, old_row, row, s.c_prev + g * D, red);
  }
  close_batch(s, x, b, relocate, ct_type, red);
}

// A row pass (data.cuh): a warp per point (half a warp with kWide, below), four points at a time
// (their loads in flight together), the points walked grid-stride (a warp launched per point:
// 8.4M points took ~2.6 ms). The grid is (parts, B): a block's points are one batch's. With sums
// (one float64 per batch), each warp also adds its points' distances in the order it visits them
// (with kWide each half adds its own points, then the two halves are added), a block adds its
// warps' sums in warp order into partial[b, part], and the batch's last block to finish
// (tickets[b], left at zero again) adds the batch's partials in a fixed tree: the split depends on
// N and B only, so the sums are the same on every run.
// At most 64 registers, four blocks per multiprocessor: at 93 (two blocks) the rows in flight
// were too few (H100, 8.4M x 128 float16: 1.49 against 1.07 ms; three blocks 1.12; two points at
// a time with four or six blocks, 1.35 and 1.24; eight with two blocks, 1.14).
constexpr int kDistancesInFlight = 4;
// kWide (16-bit rows of D % 8 == 0, 16-byte aligned): half a warp per row, 16 bytes of the point
// and 32 of the centroid a lane, so that more bytes are in flight per load (H100, 8.4M x 128
// float16: 0.87 ms, 76% of DRAM's bandwidth, against 1.07 with 8-byte loads; 32 x 74,256 x 128:
// 0.26 against 0.32).
using PartSum = cub::BlockReduce<double, kRowPassThreads>;
template <bool kWide>
__global__ void __launch_bounds__(kRowPassThreads, 4)
    label_distances_kernel(LoopState s, PointsView x, bool vector, float* dist, double* partial, double* sums, unsigned* tickets) {
  constexpr int R = kDistancesInFlight, kWarps = kRowPassThreads / 32;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const std::int64_t b = blockIdx.y, parts = gridDim.x, n = s.n, step = parts * kWarps * R;
  double visited = 0;  // lane 0 (and 16 with kWide): this warp's distances
  if constexpr (kWide) {
    static_assert(R % 2 == 0, "rows in pairs");
    const int half = lane / 16, col0 = 8 * (lane % 16);
    const bool bf16 = x.dtype == DType::bfloat16;
    for (std::int64_t i0 = (blockIdx.x * kWarps + warp) * R; i0 < n; i0 += step) {
      const float* c[R / 2];
      std::int64_t row[R / 2];
      float scale[R / 2], acc[R / 2] = {};
#pragma unroll
      for (int u = 0; u < R / 2; ++u) {
        const std::int64_t i = i0 + 2 * u + half < n ? i0 + 2 * u + half : i0, at = b * n + i;
        c[u] = s.c + (b * s.k + s.labels[at]) * s.d;
        row[u] = b * x.batch_stride + i * x.row_stride;
        scale[u] = x.row_scale ? x.row_scale[at] : 1.f;
      }
      for (std::int64_t q = col0; q < s.d; q += 128) {
        uint4 v[R / 2];
        float4 w[R / 2][2];
#pragma unroll
        for (int u = 0; u < R / 2; ++u) {
          v[u] = *reinterpret_cast<const uint4*>(static_cast<const std::uint16_t*>(x.data) + row[u] + q);
          w[u][0] = *reinterpret_cast<const float4*>(c[u] + q), w[u][1] = *reinterpret_cast<const float4*>(c[u] + q + 4);
        }
#pragma unroll
        for (int u = 0; u < R / 2; ++u) {
          const std::uint32_t words[4] = {v[u].x, v[u].y, v[u].z, v[u].w};
          const float cw[8] = {w[u][0].x, w[u][0].y, w[u][0].z, w[u][0].w, w[u][1].x, w[u][1].y, w[u][1].z, w[u][1].w};
#pragma unroll
          for (int e = 0; e < 8; ++e) {
            const float p = half_as_float(static_cast<std::uint16_t>(words[e / 2] >> (16 * (e % 2))), bf16) * scale[u];
            acc[u] += s.metric == Metric::euclidean ? (p - cw[e]) * (p - cw[e]) : p * cw[e];
          }
        }
      }
#pragma unroll
      for (int u = 0; u < R / 2; ++u) {
        float a = acc[u];
        for (int off = 8; off > 0; off >>= 1) a += __shfl_xor_sync(0xffffffffu, a, off);
        const float d = s.metric == Metric::euclidean ? a : s.metric == Metric::cosine ? 1.f - a : -a;
        const std::int64_t i = i0 + 2 * u + half;
        if (lane % 16 == 0 && i < n) dist[b * n + i] = d, visited += d;
      }
    }
    visited += __shfl_down_sync(0xffffffffu, visited, 16);  // lane 0: both halves' distances
  } else
  for (std::int64_t i0 = (blockIdx.x * kWarps + warp) * R; i0 < n; i0 += step) {
    const float* c[R];
    std::int64_t row[R];
    float scale[R], acc[R] = {};
#pragma unroll
    for (int u = 0; u < R; ++u) {
      const std::int64_t i = i0 + u < n ? i0 + u : i0, at = b * n + i;
      c[u] = s.c + (b * s.k + s.labels[at]) * s.d;
      row[u] = b * x.batch_stride + i * x.row_stride;
      scale[u] = x.row_scale ? x.row_scale[at] : 1.f;
    }
    auto take = [&](int u, float v, float w) {
      v *= scale[u];
      acc[u] += s.metric == Metric::euclidean ? (v - w) * (v - w) : v * w;
    };
    if (vector) {  // four columns a lane: 8- or 16-byte loads of the point, 16 of the centroid
      for (std::int64_t q = 4 * lane; q < s.d; q += 128) {
        float v[R][4];
        float4 w[R];
#pragma unroll
        for (int u = 0; u < R; ++u) {
          load4_as_float(x.data, row[u] + q, x.dtype, true, 4, v[u]);
          w[u] = *reinterpret_cast<const float4*>(c[u] + q);
        }
#pragma unroll
        for (int u = 0; u < R; ++u) take(u, v[u][0], w[u].x), take(u, v[u][1], w[u].y), take(u, v[u][2], w[u].z), take(u, v[u][3], w[u].w);
      }
    } else {
      for (std::int64_t q = lane; q < s.d; q += 32) {
        float v[R], w[R];
#pragma unroll
        for (int u = 0; u < R; ++u) v[u] = load_as_float(x.data, row[u] + q, x.dtype), w[u] = c[u][q];
#pragma unroll
        for (int u = 0; u < R; ++u) take(u, v[u], w[u]);
      }
    }
#pragma unroll
    for (int u = 0; u < R; ++u) {
      float a = acc[u];
      for (int off = 16; off > 0; off >>= 1) a += __shfl_xor_sync(0xffffffffu, a, off);
      const float d = s.metric == Metric::euclidean ? a : s.metric == Metric::cosine ? 1.f - a : -a;
      if (lane == 0 && i0 + u < n) dist[b * n + i0 + u] = d, visited += d;
    }
  }
  if (!sums) return;
  __shared__ double warp_sums[kWarps];
  __shared__ typename PartSum::TempStorage tmp;
  __shared__ bool last;
  if (lane == 0) warp_sums[warp] = visited;
  __syncthreads();
  if (threadIdx.x == 0) {
    double t = 0;
    for (int w = 0; w < kWarps; ++w) t += warp_sums[w];
    partial[b * parts + blockIdx.x] = t;
    __threadfence();
    last = atomicAdd(tickets + b, 1u) == parts - 1;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  double t = 0;
  for (std::int64_t p = threadIdx.x; p < parts; p += kRowPassThreads) t += __ldcg(partial + b * parts + p);
  t = PartSum(tmp).Sum(t);
  if (threadIdx.x == 0) sums[b] = t, tickets[b] = 0;
}

// Values per block in the first pass of batch_sums: the split depends on n alone, so the sums
// are the same run to run.
constexpr std::int64_t kSumChunk = 64 * kBlock;

// out[b * parts + part] = sum of chunk `part` of batch b (v holds batches of n values).
template <typename T>
__global__ void chunk_sums_kernel(const T* v, std::int64_t n, std::int64_t chunk, double* out) {
  __shared__ typename BlockSum::TempStorage tmp;
  __shared__ double red;
  const std::int64_t b = blockIdx.y, part = blockIdx.x, begin = part * chunk;
  const std::int64_t end = begin + chunk < n ? begin + chunk : n;
  const T* p = v + b * n;
  double s = 0;
  for (std::int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) s += p[i];
  s = block_sum(s, tmp, &red);
  if (threadIdx.x == 0) out[b * gridDim.x + part] = s;
}

__global__ void restore_kernel(LoopState s) {
  const std::int64_t g = blockIdx.x, b = g / s.k;
  if (!s.done[b]) return;
  for (std::int64_t q = threadIdx.x; q < s.d; q += blockDim.x) s.c[g * s.d + q] = s.c_prev[g * s.d + q];
}

// Whether rows can be read kColsPerLane elements at a time with aligned vector loads.
bool vector_rows(const PointsView& x, std::int64_t d) {
  static_assert(kColsPerLane == 4, "load4 reads four columns");
  return four_element_loads(x.data, x.dtype, d, x.row_stride, x.batch_stride);
}

unsigned blocks_for(std::int64_t threads, int per_block) {
  return static_cast<unsigned>((threads + per_block - 1) / per_block);
}

// The moves' rows per run (move_sums_kernel): a warp per run, enough runs for every move an
// iteration can make (those past this iteration's moves return at once).
void move_sums(const LoopState& s, const PointsView& x, cudaStream_t stream) {
  move_sums_kernel<<<blocks_for(s.runs * 32, kWalkThreads), kWalkThreads, 0, stream>>>(s, x, vector_rows(x, s.d));
  FK_CUDA_LAUNCHED();
}

}  // namespace

void prepare_centroids(const LoopState& s, cudaStream_t stream) {
  prepare_kernel<<<dim3(s.plan.kp, static_cast<unsigned>(s.batches)), kBlock, 0, stream>>>(s, compute_dtype(s.plan.kind));
  FK_CUDA_LAUNCHED();
}

// M = the largest of ||x||^2 / 2 over a batch's points and of h over its centroids bounds every
// value the bias rows hold for the whole fit (an updated centroid is a mean of points, a kept one
// stays). Grid (parts, B): each block's maximum over a share of the points (and, in part 0, the
// centroids) goes into bias_scale[b] by an integer atomicMax (non-negative floats order as their
// bits: the same result in any order).
__global__ void bias_bound_kernel(LoopState s, const float* xx, std::int64_t per_part) {
  using BlockMax = cub::BlockReduce<float, kBlock>;
  __shared__ typename BlockMax::TempStorage tmp;
  const std::int64_t b = blockIdx.y, begin = blockIdx.x * per_part, end = min(s.n, begin + per_part);
  float m = 0.f;
  for (std::int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) m = fmaxf(m, 0.5f * xx[b * s.n + i]);
  if (blockIdx.x == 0)
    for (std::int64_t j = threadIdx.x; j < s.k; j += blockDim.x) m = fmaxf(m, s.h[b * s.plan.kp + j]);
  m = BlockMax(tmp).Reduce(m, [](float p, float q) { return fmaxf(p, q); });  // thread 0's is the block's
  if (threadIdx.x == 0) atomicMax(reinterpret_cast<int*>(s.bias_scale) + b, __float_as_int(m));
}

// One block per batch, after bias_bound_kernel: bias_scale[b] from M to sigma, then the rows.
// sigma = 2^(ceil(log2 M) - 14) puts the values below 2^14 (float16 holds up to 65,504), at least
// 2^-14 (sigma itself a normal float16); M outside [2^-10, 2^29] (where the parts would lose bits
// below float32's), or not finite, leaves the batch without (sigma 0).
__global__ void bias_kernel(LoopState s, DType ct_type) {
  const std::int64_t b = blockIdx.x;
  const float m = s.bias_scale[b];
  __syncthreads();  // every thread has read M before thread 0 replaces it
  const bool usable = isfinite(m) && m >= 0x1p-10f && m <= 0x1p29f;
  int e = 0;
  const float f = frexpf(m, &e);  // m = f 2^e, f in [0.5, 1): ceil(log2 m) = e, or e - 1 when f = 0.5
  const float sigma = usable ? ldexpf(1.f, max((f == 0.5f ? e - 1 : e) - 14, -14)) : 0.f;
  if (threadIdx.x == 0) {
    s.bias_scale[b] = sigma;
    if (sigma == 0.f) atomicAdd(reinterpret_cast<int*>(s.bias_scale + s.batches), 1);
  }
  __syncthreads();
  for (std::int64_t j = threadIdx.x; j < s.plan.kp; j += blockDim.x) write_bias_row(s, ct_type, b, j, s.h[b * s.plan.kp + j]);
}

void prepare_bias(const LoopState& s, const float* xx, cudaStream_t stream) {
  constexpr std::int64_t kPerPart = 64 * 1024;
  const std::int64_t parts = std::max<std::int64_t>(1, (s.n + kPerPart - 1) / kPerPart);
  FK_CUDA(cudaMemsetAsync(s.bias_scale, 0, sizeof(float) * static_cast<std::size_t>(s.batches + 1), stream));
  bias_bound_kernel<<<dim3(static_cast<unsigned>(parts), static_cast<unsigned>(s.batches)), kBlock, 0, stream>>>(s, xx, kPerPart);
  FK_CUDA_LAUNCHED();
  bias_kernel<<<static_cast<unsigned>(s.batches), kBlock, 0, stream>>>(s, compute_dtype(s.plan.kind));
  FK_CUDA_LAUNCHED();
}

// The count and place kernels keep a counter per cluster in shared memory up to this many
// clusters a batch (their kSharedCounters builds), in global memory beyond.
constexpr std::int64_t kSharedCountersK = 32768;

bool shared_counters(const LoopState& s) { return s.k <= kSharedCountersK; }

std::size_t counters_smem_bytes(const LoopState& s) {
  return shared_counters(s) ? sizeof(std::uint32_t) * static_cast<std::size_t>(s.k) : 0;
}

void sort_moves(const LoopState& s, cudaStream_t stream, const StageMark& mark) {
  const std::int64_t groups = s.batches * s.k * s.tiles;
  const dim3 grid(static_cast<unsigned>(s.tiles), static_cast<unsigned>(s.batches));
  FK_CUDA(cudaMemsetAsync(s.tile_counts, 0, sizeof(std::uint32_t) * static_cast<std::size_t>(groups + 1), stream));
  if (shared_counters(s))
    count_moves_kernel<true><<<grid, kTileThreads, counters_smem_bytes(s), stream>>>(s);
  else
    count_moves_kernel<false><<<grid, kTileThreads, 0, stream>>>(s);
  FK_CUDA_LAUNCHED();
  std::size_t bytes = s.scan_bytes;  // over groups + 1 counts, the last always zero: the total
  FK_CUDA(cub::DeviceScan::ExclusiveSum(s.scan_tmp, bytes, s.tile_counts, s.tile_starts, groups + 1, stream));
  if (shared_counters(s))
    place_moves_kernel<true><<<grid, kTileThreads, counters_smem_bytes(s), stream>>>(s);
  else
    place_moves_kernel<false><<<grid, kTileThreads, 0, stream>>>(s);
  FK_CUDA_LAUNCHED();
  mark("sort");
}

// A warp per cluster for many small clusters (D <= kWarpFinishD), a block per cluster otherwise
// (H100, finish per iteration, block against warp: 32 x 74K, K = 1,000 185 / 139 us; 32 x 16K,
// K = 100 28.6 / 26.2; 500K, K = 1,000 19 / 35; 8.4M, K = 1,024, 8,192 points a cluster, 105 /
// 393: a warp then adds up its cluster's many runs alone).
// FLASHKMEANS_FINISH=warp / block forces either (development aid; warp only where D allows).
bool warp_finish(const LoopState& s) {
  if (s.d > kWarpFinishD) return false;
  if (const char* v = std::getenv("FLASHKMEANS_FINISH"); v && *v) return std::strcmp(v, "warp") == 0;
  return s.batches * s.k >= 2048 && s.n <= 2048 * s.k;
}

void sort_update(const LoopState& s, const PointsView& x, bool relocate, cudaStream_t stream, const StageMark& mark) {
  move_sums(s, x, stream);
  mark("sums");
  const std::int64_t clusters = s.batches * s.k;
  if (warp_finish(s)) {
    sort_finish_warp_kernel<<<static_cast<unsigned>((clusters + kFinishWarps - 1) / kFinishWarps), kBlock,
                              static_cast<std::size_t>(kFinishWarps * 16 * s.d), stream>>>(s, compute_dtype(s.plan.kind));
    FK_CUDA_LAUNCHED();
    close_batches_kernel<<<static_cast<unsigned>(s.batches), kBlock, 0, stream>>>(s, x, relocate, compute_dtype(s.plan.kind));
  } else if (s.d <= kFinishSmemD)
    sort_finish_kernel<false><<<static_cast<unsigned>(clusters), kBlock, static_cast<std::size_t>(s.d) * 16, stream>>>(
        s, x, relocate, compute_dtype(s.plan.kind));
  else
    sort_finish_kernel<true><<<static_cast<unsigned>(clusters), kBlock, 0, stream>>>(s, x, relocate, compute_dtype(s.plan.kind));
  FK_CUDA_LAUNCHED();
  mark("finish");
}

void plan_dense(LoopState& s, int multiprocessors, std::int64_t point_bytes) {
  s.dense = false;
  const std::int64_t width = (s.d + kColsPerLane - 1) / kColsPerLane;
  const std::int64_t per_copy = (s.k * s.d + s.k) * 4;
  const std::int64_t groups = std::min<std::int64_t>(kDenseThreads / width, kDenseSmem / per_copy);
  // Worth it only with enough threads per block to keep loads in flight; else sort-inverse.
  if (groups < 1 || groups * width < 128) return;
  s.dense = true;
  // Blocks: about four per multiprocessor over all batches, but their partial sums (re-read by the
  // combine) must stay small next to the points themselves.
  const std::int64_t cap = std::max<std::int64_t>(std::max<std::int64_t>(point_bytes / 4, 8 << 20) / (s.k * s.d * 4), 1);
  const std::int64_t blocks = std::min<std::int64_t>(4LL * multiprocessors, cap);
  const std::int64_t per_batch = std::max<std::int64_t>(1, blocks / s.batches);
  s.dense_rows = static_cast<int>(std::max<std::int64_t>(256, (s.n + per_batch - 1) / per_batch));
  // Each group's copy of the sums is zeroed and folded in at the end: no more groups than keep
  // about 64 points each busy.
  s.dense_groups = static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(groups, s.dense_rows / 64)));
}

std::int64_t dense_blocks_per_batch(const LoopState& s) { return (s.n + s.dense_rows - 1) / s.dense_rows; }

// Tiles of 2,048 to 8,192 points: about four blocks per multiprocessor where the points allow,
// fewer (cluster, tile) counts to scan and to write where they are many (H100, 8.4M x 128, K =
// 1,024: 8,192 points a tile 1% faster than 2,048; 500K, K = 1,000: 2,048 10% faster than 8,192).
// Larger tiles where K is large, so that the counts stay within ~2 N (or 2^20) per batch. The
// moves are added in runs over at most 64 warps per multiprocessor.
void plan_moves(LoopState& s, int multiprocessors) {
  const std::int64_t limit = std::max<std::int64_t>(2 * s.n, 1 << 20);
  std::int64_t t = 2048;
  while (t < 8192 && s.batches * s.n / (2 * t) >= 4LL * multiprocessors) t *= 2;
  while (t < s.n && s.k * ((s.n + t - 1) / t) > limit) t *= 2;
  // FLASHKMEANS_TILE_POINTS (a multiple of 1,024) and FLASHKMEANS_RUNS_PER_SM override these
  // (development aids).
  if (const char* v = std::getenv("FLASHKMEANS_TILE_POINTS"); v && std::atoll(v) >= 1024) t = std::atoll(v) / 1024 * 1024;
  s.tile_points = static_cast<int>(std::min<std::int64_t>(t, 1 << 30));
  s.tiles = (s.n + s.tile_points - 1) / s.tile_points;
  // FLASHKMEANS_REBUILD=0: every iteration adds its moves, however many (development aid).
  const char* rebuild = std::getenv("FLASHKMEANS_REBUILD");
  s.rebuild = !(rebuild && *rebuild == '0');
  std::int64_t per_sm = 64;
  if (const char* v = std::getenv("FLASHKMEANS_RUNS_PER_SM"); v && std::atoll(v) > 0) per_sm = std::atoll(v);
  s.runs = per_sm * multiprocessors;
}

std::int64_t move_capacity(const LoopState& s) { return 2 * s.batches * s.n; }

std::size_t move_scan_bytes(const LoopState& s) {
  std::size_t bytes = 0;
  std::uint32_t* none = nullptr;
  FK_CUDA(cub::DeviceScan::ExclusiveSum(nullptr, bytes, none, none, s.batches * s.k * s.tiles + 1));
  return bytes;
}

void dense_sums(const LoopState& s, const PointsView& x, cudaStream_t stream, const StageMark& mark) {
  const std::int64_t per_batch = dense_blocks_per_batch(s);
  const std::size_t smem = static_cast<std::size_t>(s.dense_groups) * (s.k * s.d + s.k) * 4;
  const int width = static_cast<int>((s.d + kColsPerLane - 1) / kColsPerLane);
  dense_block_kernel<<<dim3(static_cast<unsigned>(per_batch), static_cast<unsigned>(s.batches)),
                       static_cast<unsigned>(s.dense_groups * width), smem, stream>>>(s, x, per_batch, vector_rows(x, s.d));
  FK_CUDA_LAUNCHED();
  mark("dense");
  dense_combine_kernel<<<dim3(static_cast<unsigned>(s.batches * s.k), blocks_for(s.d, kBlock)), kBlock, 0, stream>>>(s, per_batch);
  FK_CUDA_LAUNCHED();
  mark("combine");
}

void relocate_empty(const LoopState& s, const PointsView& x, cudaStream_t stream) {
  relocate_kernel<<<static_cast<unsigned>(s.batches), kRelocateThreads, 0, stream>>>(s, x);
  FK_CUDA_LAUNCHED();
}

constexpr int kScanThreads = 256;
constexpr int scan_threads() { return kScanThreads; }

bool plan_scan(const LoopState& s) {
  if (const char* v = std::getenv("FLASHKMEANS_SCAN"); v && *v == '0') return false;  // development aid
  const std::int64_t threads = scan_threads(), width = (s.d + 3) / 4;
  if (width > threads || s.n > 0x7fffffffLL) return false;
  const std::int64_t groups = threads / width;
  // Every cluster's block reads all labels of its batch: B * N * K label reads in all. Its members
  // are added by `groups` groups: on average N / K / groups rows each (8 in flight), and N *
  // width / threads loads per thread when one cluster holds every point.
  return s.batches * s.n * s.k <= (1LL << 24) && s.n <= 32 * s.k * groups && s.n * width <= (2LL << 20);
}

// Whether the scan path keeps its member sums and reads only the moved points once few move: not
// below 4 rounds of labels (N = 16,384), where the full scan's two or three rounds cost less than
// the incremental round's steps (5K x 64, K = 50: 16.3 against 14.9 us per update).
bool plan_scan_incremental(const LoopState& s) { return s.n >= 4 * kScanThreads * kScanPerThread; }

std::size_t scan_smem_bytes(const LoopState& s) {
  return static_cast<std::size_t>(scan_head_bytes(s.d, scan_threads(), s.left_labels != nullptr) + s.d * 16);
}

void scan_update(const LoopState& s, const PointsView& x, bool relocate, cudaStream_t stream, const StageMark& mark) {
  const dim3 grid(static_cast<unsigned>(s.k), static_cast<unsigned>(s.batches));
  const std::size_t smem = scan_smem_bytes(s);
  const DType ct_type = compute_dtype(s.plan.kind);
  if (s.left_labels)
    scan_update_kernel<kScanThreads, true, true><<<grid, kScanThreads, smem, stream>>>(s, x, vector_rows(x, s.d), relocate, ct_type);
  else
    scan_update_kernel<kScanThreads, true, false><<<grid, kScanThreads, smem, stream>>>(s, x, vector_rows(x, s.d), relocate, ct_type);
  FK_CUDA_LAUNCHED();
  mark("update");
}

void prepare_update(const LoopState& s) {
  if (s.scan) {
    const int smem = static_cast<int>(scan_smem_bytes(s));
    if (smem > 48 * 1024)
      FK_CUDA(cudaFuncSetAttribute(s.left_labels ? scan_update_kernel<kScanThreads, true, true> : scan_update_kernel<kScanThreads, true, false>,
                                   cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    return;
  }
  if (s.dense)
    FK_CUDA(cudaFuncSetAttribute(dense_block_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kDenseSmem + 1024));
  else if (counters_smem_bytes(s) > 16 * 1024) {  // beyond what fits beside the static lists in 48 KB
    // Always the largest the counters take, so that fits of other K on other threads do not
    // lower the limit under this one.
    constexpr int kMost = static_cast<int>(sizeof(std::uint32_t) * kSharedCountersK);
    FK_CUDA(cudaFuncSetAttribute(place_moves_kernel<true>, cudaFuncAttributeMaxDynamicSharedMemorySize, kMost));
    FK_CUDA(cudaFuncSetAttribute(count_moves_kernel<true>, cudaFuncAttributeMaxDynamicSharedMemorySize, kMost));
  }
}

void finish_iteration(const LoopState& s, cudaStream_t stream, const StageMark& mark) {
  const std::size_t row_bytes = sizeof(float) * static_cast<std::size_t>(s.d);  // dense path: D <= 1024
  finalize_kernel<<<static_cast<unsigned>(s.batches * s.k), kBlock, row_bytes, stream>>>(s, compute_dtype(s.plan.kind));
  FK_CUDA_LAUNCHED();
  mark("finalize");
}

void restore_converged(const LoopState& s, cudaStream_t stream) {
  restore_kernel<<<static_cast<unsigned>(s.batches * s.k), kBlock, 0, stream>>>(s);
  FK_CUDA_LAUNCHED();
}

std::int64_t label_distance_parts(std::int64_t batches, std::int64_t n) {
  const std::int64_t warps = (n + kDistancesInFlight - 1) / kDistancesInFlight;
  return std::max<std::int64_t>(1, std::min<std::int64_t>(row_pass_blocks(warps), 4096 / batches));
}

void label_distances(const LoopState& s, const PointsView& x, float* dist, cudaStream_t stream, const DistanceSums& sums) {
  const dim3 grid(static_cast<unsigned>(label_distance_parts(s.batches, s.n)), static_cast<unsigned>(s.batches));
  // (the centroids may be the caller's buffer: their rows are 16-byte aligned only if it is)
  const bool vector = vector_rows(x, s.d) && reinterpret_cast<std::uintptr_t>(s.c) % 16 == 0;
  const char* force = std::getenv("FLASHKMEANS_DIST16");  // development aid: 0 keeps the 8-byte loads
  const bool wide = vector && element_bytes(x.dtype) == 2 &&
                    group_loads(x.data, x.dtype, s.d, x.n <= 1 ? 0 : x.row_stride, x.batches <= 1 ? 0 : x.batch_stride, 8) &&
                    !(force && *force == '0');
  if (wide)
    label_distances_kernel<true><<<grid, kRowPassThreads, 0, stream>>>(s, x, vector, dist, sums.partial, sums.out, sums.tickets);
  else
    label_distances_kernel<false><<<grid, kRowPassThreads, 0, stream>>>(s, x, vector, dist, sums.partial, sums.out, sums.tickets);
  FK_CUDA_LAUNCHED();
}

void batch_sums(const float* v, std::int64_t batches, std::int64_t n, double* out, cudaStream_t stream) {
  // Two passes: chunks of kSumChunk values over the whole device, then the chunks of a batch.
  // (One block per batch took tens of milliseconds for millions of points.)
  const std::int64_t parts = std::max<std::int64_t>(1, (n + kSumChunk - 1) / kSumChunk);
  if (parts == 1) {
    chunk_sums_kernel<float><<<dim3(1, static_cast<unsigned>(batches)), kBlock, 0, stream>>>(v, n, n, out);
    FK_CUDA_LAUNCHED();
    return;
  }
  DeviceBuffer<double> partial(static_cast<std::size_t>(batches * parts), stream);
  chunk_sums_kernel<float><<<dim3(static_cast<unsigned>(parts), static_cast<unsigned>(batches)), kBlock, 0, stream>>>(
      v, n, kSumChunk, partial.get());
  FK_CUDA_LAUNCHED();
  chunk_sums_kernel<double><<<dim3(1, static_cast<unsigned>(batches)), kBlock, 0, stream>>>(partial.get(), parts, parts,
                                                                                          out);
  FK_CUDA_LAUNCHED();
}

}  // namespace flashkmeans::cuda
