// Greedy k-means++ on the device. Each step, for all batches at once: the draw of the candidates
// by weight (the closest squared distances, summed per chunk of rows), the candidates' distances
// to every point with per-block potentials, the choice of the best candidate, and the update of
// the weights and their chunk sums. Every sum has a fixed order, so runs repeat bit for bit. The
// host only launches (no synchronisation per step).
#include "cuda/kmeans_pp.cuh"

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/check.hpp"
#include "core/rng.hpp"
#include "cuda/buffer.cuh"
#include "cuda/check.cuh"
#include "cuda/elements.cuh"

namespace flashkmeans::cuda {

namespace {

constexpr int kMaxTrials = 24;  // 2 + ln K for any K < 2^31
constexpr int kThreads = 256;   // threads per block; the distance kernel's points per tile
constexpr int kSlice = 32;      // coordinates per pass through shared memory
constexpr std::int64_t kMaxBlocks = 1024;  // per batch; fixed by N alone, so sums are reproducible
constexpr std::int64_t kChunk = 2048;      // rows per weight sum: the draw scans chunk sums, then one chunk

int trials_for(std::int64_t k) { return 2 + static_cast<int>(std::log(static_cast<double>(k))); }

__device__ __forceinline__ float scale_of(const PointsView& x, std::int64_t flat) {
  return x.row_scale ? x.row_scale[flat] : 1.f;
}

// cand[t, :] = row rows[t] of batch b, as float32 (times its row scale), for t < trials.
__device__ void gather_candidates(const PointsView& x, std::int64_t b, const std::int64_t* rows, int trials, float* cand) {
  for (int t = 0; t < trials; ++t) {
    const std::int64_t i = rows[t];
    const float scale = scale_of(x, b * x.n + i);
    const std::int64_t base = b * x.batch_stride + i * x.row_stride;
    for (std::int64_t q = threadIdx.x; q < x.d; q += blockDim.x)
      cand[t * x.d + q] = load_as_float(x.data, base + q, x.dtype) * scale;
  }
}

// The first centroid of batch b: row first[b], into cand[b, 0, :] and c[b, 0, :].
__global__ void kpp_first_kernel(PointsView x, const std::int64_t* first, int trials, std::int64_t k, float* cand,
                                 float* c) {
  const std::int64_t b = blockIdx.x;
  float* mine = cand + b * trials * x.d;
  gather_candidates(x, b, first + b, 1, mine);
  __syncthreads();
  for (std::int64_t q = threadIdx.x; q < x.d; q += blockDim.x) c[b * k * x.d + q] = mine[q];
}

// dist[t * B * N + b * N + i] = ||x_bi - cand[b, t]||^2 for t < trials (float32, differences), cand
// holding cand_per_batch rows per batch. With partial: partial[(b * gridDim.x + block) * trials + t]
// = this block's sum of min(closest_i, dist_it). A thread takes one point of a tile of kThreads;
// the tile and the candidates pass through shared memory kSlice coordinates at a time (the
// points' rows read coalesced). TP: trials rounded up to a multiple of 4 (the candidates are read
// four at a time; the padding candidates are zero and their distances unused).
template <int TP>
__global__ void __launch_bounds__(kThreads) kpp_distances_kernel(PointsView x, const float* cand, int cand_per_batch,
                                                                 int trials, const float* closest, float* dist,
                                                                 double* partial) {
  __shared__ float xs[kThreads][kSlice + 1];  // +1: a thread's row walk is free of bank conflicts
  __shared__ float4 cs[kSlice][TP / 4];
  const std::int64_t b = blockIdx.y, n = x.n, d = x.d, count = x.batches * n;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const float* cb = cand + b * cand_per_batch * d;
  float pot[TP];
#pragma unroll
  for (int t = 0; t < TP; ++t) pot[t] = 0;
  for (std::int64_t tile = blockIdx.x * std::int64_t{kThreads}; tile < n; tile += gridDim.x * std::int64_t{kThreads}) {
    float acc[TP];
#pragma unroll
    for (int t = 0; t < TP; ++t) acc[t] = 0;
    for (std::int64_t q0 = 0; q0 < d; q0 += kSlice) {
      // Each warp copies whole row slices (lane = coordinate); then the candidates' slice.
      const bool col_in = q0 + lane < d;
      for (int r = warp; r < kThreads; r += kThreads / 32) {
        const std::int64_t i = tile + r;
        float v = 0.f;
        if (i < n && col_in)
          v = load_as_float(x.data, b * x.batch_stride + i * x.row_stride + q0 + lane, x.dtype) * scale_of(x, b * n + i);
        xs[r][lane] = v;
      }
      for (int e = threadIdx.x; e < kSlice * TP; e += kThreads) {
        const int q = e / TP, t = e % TP;
        reinterpret_cast<float*>(&cs[q][0])[t] = t < trials && q0 + q < d ? cb[t * d + q0 + q] : 0.f;
      }
      __syncthreads();
#pragma unroll 8
      for (int q = 0; q < kSlice; ++q) {
        const float v = xs[threadIdx.x][q];
#pragma unroll
        for (int t4 = 0; t4 < TP / 4; ++t4) {
          const float4 c = cs[q][t4];
          const float e0 = v - c.x, e1 = v - c.y, e2 = v - c.z, e3 = v - c.w;
          acc[4 * t4] = fmaf(e0, e0, acc[4 * t4]);
          acc[4 * t4 + 1] = fmaf(e1, e1, acc[4 * t4 + 1]);
          acc[4 * t4 + 2] = fmaf(e2, e2, acc[4 * t4 + 2]);
          acc[4 * t4 + 3] = fmaf(e3, e3, acc[4 * t4 + 3]);
        }
      }
      __syncthreads();
    }
    const std::int64_t i = tile + threadIdx.x;
    if (i < n) {
      const std::int64_t flat = b * n + i;
      const float near = partial ? closest[flat] : 0.f;
#pragma unroll
      for (int t = 0; t < TP; ++t)
        if (t < trials) {
          dist[t * count + flat] = acc[t];
          pot[t] += fminf(near, acc[t]);
        }
    }
  }
  if (!partial) return;
  // The threads' potentials, through the tile's storage (free now: every block took a tile).
  float* block_pot = &xs[0][0];
  static_assert(TP * kThreads <= kThreads * (kSlice + 1), "potentials fit in the tile");
#pragma unroll
  for (int t = 0; t < TP; ++t) block_pot[t * kThreads + threadIdx.x] = pot[t];
  __syncthreads();
  if (threadIdx.x < trials) {
    double s = 0;
    for (int j = 0; j < kThreads; ++j) s += block_pot[threadIdx.x * kThreads + j];
    partial[(b * gridDim.x + blockIdx.x) * trials + threadIdx.x] = s;
  }
}

void launch_distances(const PointsView& x, const float* cand, int cand_per_batch, int trials, const float* closest,
                      float* dist, double* partial, std::int64_t blocks, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(x.batches));
  const int padded = (trials + 3) / 4 * 4;
  switch (padded) {
#define FK_DISTANCES(TP)                                                                                        \
  case TP:                                                                                                      \
    kpp_distances_kernel<TP><<<grid, kThreads, 0, stream>>>(x, cand, cand_per_batch, trials, closest, dist, partial); \
    break;
    FK_DISTANCES(4) FK_DISTANCES(8) FK_DISTANCES(12) FK_DISTANCES(16) FK_DISTANCES(20) FK_DISTANCES(24)
#undef FK_DISTANCES
    default: FK_CHECK(false, internal, "k-means++: no distance kernel for " << trials << " candidates");
  }
  FK_CUDA_LAUNCHED();
}

using Scan = cub::BlockScan<double, kThreads>;

// The first i in [0, count) whose running sum start + value(0) + ... + value(i) exceeds r, or -1
// (then *sum is the whole running sum; otherwise the running sum before i). The block scans fixed
// tiles in order, so the answer is the same on every run.
template <class Value>
__device__ std::int64_t first_crossing(std::int64_t count, Value value, double start, double r, double* sum,
                                       typename Scan::TempStorage& tmp) {
  __shared__ unsigned long long first;
  __shared__ double before;
  __syncthreads();  // the previous call's readers are done with first and before
  if (threadIdx.x == 0) first = ~0ull;
  __syncthreads();
  double carry = start;
  for (std::int64_t t0 = 0; t0 < count; t0 += kThreads) {
    const std::int64_t i = t0 + threadIdx.x;
    const double v = i < count ? value(i) : 0.0;
    double inclusive, tile_total;
    Scan(tmp).InclusiveSum(v, inclusive, tile_total);
    inclusive += carry;
    if (i < count && inclusive > r) atomicMin(&first, static_cast<unsigned long long>(i));
    carry += tile_total;
    __syncthreads();
    if (first != ~0ull) {
      if (i == static_cast<std::int64_t>(first)) before = inclusive - v;
      __syncthreads();
      *sum = before;
      return static_cast<std::int64_t>(first);
    }
  }
  *sum = carry;
  return -1;
}

// Step `step`, one block per (batch, trial): the candidate drawn by weight, the first row whose
// cumulative weight exceeds u * total (std::upper_bound on the CPU; the last row when none does),
// found in two levels: the chunk, from the batch's chunk sums, then the row inside it.
__global__ void __launch_bounds__(kThreads) kpp_draw_kernel(PointsView x, const float* closest, const double* chunk_sum,
                                                            std::int64_t chunks, const double* u, std::int64_t k,
                                                            int trials, std::int64_t step, float* cand) {
  __shared__ typename Scan::TempStorage tmp;
  __shared__ std::int64_t picked;
  const std::int64_t b = blockIdx.x / trials, n = x.n;
  const int t = static_cast<int>(blockIdx.x % trials);
  const double* sums = chunk_sum + b * chunks;
  const auto chunk_weight = [&](std::int64_t c) { return sums[c]; };
  double total = 0, before = 0;
  first_crossing(chunks, chunk_weight, 0.0, INFINITY, &total, tmp);
  const double r = u[(b * (k - 1) + step - 1) * trials + t] * total;
  std::int64_t row = n - 1;
  const std::int64_t c = first_crossing(chunks, chunk_weight, 0.0, r, &before, tmp);
  if (c >= 0) {
    const std::int64_t first = c * kChunk, last = first + kChunk < n ? first + kChunk : n;
    const float* w = closest + b * n + first;
    double ignored = 0;
    const std::int64_t i = first_crossing(last - first, [&](std::int64_t j) { return static_cast<double>(w[j]); },
                                          before, r, &ignored, tmp);
    row = i >= 0 ? first + i : last - 1;  // (none: rounding between the two levels)
  }
  if (threadIdx.x == 0) picked = row;
  __syncthreads();
  gather_candidates(x, b, &picked, 1, cand + (b * trials + t) * x.d);
}

// The candidate of least potential (the first on ties) becomes centroid `step` of each batch.
// Each trial's potential: the blocks' partial sums in a fixed tree (cub::BlockReduce).
__global__ void __launch_bounds__(kThreads) kpp_choose_kernel(const double* partial, std::int64_t blocks, int trials,
                                                              const float* cand, std::int64_t d, std::int64_t k,
                                                              std::int64_t step, int* best, float* c) {
  using Sum = cub::BlockReduce<double, kThreads>;
  __shared__ typename Sum::TempStorage tmp;
  __shared__ double pot[kMaxTrials];
  __shared__ int chosen;
  const std::int64_t b = blockIdx.x;
  for (int t = 0; t < trials; ++t) {
    double s = 0;
    for (std::int64_t blk = threadIdx.x; blk < blocks; blk += kThreads) s += partial[(b * blocks + blk) * trials + t];
    const double total = Sum(tmp).Sum(s);
    if (threadIdx.x == 0) pot[t] = total;
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    int t_best = 0;
    for (int t = 1; t < trials; ++t)
      if (pot[t] < pot[t_best]) t_best = t;
    chosen = t_best;
    best[b] = t_best;
  }
  __syncthreads();
  const float* from = cand + (b * trials + chosen) * d;
  for (std::int64_t q = threadIdx.x; q < d; q += kThreads) c[(b * k + step) * d + q] = from[q];
}

// One block per chunk of kChunk rows: closest_i = min(closest_i, distance to the chosen
// candidate) (when best is given), and the chunk's sum of closest in a fixed tree.
__global__ void __launch_bounds__(kThreads) kpp_update_kernel(std::int64_t n, std::int64_t count, std::int64_t chunks,
                                                              const int* best, const float* dist, float* closest,
                                                              double* chunk_sum) {
  using Sum = cub::BlockReduce<double, kThreads>;
  __shared__ typename Sum::TempStorage tmp;
  const std::int64_t b = blockIdx.x / chunks, c = blockIdx.x % chunks;
  const std::int64_t first = c * kChunk, last = first + kChunk < n ? first + kChunk : n;
  double s = 0;
  for (std::int64_t i = first + threadIdx.x; i < last; i += kThreads) {
    const std::int64_t flat = b * n + i;
    float w = closest[flat];
    if (best) w = closest[flat] = fminf(w, dist[best[b] * count + flat]);
    s += w;
  }
  const double total = Sum(tmp).Sum(s);
  if (threadIdx.x == 0) chunk_sum[blockIdx.x] = total;
}

}  // namespace

