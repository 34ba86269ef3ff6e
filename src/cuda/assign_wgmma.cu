// The fused assignment on Hopper: warp-group products (wgmma) read their operands from swizzled
// shared memory (or the points' from registers), so a product costs one instruction per
// 64 x N x k-step instead of a stream of fragment loads and mma.sync; the argmin stays fused
// (scores never leave registers).
//
// A block is persistent (one per multiprocessor) and walks over tiles of 64 * GROUPS * MT points:
//   - two producer warps, one lane each, load by TMA: one the point tiles (double-buffered where
//     they stay in shared memory, so the next one loads while this one is used), the other the
//     centroid tiles through a ring of stages; copies arrive on shared-memory barriers, consumers
//     hand buffers back through another barrier;
//   - GROUPS consumer warp groups own MT slices of 64 points each; per centroid tile they start the
//     accumulators at -h_k, issue the products of every slice, and fold each slice into a running
//     maximum (score = h_k - x.c, the best centroid maximises -score); the other warp groups'
//     products keep the tensor cores busy meanwhile (16-bit euclidean: a minimum of packed scores
//     that carry their column, see packed_score);
//   - for tf32 (RS), each consumer thread reads its rows of the point tile into registers once,
//     the products take them as operand A and the point buffer is handed back at once: only the
//     centroid tiles are read from shared memory by the products.
// Points and centroids are K-major with the 128-byte swizzle: a row of dp elements is stored as
// row_bytes / 128 blocks of 128 bytes, each block a [rows x 128 B] region whose 16-byte chunks
// are XOR-permuted by the row's low 3 bits (the layout the descriptors name).
#include <cuda.h>  // CUtensorMap (the encoder is reached through the runtime: no link to the driver)
#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cuda/assign.cuh"
#include "cuda/assign_common.cuh"
#include "cuda/check.cuh"
#include "cuda/elements.cuh"
#include "cuda/hopper.cuh"