void kmeans_plus_plus(const PointsView& x, std::int64_t k, std::uint64_t seed, float* c, cudaStream_t stream) {
  const std::int64_t B = x.batches, N = x.n, D = x.d, count = B * N;
  const int trials = trials_for(k);
  FK_CHECK(trials <= kMaxTrials, invalid_argument, "k-means++ supports K up to 2^31 - 1, got " << k);

  // The CPU backend's draws, in its order: the first row, then trials uniforms per step.
  std::vector<std::int64_t> first(static_cast<std::size_t>(B));
  std::vector<double> u(static_cast<std::size_t>(B * (k - 1) * trials));
  for (std::int64_t b = 0; b < B; ++b) {
    detail::Rng rng = detail::batch_rng(seed, b);
    first[b] = rng.below(N);
    for (std::int64_t j = 0; j < (k - 1) * trials; ++j) u[b * (k - 1) * trials + j] = rng.uniform();
  }
  const std::int64_t blocks = std::min(kMaxBlocks, (N + kThreads - 1) / kThreads);
  const std::int64_t chunks = (N + kChunk - 1) / kChunk;
  DeviceBuffer<std::int64_t> first_d(B, stream);
  DeviceBuffer<double> u_d(u.size(), stream), chunk_sum(B * chunks, stream), partial(B * blocks * trials, stream);
  DeviceBuffer<float> cand(B * trials * D, stream), closest(count, stream), dist(count * trials, stream);
  DeviceBuffer<int> best(B, stream);

  FK_CUDA(cudaMemcpyAsync(first_d.get(), first.data(), sizeof(std::int64_t) * B, cudaMemcpyHostToDevice, stream));
  if (!u.empty())
    FK_CUDA(cudaMemcpyAsync(u_d.get(), u.data(), sizeof(double) * u.size(), cudaMemcpyHostToDevice, stream));
  kpp_first_kernel<<<static_cast<unsigned>(B), kThreads, 0, stream>>>(x, first_d.get(), trials, k, cand.get(), c);
  FK_CUDA_LAUNCHED();
  const unsigned chunk_blocks = static_cast<unsigned>(B * chunks);
  // The first centroid's distances go straight to closest (one candidate: the same layout).
  launch_distances(x, cand.get(), trials, 1, nullptr, closest.get(), nullptr, blocks, stream);
  kpp_update_kernel<<<chunk_blocks, kThreads, 0, stream>>>(N, count, chunks, nullptr, nullptr, closest.get(),
                                                           chunk_sum.get());
  FK_CUDA_LAUNCHED();
  for (std::int64_t step = 1; step < k; ++step) {
    kpp_draw_kernel<<<static_cast<unsigned>(B * trials), kThreads, 0, stream>>>(
        x, closest.get(), chunk_sum.get(), chunks, u_d.get(), k, trials, step, cand.get());
    FK_CUDA_LAUNCHED();
    launch_distances(x, cand.get(), trials, trials, closest.get(), dist.get(), partial.get(), blocks, stream);
    kpp_choose_kernel<<<static_cast<unsigned>(B), kThreads, 0, stream>>>(partial.get(), blocks, trials, cand.get(), D,
                                                                       k, step, best.get(), c);
    FK_CUDA_LAUNCHED();
    kpp_update_kernel<<<chunk_blocks, kThreads, 0, stream>>>(N, count, chunks, best.get(), dist.get(), closest.get(),
                                                             chunk_sum.get());
    FK_CUDA_LAUNCHED();
  }
}

}  // namespace flashkmeans::cuda