namespace flashkmeans::cuda {

namespace {

// Consumer warp groups per block (2 or 3) and a producer warp group (two lanes load).
__host__ __device__ constexpr int block_threads(int groups) { return (groups + 1) * 128; }
constexpr int kMaxStages = 4;
constexpr int kSmemLimit = 227 * 1024;
constexpr int kBarrierBytes = 128;                  // full/empty per stage, full/empty per point buffer
constexpr int kAlignSlack = 1024;                   // the tiles start at a 1024-byte boundary

struct Shape {
  int kp = 0;
  int stages = 0, point_buffers = 0;
  std::int64_t row_tiles = 0;  // point tiles per batch
  bool reload = false;         // every centroid tile loaded anew (FLASHKMEANS_RELOAD=1, a development aid)
};

// Padded rows of 128 elements (D up to 128): 256 bytes of 16-bit, 512 of float. A compile-time
// row lets the k steps unroll, which keeps the accumulators in place between the products.
__host__ __device__ constexpr int row_bytes(MmaKind k) { return 128 * element_size(k); }

// Byte offset of 16-byte chunk c of row r in a swizzled tile of `rows` rows.
__device__ __forceinline__ int swizzled(int rows, int r, int c) {
  return (c >> 3) * rows * 128 + r * 128 + (((c & 7) ^ (r & 7)) << 4);
}

#if FK_HOPPER
// tf32 with the points' operand from registers (the 16-bit products read it from shared memory:
// from registers they measured no faster, docs/perf-notes.md).
template <int BN>
__device__ __forceinline__ void product_rs(float (&d)[BN / 2], const std::uint32_t (&a)[4], std::uint64_t b) {
  if constexpr (BN == 128) hopper::wgmma_rs_tf32_n128(d, a, b); else hopper::wgmma_rs_tf32_n64(d, a, b);
}

template <MmaKind KIND, int BN>
__device__ __forceinline__ void product(float (&d)[BN / 2], std::uint64_t a, std::uint64_t b) {
  if constexpr (KIND == MmaKind::f16) {
    if constexpr (BN == 128) hopper::wgmma_f16_n128(d, a, b); else hopper::wgmma_f16_n64(d, a, b);
  } else if constexpr (KIND == MmaKind::bf16) {
    if constexpr (BN == 128) hopper::wgmma_bf16_n128(d, a, b); else hopper::wgmma_bf16_n64(d, a, b);
  } else {
    if constexpr (BN == 128) hopper::wgmma_tf32_n128(d, a, b); else hopper::wgmma_tf32_n64(d, a, b);
  }
}
#endif

// The packed fold (16-bit euclidean): a score -||x - c||^2 / 2 <= 0 becomes the integer of its
// magnitude's float bits with the five low mantissa bits replaced by the column's position among
// the thread's 32 (`lop3`: bits of a where mask is set, of the position elsewhere); the smallest
// such integer is then the closest centroid, ties to the lowest position. The running minimum
// carries its column, so the fold needs no lookup of where its maximum was (two instructions a
// score, taken by nearly every warp on nearly every tile). The five bits are 2^-18 of the score,
// about a third of what rounding the centroids to 16 bits moves it (docs/perf-notes.md, version 7).
__device__ __forceinline__ int packed_score(float acc, int position) {
  int r;
  asm("lop3.b32 %0, %1, %2, %3, 0xEC;\n" : "=r"(r) : "r"(__float_as_int(acc)), "r"(position), "r"(0x7fffffe0));
  return r;
}
constexpr int kPositionBits = 0x1f;

// The minimum of v[0 .. N), three at a time (`vimnmx3`, one instruction each on Hopper).
template <int N>
__device__ __forceinline__ int min_tree(const int (&v)[N]) {
  if constexpr (N == 1) {
    return v[0];
  } else if constexpr (N == 2) {
    return min(v[0], v[1]);
  } else {
    constexpr int M = (N + 2) / 3;
    int u[M];
#pragma unroll
    for (int i = 0; i < M; ++i) {
      if (3 * i + 2 < N) u[i] = __vimin3_s32(v[3 * i], v[3 * i + 1], v[3 * i + 2]);
      else if (3 * i + 1 < N) u[i] = min(v[3 * i], v[3 * i + 1]);
      else u[i] = v[3 * i];
    }
    return min_tree<M>(u);
  }
}

// The slot and phase parity of a ring of barriers, advanced one use at a time: the slot counts
// are run-time values, and divisions by them showed in the SASS of the main loop.
struct Ring {
  int stage = 0;
  std::uint32_t phase = 0;
  __device__ void advance(int slots) {
    if (++stage == slots) stage = 0, phase ^= 1u;
  }
};

// With bias rows (AssignArgs::bias_scale) two launches share the batches: the packed fold takes
// those with a sigma, the lookup fold the others (none, usually: it then leaves at once).
template <bool PACKED>
__device__ __forceinline__ bool takes_batch(const AssignArgs& a, std::int64_t b) {
  return !a.bias_scale || (a.bias_scale[b] > 0.f) == PACKED;
}
template <bool PACKED>
__device__ __forceinline__ bool nothing_to_do(const AssignArgs& a) {
  return !PACKED && a.bias_scale && reinterpret_cast<const int*>(a.bias_scale)[a.batches] == 0;
}

template <MmaKind KIND, int BN, int MT, int GROUPS, bool PACKED>
__global__ void __launch_bounds__(block_threads(GROUPS), 1)
    assign_wgmma_kernel(AssignArgs a, Shape sh, const __grid_constant__ CUtensorMap centroid_map,
                        const __grid_constant__ CUtensorMap point_map) {
#if FK_HOPPER
  static_assert(MT == 1 || MT == 2, "one or two slices per warp group");
  // tf32: the points' operand from registers (see the top of the file and plan_wgmma).
  constexpr bool RS = KIND == MmaKind::tf32;
  static_assert(!PACKED || (!RS && BN == 128), "the packed fold takes 16-bit products and 128-centroid tiles");
  constexpr int ES = element_size(KIND);
  static_assert(GROUPS == 2 || (GROUPS == 3 && MT == 1 && KIND != MmaKind::tf32), "three groups: one 16-bit slice each");
  constexpr int BM = 64 * GROUPS * MT;
  constexpr int kConsumerThreads = GROUPS * 128;
  constexpr int RB = row_bytes(KIND);
  constexpr int KSTEPS = RB / 32;                // 32 bytes per k step: 16 elements of 16 bits or 8 of tf32
  constexpr int x_bytes = BM * RB, c_bytes = BN * RB;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* smem = reinterpret_cast<unsigned char*>((reinterpret_cast<std::uintptr_t>(smem_raw) + 1023) & ~std::uintptr_t{1023});
  const int S = sh.stages, XB = sh.point_buffers;
  unsigned char* xs = smem;
  unsigned char* cs = xs + XB * x_bytes;
  auto* full = reinterpret_cast<std::uint64_t*>(cs + S * c_bytes);
  std::uint64_t* empty = full + kMaxStages;
  std::uint64_t* x_full = empty + kMaxStages;
  std::uint64_t* x_empty = x_full + 2;
  if (nothing_to_do<PACKED>(a)) return;
  // Packed fold with bias rows (AssignArgs::bias): the centroid tiles' bias rows, a stage each,
  // then each slice's bias columns of its points (kBiasRowBytes a row, no swizzle).
  unsigned char* bias_stages = reinterpret_cast<unsigned char*>(full) + kBarrierBytes;
  unsigned char* bias_points = bias_stages + S * BN * kBiasRowBytes;

  if (threadIdx.x == 0) {
    for (int s = 0; s < S; ++s) hopper::barrier_init(full + s, 1), hopper::barrier_init(empty + s, 4 * GROUPS);
    for (int s = 0; s < XB; ++s) hopper::barrier_init(x_full + s, 1), hopper::barrier_init(x_empty + s, 4 * GROUPS);
    hopper::fence_async_shared();  // the initialised barriers visible to the copies (async proxy)
  }
  __syncthreads();

  const std::int64_t tiles = sh.row_tiles * a.batches;
  const int col_tiles = sh.kp / BN;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  if (warp >= kConsumerThreads / 32) {
    // Producers: hand their registers to the consumers. Two warps on independent timelines, one
    // lane each, so that a point tile loads while the previous one is still in use and the
    // centroid stream never waits for it: the first streams the centroid tiles, the second the
    // point tiles, both by TMA, one box per 128 bytes of row (rows past N and columns past D
    // zero-filled by the copy).
    hopper::release_registers<40>();
    const int role = warp - kConsumerThreads / 32;
    if (role > 1 || lane != 0) return;
    int it = 0, local = 0;
    Ring ring, x_ring;
    // The centroid tile each stage holds (batch * col_tiles + j; -1: none yet). A tile still in
    // its stage is not loaded again: the producer only completes the stage's phase. Where the
    // tiles' count divides the stages' (the ring then brings each tile back to its own stage: at
    // tf32 K <= 256; at 16 bits K <= 128 and 257 to 384, not 129 to 256) a block reads each
    // batch's centroids once.
    std::int64_t held[kMaxStages];
    for (int s = 0; s < kMaxStages; ++s) held[s] = -1;
    for (std::int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
      const std::int64_t b = tile / sh.row_tiles, row0 = (tile % sh.row_tiles) * BM;
      if ((a.skip && a.skip[b]) || !takes_batch<PACKED>(a, b)) continue;
      if (role == 0) {
        for (int j = 0; j < col_tiles; ++j, ++it, ring.advance(S)) {
          const int st = ring.stage;
          if (it >= S) hopper::barrier_wait(empty + st, ring.phase ^ 1u);  // the round before's release
          if (held[st] == b * col_tiles + j && !sh.reload) {
            hopper::barrier_arrive(full + st);
            continue;
          }
          held[st] = b * col_tiles + j;
          hopper::barrier_expect_bytes(full + st, c_bytes + (PACKED ? BN * kBiasRowBytes : 0));
          const int row = static_cast<int>(b * sh.kp + j * BN);
#pragma unroll
          for (int kb = 0; kb < RB / 128; ++kb)
            hopper::tensor_load_2d(cs + st * c_bytes + kb * BN * 128, &centroid_map, kb * (128 / ES), row, full + st);
          if constexpr (PACKED)
            hopper::bulk_load(bias_stages + st * BN * kBiasRowBytes,
                              static_cast<const unsigned char*>(a.bias) + static_cast<std::int64_t>(row) * kBiasRowBytes,
                              BN * kBiasRowBytes, full + st);
        }
      } else {
        const int xb = x_ring.stage;
        if (local >= XB) hopper::barrier_wait(x_empty + xb, x_ring.phase ^ 1u);
        hopper::barrier_expect_bytes(x_full + xb, x_bytes);
#pragma unroll
        for (int kb = 0; kb < RB / 128; ++kb)
          hopper::tensor_load_3d(xs + xb * x_bytes + kb * BM * 128, &point_map, kb * (128 / ES), static_cast<int>(row0),
                                 static_cast<int>(b), x_full + xb);
      }
      ++local, x_ring.advance(XB);
    }
    return;
  }

  // Consumers. Accumulator register i of a slice holds row 16 * warp + g (+8 when i & 2) and
  // column 8 * (i / 4) + 2 * t + (i & 1) of the 64 x BN product.
  // Registers: 2 groups x 128 x 232 + 128 x 40 (producers), or 3 x 128 x 152 + 128 x 40, of 65,536.
  hopper::claim_registers<GROUPS == 2 ? 232 : 152>();
  const int wg = warp / 4, wl = warp % 4, g = lane / 4, t = lane % 4;
  const std::uint64_t c_desc = hopper::descriptor(cs);
  float acc[MT][BN / 2];
  // RS: the warp's rows of each slice as the products' A operand, 4 registers per k step (rows g
  // and g + 8, bytes 4t and 16 + 4t of the step's 32), loaded once per point tile.
  std::uint32_t af[RS ? MT : 1][RS ? KSTEPS : 1][4];
  const auto load_fragments = [&](const unsigned char* xt) {
    if constexpr (RS) {
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        const int r0 = (wg * MT + m) * 64 + wl * 16 + g;
#pragma unroll
        for (int k = 0; k < KSTEPS; ++k)
#pragma unroll
          for (int h = 0; h < 4; ++h) {
            const int r = r0 + (h & 1) * 8, c = 2 * k + (h >> 1);
            const std::uint32_t w = hopper::load_shared(xt + swizzled(BM, r, c) + 4 * t);
            af[m][k][h] = KIND == MmaKind::tf32 ? to_tf32(__uint_as_float(w)) : w;
          }
      }
    }
  };

  // -h of a centroid tile's columns, loaded a tile ahead (the loads complete under the products).
  float2 h_next[BN / 8];
  const auto load_h = [&](const float* hb, int j) {
#pragma unroll
    for (int q = 0; q < BN / 8; ++q) h_next[q] = __ldg(reinterpret_cast<const float2*>(hb + j * BN + 8 * q + 2 * t));
  };
  // acc[m] = -h of the loaded tile (the lookup fold; the packed one starts on the tensor cores).
  // Each register is written from the loaded value, never copied from another accumulator (ptxas
  // would take that for a read of accumulators in flight).
  float xxh[MT][2];  // packed: ||x||^2 / 2 of the rows
  const auto init_slice = [&](int m) {
#pragma unroll
    for (int q = 0; q < BN / 8; ++q) {
      acc[m][4 * q] = hopper::negated(h_next[q].x), acc[m][4 * q + 2] = hopper::negated(h_next[q].x);
      acc[m][4 * q + 1] = hopper::negated(h_next[q].y), acc[m][4 * q + 3] = hopper::negated(h_next[q].y);
    }
  };
  // acc[m] += the products of slice m with the centroid tile in stage st.
  // Packed: the first k step multiplies the slice's bias columns by the tile's bias rows, d = A B =
  // -h - ||x||^2 / 2 for every score: the accumulators need no start (no h in registers).
  const auto issue_slice = [&](int m, int st, std::uint64_t x_desc) {
    hopper::fence_registers(acc[m]);
    hopper::wgmma_fence();
    const int slice_bytes = (wg * MT + m) * 64 * 128;
    if constexpr (PACKED) {
      const std::uint64_t a_bias = hopper::descriptor_interleaved(bias_points + (wg * MT + m) * 64 * kBiasRowBytes, kBiasAlongK, kBiasAlongRows);
      const std::uint64_t b_bias = hopper::descriptor_interleaved(bias_stages + st * BN * kBiasRowBytes, kBiasAlongK, kBiasAlongRows);
      if constexpr (KIND == MmaKind::f16) hopper::wgmma_first_f16_n128(acc[m], a_bias, b_bias);
      else hopper::wgmma_first_bf16_n128(acc[m], a_bias, b_bias);
    }
#pragma unroll
    for (int k = 0; k < KSTEPS; ++k) {
      const int kb = k >> 2, within = (k & 3) * 32;
      const std::uint64_t b_desc = c_desc + ((st * c_bytes + kb * BN * 128 + within) >> 4);
      if constexpr (RS)
        product_rs<BN>(acc[m], af[m][k], b_desc);
      else
        product<KIND, BN>(acc[m], x_desc + ((kb * BM * 128 + slice_bytes + within) >> 4), b_desc);
    }
    hopper::wgmma_commit();
  };

  Ring ring, x_ring;
  for (std::int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const std::int64_t b = tile / sh.row_tiles, row0 = (tile % sh.row_tiles) * BM;
    if ((a.skip && a.skip[b]) || !takes_batch<PACKED>(a, b)) continue;
    const int xb = x_ring.stage;
    unsigned char* xt = xs + xb * x_bytes;
    // The rows' previous labels and norms, read now: their latency hides under the products (read
    // at the end, they held every point tile up by a few global-memory round trips).
    int old_label[MT][2];
    float xx_row[MT][2];
#pragma unroll
    for (int m = 0; m < MT; ++m)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        const std::int64_t row = row0 + (wg * MT + m) * 64 + wl * 16 + hr * 8 + g;
        old_label[m][hr] = -1, xx_row[m][hr] = 0.f;
        if (t == 0 && row < a.n) old_label[m][hr] = a.labels[b * a.n + row], xx_row[m][hr] = norm_for_distance(a, b * a.n + row);
        if constexpr (PACKED) xxh[m][hr] = row < a.n ? 0.5f * a.xx[b * a.n + row] : 0.f;
      }
    hopper::barrier_wait(x_full + xb, x_ring.phase);
    const std::uint64_t x_desc = hopper::descriptor(xt);
    if constexpr (RS) {  // the points are in registers now: the buffer can take the next tile
      load_fragments(xt);
      __syncwarp();
      if (lane == 0) hopper::barrier_arrive(x_empty + xb);
    }
    const float* hb = a.h + b * sh.kp;
    // The bias columns of this group's rows: [sigma x 3, the three parts of -||x||^2 / (2 sigma),
    // 0 ...]; a quad writes its two rows, 4 columns a thread. The group's products of the tile
    // before are complete (waited for), so the columns can be rewritten.
    if constexpr (PACKED) {
      const float sigma = a.bias_scale[b];  // > 0 in the batches this launch takes (takes_batch)
      constexpr DType kType = KIND == MmaKind::f16 ? DType::float16 : DType::bfloat16;
      std::uint16_t one[3], q[3];
      split3(sigma, kType, one);  // a power of two: one[0] is sigma
      const unsigned sigma2 = one[0] | (static_cast<unsigned>(one[0]) << 16);
#pragma unroll
      for (int m = 0; m < MT; ++m)
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          split3(-xxh[m][hr] / sigma, kType, q);
          const uint2 v = t == 0   ? make_uint2(sigma2, one[0] | (static_cast<unsigned>(q[0]) << 16))
                          : t == 1 ? make_uint2(q[1] | (static_cast<unsigned>(q[2]) << 16), 0u)
                                   : make_uint2(0u, 0u);
          const int r = wl * 16 + hr * 8 + g;
          *reinterpret_cast<uint2*>(bias_points + (wg * MT + m) * 64 * kBiasRowBytes + bias_row_offset(r, 4 * t)) = v;
        }
      hopper::fence_async_shared();  // the columns visible to the products (async proxy)
      hopper::named_sync(1 + wg, 128);
    }

    float best_s[MT][2];
    int best_i[MT][2];
#pragma unroll
    for (int m = 0; m < MT; ++m)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) best_s[m][hr] = -__int_as_float(0x7f800000), best_i[m][hr] = 0x7fffffff;
    // Packed: the best packed score per row and the centroid tile it came from.
    int best_p[MT][2], best_j[MT][2];
#pragma unroll
    for (int m = 0; m < MT; ++m)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) best_p[m][hr] = 0x7fffffff, best_j[m][hr] = 0;

    // The tile's best per row of slice m. Packed (16-bit euclidean): the minimum of the packed
    // scores, kept with its tile. Otherwise the maximum, its column looked up only when it beats
    // the running best (lowest column on ties, as earlier tiles hold lower columns).
    const auto fold = [&](int m, int j) {
      if constexpr (PACKED) {
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          int v[BN / 4];
#pragma unroll
          for (int q = 0; q < BN / 8; ++q)
            v[2 * q] = packed_score(acc[m][4 * q + 2 * hr], 2 * q), v[2 * q + 1] = packed_score(acc[m][4 * q + 2 * hr + 1], 2 * q + 1);
          const int mn = min_tree(v);
          // Across tiles the magnitudes decide alone: on equal ones the earlier tile (lower columns) stays.
          if ((mn & ~kPositionBits) < (best_p[m][hr] & ~kPositionBits)) best_p[m][hr] = mn, best_j[m][hr] = j;
        }
      } else {
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          float mx = acc[m][2 * hr];
#pragma unroll
          for (int q = 0; q < BN / 8; ++q) mx = fmaxf(mx, fmaxf(acc[m][4 * q + 2 * hr], acc[m][4 * q + 2 * hr + 1]));
          if (mx > best_s[m][hr]) {
            int idx = 0;
#pragma unroll
            for (int q = BN / 8 - 1; q >= 0; --q) {
              const int col = j * BN + 8 * q + 2 * t;
              if (acc[m][4 * q + 2 * hr + 1] == mx) idx = col + 1;
              if (acc[m][4 * q + 2 * hr] == mx) idx = col;
            }
            best_s[m][hr] = mx, best_i[m][hr] = idx;
          }
        }
      }
    };

    if constexpr (!PACKED) load_h(hb, 0);
    hopper::barrier_wait(full + ring.stage, ring.phase);
    hopper::fence_async_shared();
    if constexpr (!PACKED)
#pragma unroll
      for (int m = 0; m < MT; ++m) init_slice(m);
#pragma unroll
    for (int m = 0; m < MT; ++m) issue_slice(m, ring.stage, x_desc);
    // Every slice of a tile completes before any is folded; the other warp group's products
    // keep the tensor cores busy meanwhile. (Folding one slice while the other's products run
    // needs partial waits, which ptxas cannot prove safe: it serialises the products then.)
    for (int j = 0; j < col_tiles; ++j, ring.advance(S)) {
      if (!PACKED && j + 1 < col_tiles) load_h(hb, j + 1);
      hopper::wgmma_wait<0>();
#pragma unroll
      for (int m = 0; m < MT; ++m) hopper::fence_registers(acc[m]);
      if (lane == 0) hopper::barrier_arrive(empty + ring.stage);  // the stage's last reader is done
#pragma unroll
      for (int m = 0; m < MT; ++m) fold(m, j);
      if (j + 1 < col_tiles) {
        Ring next = ring;
        next.advance(S);
        if constexpr (!PACKED)
#pragma unroll
          for (int m = 0; m < MT; ++m) init_slice(m);
        hopper::barrier_wait(full + next.stage, next.phase);
        hopper::fence_async_shared();
#pragma unroll
        for (int m = 0; m < MT; ++m) issue_slice(m, next.stage, x_desc);
      }
    }
    if (!RS && lane == 0) hopper::barrier_arrive(x_empty + xb);  // every product on this point tile is done

    // Combine the four threads of a quad (same rows), then write.
    int moved = 0;
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      unsigned bits = 0;  // the warp's 16 rows of this slice: bit hr * 8 + g
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        float s = -best_s[m][hr];  // back to the score h_k - x.c
        int i = best_i[m][hr];
        if constexpr (PACKED) {  // ||x - c||^2 / 2 and its column, then the score ||x - c||^2 / 2 - ||x||^2 / 2
          const int p = best_p[m][hr] & kPositionBits;
          s = __int_as_float(best_p[m][hr] & ~kPositionBits), i = best_j[m][hr] * BN + 8 * (p >> 1) + 2 * t + (p & 1);
        }
        quad_best(s, i);
        if constexpr (PACKED) s -= xxh[m][hr];
        const std::int64_t row = row0 + (wg * MT + m) * 64 + wl * 16 + hr * 8 + g;
        if (t == 0 && row < a.n && write_assignment(a, b * a.n + row, s, i, old_label[m][hr], xx_row[m][hr]))
          ++moved, bits |= 1u << (hr * 8 + g);
      }
      if (a.moved) {
        bits = __reduce_or_sync(0xffffffffu, bits);
        const std::int64_t row16 = row0 + (wg * MT + m) * 64 + wl * 16;
        if (lane == 0 && row16 < a.n) write_moved(a, b, row16, bits);
      }
    }
    if (a.changed) {
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) moved += __shfl_xor_sync(0xffffffffu, moved, off);
      if (lane == 0 && moved) atomicAdd(a.changed + b, moved);
    }
    x_ring.advance(XB);
  }
#endif
}

// A TMA tensor map over `rank` dimensions of 2- or 4-byte elements at base (strides in bytes, of
// dimensions 1..rank-1), copied to shared memory in boxes written with the 128-byte swizzle;
// elements past the dimensions read as zeros. `what` names the tiles in the error.
CUtensorMap tiled_map(const void* base, int es, cuuint32_t rank, const cuuint64_t* dims, const cuuint64_t* strides,
                      const cuuint32_t* box, const char* what) {
  static const auto encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found{};
    FK_CUDA(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found));
    FK_CHECK(fn && found == cudaDriverEntryPointSuccess, internal, "the CUDA driver has no cuTensorMapEncodeTiled");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
  }();
  const cuuint32_t steps[3] = {1, 1, 1};
  CUtensorMap map;
  const CUresult r = encode(&map, es == 4 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT32 : CU_TENSOR_MAP_DATA_TYPE_UINT16, rank,
                            const_cast<void*>(base), dims, strides, box, steps, CU_TENSOR_MAP_INTERLEAVE_NONE,
                            CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  FK_CHECK(r == CUDA_SUCCESS, internal, "cuTensorMapEncodeTiled failed for the " << what << " (error " << r << ")");
  return map;
}

// The centroid buffer (B * kp rows of dp elements): boxes of BN rows x 128 bytes.
CUtensorMap centroid_map(const AssignPlan& p, const AssignArgs& a) {
  const int es = element_size(p.kind);
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(p.dp), static_cast<cuuint64_t>(a.batches * p.kp)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(p.dp) * es};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(128 / es), static_cast<cuuint32_t>(p.bn)};
  return tiled_map(a.ct, es, 2, dims, strides, box, "centroid tiles");
}

// The points (D x N x B elements, rows and batches at their strides): boxes of 128 * slices rows
// x 128 bytes of one batch, swizzled as the centroid tiles; rows past N and columns past D read as
// zeros. Row and batch strides are multiples of 16 bytes, as TMA needs: the caller gives this
// kernel 16-byte aligned rows only (an unused stride, N = 1 or B = 1, gets any valid value).
CUtensorMap point_map(const AssignPlan& p, const AssignArgs& a) {
  const std::int64_t es = element_size(p.kind);
  const std::int64_t padded_row = (a.d * es + 15) / 16 * 16;
  const std::int64_t row_bytes = a.n > 1 ? a.x_row_stride * es : padded_row;
  const std::int64_t batch_bytes = a.batches > 1 ? a.x_batch_stride * es : row_bytes * a.n;
  FK_CHECK(row_bytes % 16 == 0 && batch_bytes % 16 == 0 && reinterpret_cast<std::uintptr_t>(a.x) % 16 == 0, internal,
           "the Hopper assignment needs 16-byte aligned rows");
  const cuuint64_t dims[3] = {static_cast<cuuint64_t>(a.d), static_cast<cuuint64_t>(a.n), static_cast<cuuint64_t>(a.batches)};
  const cuuint64_t strides[2] = {static_cast<cuuint64_t>(row_bytes), static_cast<cuuint64_t>(batch_bytes)};
  const cuuint32_t box[3] = {static_cast<cuuint32_t>(128 / es), static_cast<cuuint32_t>(64 * p.groups * p.slices), 1};
  return tiled_map(a.x, static_cast<int>(es), 3, dims, strides, box, "point tiles");
}

template <MmaKind KIND, int BN, int MT, int GROUPS, bool PACKED>
void launch_one(const AssignPlan& p, const AssignArgs& a, const Shape& sh, cudaStream_t stream) {
  const std::int64_t tiles = sh.row_tiles * a.batches;
  const auto blocks = static_cast<unsigned>(tiles < p.blocks ? tiles : p.blocks);
  assign_wgmma_kernel<KIND, BN, MT, GROUPS, PACKED>
      <<<blocks, block_threads(GROUPS), p.smem_bytes, stream>>>(a, sh, centroid_map(p, a), point_map(p, a));
  FK_CUDA_LAUNCHED();
}

// Calls f with the kernel instance of the plan (f is a generic lambda taking the function pointer
// and its template arguments as a tag).
template <MmaKind KIND, int BN, int MT, int GROUPS = 2, bool PACKED = false>
struct Tag {
  static constexpr MmaKind kind = KIND;
  static constexpr int bn = BN, mt = MT, groups = GROUPS;
  static constexpr bool packed = PACKED;
};

// packed: the packed fold where the kernel has it (16-bit products, three groups).
template <typename F>
void dispatch(const AssignPlan& p, bool packed, F&& f) {
  const auto by_shape = [&](auto kind) {
    constexpr MmaKind K = decltype(kind)::value;
    constexpr int MT2 = K == MmaKind::tf32 ? 1 : 2;  // tf32 plans take one slice (plan_wgmma)
    if (p.bn == 128) {
      if constexpr (K != MmaKind::tf32)
        if (p.groups == 3) return packed ? f(Tag<K, 128, 1, 3, true>{}) : f(Tag<K, 128, 1, 3>{});
      if (p.slices == 2) return f(Tag<K, 128, MT2>{});
      return f(Tag<K, 128, 1>{});
    }
    if (p.slices == 2) return f(Tag<K, 64, MT2>{});
    return f(Tag<K, 64, 1>{});
  };
  switch (p.kind) {
    case MmaKind::f16: return by_shape(std::integral_constant<MmaKind, MmaKind::f16>{});
    case MmaKind::bf16: return by_shape(std::integral_constant<MmaKind, MmaKind::bf16>{});
    default: return by_shape(std::integral_constant<MmaKind, MmaKind::tf32>{});
  }
}

// The packed fold ranks by -||x - c||^2 / 2 <= 0, which needs the points' norms (euclidean only)
// and the bias rows (wants_bias_rows).
bool packed_fold(const AssignArgs& a) { return a.metric == Metric::euclidean && a.xx && a.bias && a.bias_scale; }

Shape shape_of(const AssignPlan& p, const AssignArgs& a) {
  Shape sh;
  sh.kp = p.kp;
  sh.stages = p.stages, sh.point_buffers = p.point_buffers;
  const std::int64_t bm = 64 * p.groups * p.slices;
  sh.row_tiles = (a.n + bm - 1) / bm;
  const char* reload = std::getenv("FLASHKMEANS_RELOAD");
  sh.reload = reload && std::strcmp(reload, "1") == 0;
  return sh;
}

// Three 16-bit groups take the packed fold, and with it room for the bias rows (a stage each) and
// the points' bias columns.
int smem_bytes(int row_bytes, int bn, int slices, int point_buffers, int stages, int groups) {
  const int bias = groups == 3 ? (stages * bn + groups * slices * 64) * kBiasRowBytes : 0;
  return point_buffers * 64 * groups * slices * row_bytes + stages * bn * row_bytes + kBarrierBytes + bias + kAlignSlack;
}

// Whether this device runs the Hopper kernels of this build: compiled for sm_90a (CMake defines
// FLASHKMEANS_SM90A; a build for plain sm_90 has the kernels' bodies compiled out) and a 9.x device.
bool hopper_device(int device) {
#ifndef FLASHKMEANS_SM90A
  (void)device;
  return false;
#else
  static std::atomic<int> cached[64];  // 0 unknown, 1 yes, 2 no
  if (device < 0 || device >= 64) return false;
  std::atomic<int>& c = cached[device];
  if (c.load() == 0) {
    cudaDeviceProp prop{};
    const bool ok = cudaGetDeviceProperties(&prop, device) == cudaSuccess && prop.major == 9;
    (void)cudaGetLastError();
    c.store(ok ? 1 : 2);
  }
  return c.load() == 1;
#endif
}

}  // namespace

bool plan_wgmma(AssignPlan& p, std::int64_t k, std::int64_t d, int device) {
  if (p.kind == MmaKind::tf32x3) return false;  // three products per step: the mma.sync path
  const char* env = std::getenv("FLASHKMEANS_ASSIGN");
  if (env && std::strcmp(env, "mma") == 0) return false;
  if (!hopper_device(device)) return false;
  // D from 65 to 128 (smaller D would pay for 128 columns; the mma.sync kernel takes it).
  const int es = element_size(p.kind), rb = row_bytes(p.kind);
  if (d <= 64 || d > 128) return false;
  // Few centroids (H100, whole fits, docs/perf-notes.md "Version 6"): with tf32 products this
  // kernel is faster at every K measured (100,000 x 128, K = 10: 2.21 against 2.62 ms, K = 100:
  // 2.11 against 2.72); with 16-bit ones from K = 100 (32 x 16,384 x 128, K = 100: 17.5 against
  // 22.2 ms), level at K = 64 and 2-5% slower at K = 10 and 32, where the mma.sync kernel stays.
  if (p.kind != MmaKind::tf32 && k <= 64) return false;
  // Tiles, measured on an H100 (docs/perf-notes.md):
  //   - 16-bit products: three consumer warp groups of one 64-point slice each (192 points a
  //     tile): while one group folds its scores, the other two keep the tensor cores busy (with
  //     two groups of two slices, both folded at once too often); 128-centroid tiles, a second
  //     point buffer (the next tile loads while this one is used), 3 centroid stages;
  //   - tf32: the points' operand from registers, read once per point tile, so only the centroid
  //     tiles stream through shared memory (its bandwidth held the products back: -16 to -22%);
  //     the point buffer is free once read, so one suffices; 128-centroid tiles, 2 stages; two
  //     groups (three leave too few registers for the operands).
  int bn = 128, slices = 1, buffers = 2, stages = 3, groups = 3;
  if (p.kind == MmaKind::tf32) slices = 1, buffers = 1, stages = 2, groups = 2;
  if (p.kind == MmaKind::tf32 && k <= 64) bn = 64;  // half the padded products (2.21 against 2.28 ms at K = 10)
  if (const char* force = std::getenv("FLASHKMEANS_WGMMA")) {  // bn,slices,buffers,stages[,groups] (tuning)
    int f[5] = {0, 0, 0, 0, 2};
    // (tf32 takes one slice and two groups only: more operands in registers spill and serialise
    // the products; three groups take one 16-bit slice of 128 centroids)
    const int got = std::sscanf(force, "%d,%d,%d,%d,%d", &f[0], &f[1], &f[2], &f[3], &f[4]);
    const bool three = f[4] == 3 && p.kind != MmaKind::tf32 && f[0] == 128 && f[1] == 1;
    if (got >= 4 && (f[0] == 64 || f[0] == 128) && (f[1] == 1 || (f[1] == 2 && p.kind != MmaKind::tf32)) &&
        (f[2] == 1 || f[2] == 2) && f[3] >= 1 && f[3] <= kMaxStages && (f[4] == 2 || three) &&
        smem_bytes(rb, f[0], f[1], f[2], f[3], f[4]) <= kSmemLimit)
      bn = f[0], slices = f[1], buffers = f[2], stages = f[3], groups = f[4];
  }
  if (smem_bytes(rb, bn, slices, buffers, stages, groups) > kSmemLimit) return false;
  p.wgmma = true;
  p.bn = bn, p.slices = slices, p.point_buffers = buffers, p.stages = stages, p.groups = groups;
  p.dp = rb / es, p.dc = p.dp, p.resident = true;
  p.kp = static_cast<int>((k + bn - 1) / bn * bn);
  p.smem_bytes = smem_bytes(rb, bn, slices, buffers, stages, groups);
  FK_CUDA(cudaDeviceGetAttribute(&p.blocks, cudaDevAttrMultiProcessorCount, device));
  return true;
}

// Only where a point tile meets several centroid tiles: with one (K <= 128) the extra k step and
// the bias columns' writes cost more than they save (H100: 32 x 16K, K = 100, 8.9 -> 9.2 ms a fit).
bool wants_bias_rows(const AssignPlan& p, Metric metric) {
  if (!p.wgmma || p.kind == MmaKind::tf32 || p.groups != 3 || metric != Metric::euclidean || p.kp <= p.bn) return false;
  const char* v = std::getenv("FLASHKMEANS_FOLD");
  return !(v && std::strcmp(v, "lookup") == 0);
}

void prepare_wgmma(const AssignPlan& p) {
  for (const bool packed : {false, true})
    dispatch(p, packed, [&](auto tag) {
      using T = decltype(tag);
      FK_CUDA(cudaFuncSetAttribute(assign_wgmma_kernel<T::kind, T::bn, T::mt, T::groups, T::packed>,
                                   cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemLimit));
    });
}

void launch_wgmma(const AssignPlan& p, const AssignArgs& a, cudaStream_t stream) {
  const Shape sh = shape_of(p, a);
  const bool packed = packed_fold(a);
  AssignArgs args = a;
  if (!packed) args.bias = nullptr, args.bias_scale = nullptr;  // the lookup fold takes every batch
  const auto launch = [&](auto tag) {
    using T = decltype(tag);
    launch_one<T::kind, T::bn, T::mt, T::groups, T::packed>(p, args, sh, stream);
  };
  if (packed) dispatch(p, true, launch);
  dispatch(p, false, launch);  // with bias rows: the batches without a sigma (takes_batch)
}

}  // namespace flashkmeans::cuda
