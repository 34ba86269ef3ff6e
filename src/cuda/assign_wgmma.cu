// The fused assignment on Hopper: warp-group products (wgmma) read both operands from swizzled
// shared memory, so a product costs one instruction per 64 x N x k-step instead of a stream of
// fragment loads and mma.sync; the argmin stays fused (scores never leave registers).
//
// A block is persistent (one per multiprocessor) and walks over tiles of 128 * MT points:
//   - producer warps copy the point tile (once, double-buffered when it fits, so the next one
//     loads while this one is used) and stream centroid tiles by TMA through a ring of stages;
//     copies arrive on shared-memory barriers, consumers release stages through another barrier;
//   - two consumer warp groups own MT slices of 64 points each; per centroid tile they start the
//     accumulators at -h_k, issue the products of every slice, and fold each slice into a running
//     maximum (score = h_k - x.c, the best centroid maximises -score); the next tile's products
//     for a slice are issued as soon as it is folded, so the other slice's products overlap.
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

constexpr int kConsumerThreads = 256;               // two warp groups
constexpr int kThreads = kConsumerThreads + 128;    // and a producer warp group (one warp copies)
constexpr int kMaxStages = 4;
constexpr int kSmemLimit = 227 * 1024;
constexpr int kBarrierBytes = 128;                  // full/empty per stage, full/empty per point buffer
constexpr int kAlignSlack = 1024;                   // the tiles start at a 1024-byte boundary
// The mma.sync kernel is faster up to these K: 16-bit products (the two kernels even at K = 384,
// this one 10% faster at 512) and tf32 products (this one 9% slower at 512, 4% faster at 768).
constexpr std::int64_t kHopperMinK16 = 384, kHopperMinK32 = 640;

struct Shape {
  int kp = 0;
  int stages = 0, point_buffers = 0;
  std::int64_t row_tiles = 0;  // point tiles per batch
};

// Padded rows of 128 elements (D up to 128): 256 bytes of 16-bit, 512 of float. A compile-time
// row lets the k steps unroll, which keeps the accumulators in place between the products.
__host__ __device__ constexpr int row_bytes(MmaKind k) { return 128 * element_size(k); }

// Byte offset of 16-byte chunk c of row r in a swizzled tile of `rows` rows.
__device__ __forceinline__ int swizzled(int rows, int r, int c) {
  return (c >> 3) * rows * 128 + r * 128 + (((c & 7) ^ (r & 7)) << 4);
}

#if FK_HOPPER
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

template <MmaKind KIND, int BN, int MT>
__global__ void __launch_bounds__(kThreads, 1)
    assign_wgmma_kernel(AssignArgs a, Shape sh, const __grid_constant__ CUtensorMap centroid_map) {
#if FK_HOPPER
  static_assert(MT == 1 || MT == 2, "one or two slices per warp group");
  constexpr int ES = element_size(KIND);
  constexpr int BM = 128 * MT;
  constexpr int RB = row_bytes(KIND);
  constexpr int CHUNKS_LOG = RB == 256 ? 4 : 5;  // log2 of 16-byte chunks per row
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

  if (threadIdx.x == 0) {
    for (int s = 0; s < S; ++s) hopper::barrier_init(full + s, 1), hopper::barrier_init(empty + s, 8);
    for (int s = 0; s < XB; ++s) hopper::barrier_init(x_full + s, 32), hopper::barrier_init(x_empty + s, 8);
  }
  __syncthreads();

  const std::int64_t tiles = sh.row_tiles * a.batches;
  const int col_tiles = sh.kp / BN;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  if (warp >= kConsumerThreads / 32) {
    // Producers: hand their registers to the consumers. Two warps on independent timelines, so
    // that a point tile loads while the previous one is still in use and the centroid stream
    // never waits for it:
    //   - the first, one lane: the centroid tiles by TMA, one box per 128 bytes of row;
    //   - the second: the point tiles, every lane copying 16-byte chunks (rows and columns past
    //     the data zero-filled); the barrier counts the lanes' arrivals.
    hopper::release_registers<40>();
    const int role = warp - kConsumerThreads / 32;
    if (role > 1 || (role == 0 && lane != 0)) return;
    constexpr int chunk_mask = (1 << CHUNKS_LOG) - 1;
    int it = 0, local = 0;
    for (std::int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
      const std::int64_t b = tile / sh.row_tiles, row0 = (tile % sh.row_tiles) * BM;
      if (a.skip && a.skip[b]) continue;
      if (role == 0) {
        for (int j = 0; j < col_tiles; ++j, ++it) {
          const int st = it % S;
          if (it >= S) hopper::barrier_wait(empty + st, ((it / S) - 1) & 1);
          hopper::barrier_expect_bytes(full + st, c_bytes);
          const int row = static_cast<int>(b * sh.kp + j * BN);
#pragma unroll
          for (int kb = 0; kb < RB / 128; ++kb)
            hopper::tensor_load_2d(cs + st * c_bytes + kb * BN * 128, &centroid_map, kb * (128 / ES), row, full + st);
        }
      } else {
        const int xb = local % XB;
        if (local >= XB) hopper::barrier_wait(x_empty + xb, ((local / XB) - 1) & 1);
        const char* xg = static_cast<const char*>(a.x) + (b * a.x_batch_stride + row0 * a.x_row_stride) * ES;
        const std::int64_t rows_left = a.n - row0, row_bytes = a.d * ES;
#pragma unroll 4
        for (int p = lane; p < (BM << CHUNKS_LOG); p += 32) {
          const int r = p >> CHUNKS_LOG, c = p & chunk_mask;
          std::int64_t src = r < rows_left ? row_bytes - c * 16 : 0;
          src = src < 0 ? 0 : (src > 16 ? 16 : src);
          const char* g = src > 0 ? xg + r * a.x_row_stride * ES + c * 16 : static_cast<const char*>(a.x);
          hopper::copy16(xs + xb * x_bytes + swizzled(BM, r, c), g, static_cast<int>(src));
        }
        if constexpr (KIND == MmaKind::tf32) {
          // Round the points to tf32 (the products would truncate them), as the mma.sync path does
          // and as the centroids are stored: each lane rounds the chunks it copied, once they have
          // landed, then publishes them to the products (async proxy) and arrives.
          hopper::copies_wait_all();
          for (int p = lane; p < (BM << CHUNKS_LOG); p += 32) {
            float4* q = reinterpret_cast<float4*>(xs + xb * x_bytes + swizzled(BM, p >> CHUNKS_LOG, p & chunk_mask));
            float4 v = *q;
            v.x = __uint_as_float(to_tf32(v.x)), v.y = __uint_as_float(to_tf32(v.y));
            v.z = __uint_as_float(to_tf32(v.z)), v.w = __uint_as_float(to_tf32(v.w));
            *q = v;
          }
          hopper::fence_async_shared();
          hopper::barrier_arrive(x_full + xb);
        } else {
          hopper::copies_arrive(x_full + xb);
        }
      }
      ++local;
    }
    hopper::copies_wait_all();
    return;
  }

  // Consumers. Accumulator register i of a slice holds row 16 * warp + g (+8 when i & 2) and
  // column 8 * (i / 4) + 2 * t + (i & 1) of the 64 x BN product.
  hopper::claim_registers<232>();
  const int wg = warp / 4, wl = warp % 4, g = lane / 4, t = lane % 4;
  const std::uint64_t c_desc = hopper::descriptor(cs);
  float acc[MT][BN / 2];

  // -h of a centroid tile's columns, loaded a tile ahead (the loads complete under the products).
  float2 h_next[BN / 8];
  const auto load_h = [&](const float* hb, int j) {
#pragma unroll
    for (int q = 0; q < BN / 8; ++q) h_next[q] = __ldg(reinterpret_cast<const float2*>(hb + j * BN + 8 * q + 2 * t));
  };
  // acc[m] = -h of the loaded tile. Each register is written from the loaded value, never copied
  // from another accumulator (ptxas would take that for a read of accumulators in flight).
  const auto init_slice = [&](int m) {
#pragma unroll
    for (int q = 0; q < BN / 8; ++q) {
      acc[m][4 * q] = hopper::negated(h_next[q].x), acc[m][4 * q + 2] = hopper::negated(h_next[q].x);
      acc[m][4 * q + 1] = hopper::negated(h_next[q].y), acc[m][4 * q + 3] = hopper::negated(h_next[q].y);
    }
  };
  // acc[m] += the products of slice m with the centroid tile in stage st.
  const auto issue_slice = [&](int m, int st, std::uint64_t x_desc) {
    hopper::fence_registers(acc[m]);
    hopper::wgmma_fence();
    const int slice_bytes = (wg * MT + m) * 64 * 128;
#pragma unroll
    for (int k = 0; k < KSTEPS; ++k) {
      const int kb = k >> 2, within = (k & 3) * 32;
      product<KIND, BN>(acc[m], x_desc + ((kb * BM * 128 + slice_bytes + within) >> 4),
                        c_desc + ((st * c_bytes + kb * BN * 128 + within) >> 4));
    }
    hopper::wgmma_commit();
  };

  int it = 0, local = 0;
  for (std::int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const std::int64_t b = tile / sh.row_tiles, row0 = (tile % sh.row_tiles) * BM;
    if (a.skip && a.skip[b]) continue;
    const int xb = local % XB;
    unsigned char* xt = xs + xb * x_bytes;
    hopper::barrier_wait(x_full + xb, (local / XB) & 1);
    const std::uint64_t x_desc = hopper::descriptor(xt);
    const float* hb = a.h + b * sh.kp;

    float best_s[MT][2];
    int best_i[MT][2];
#pragma unroll
    for (int m = 0; m < MT; ++m)
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) best_s[m][hr] = -__int_as_float(0x7f800000), best_i[m][hr] = 0x7fffffff;

    // The tile's best per row of slice m; the column is looked up only when it beats the running
    // best (lowest column on ties, as earlier tiles hold lower columns).
    const auto fold = [&](int m, int j) {
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
    };

    load_h(hb, 0);
    hopper::barrier_wait(full + it % S, (it / S) & 1);
    hopper::fence_async_shared();
#pragma unroll
    for (int m = 0; m < MT; ++m) init_slice(m);
#pragma unroll
    for (int m = 0; m < MT; ++m) issue_slice(m, it % S, x_desc);
    // Every slice of a tile completes before any is folded; the other warp group's products
    // keep the tensor cores busy meanwhile. (Folding one slice while the other's products run
    // needs partial waits, which ptxas cannot prove safe: it serialises the products then.)
    for (int j = 0; j < col_tiles; ++j, ++it) {
      if (j + 1 < col_tiles) load_h(hb, j + 1);
      hopper::wgmma_wait<0>();
#pragma unroll
      for (int m = 0; m < MT; ++m) hopper::fence_registers(acc[m]);
      if (lane == 0) hopper::barrier_arrive(empty + it % S);  // the stage's last reader is done
#pragma unroll
      for (int m = 0; m < MT; ++m) fold(m, j);
      if (j + 1 < col_tiles) {
        const int next_st = (it + 1) % S;
#pragma unroll
        for (int m = 0; m < MT; ++m) init_slice(m);
        hopper::barrier_wait(full + next_st, ((it + 1) / S) & 1);
        hopper::fence_async_shared();
#pragma unroll
        for (int m = 0; m < MT; ++m) issue_slice(m, next_st, x_desc);
      }
    }
    if (lane == 0) hopper::barrier_arrive(x_empty + xb);  // every product on this point tile is done

    // Combine the four threads of a quad (same rows), then write.
    int moved = 0;
#pragma unroll
    for (int m = 0; m < MT; ++m) {
#pragma unroll
      for (int hr = 0; hr < 2; ++hr) {
        float s = -best_s[m][hr];  // back to the score h_k - x.c
        int i = best_i[m][hr];
        quad_best(s, i);
        const std::int64_t row = row0 + (wg * MT + m) * 64 + wl * 16 + hr * 8 + g;
        if (t == 0 && row < a.n) moved += write_assignment(a, b, b * a.n + row, s, i);
      }
    }
    if (a.changed) {
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) moved += __shfl_xor_sync(0xffffffffu, moved, off);
      if (lane == 0 && moved) atomicAdd(a.changed + b, moved);
    }
    ++local;
  }
#endif
}

// The centroid buffer (B * kp rows of dp elements) as a TMA tensor map: boxes of BN rows x 128
// bytes, written to shared memory with the 128-byte swizzle.
CUtensorMap centroid_map(const AssignPlan& p, const AssignArgs& a) {
  static const auto encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found{};
    FK_CUDA(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &found));
    FK_CHECK(fn && found == cudaDriverEntryPointSuccess, internal, "the CUDA driver has no cuTensorMapEncodeTiled");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(fn);
  }();
  const int es = element_size(p.kind);
  CUtensorMap map;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(p.dp), static_cast<cuuint64_t>(a.batches * p.kp)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(p.dp) * es};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(128 / es), static_cast<cuuint32_t>(p.bn)};
  const cuuint32_t steps[2] = {1, 1};
  const CUresult r = encode(&map, es == 4 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT32 : CU_TENSOR_MAP_DATA_TYPE_UINT16, 2,
                            const_cast<void*>(a.ct), dims, strides, box, steps, CU_TENSOR_MAP_INTERLEAVE_NONE,
                            CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  FK_CHECK(r == CUDA_SUCCESS, internal, "cuTensorMapEncodeTiled failed for the centroid tiles (error " << r << ")");
  return map;
}

template <MmaKind KIND, int BN, int MT>
void launch_one(const AssignPlan& p, const AssignArgs& a, const Shape& sh, cudaStream_t stream) {
  const std::int64_t tiles = sh.row_tiles * a.batches;
  const auto blocks = static_cast<unsigned>(tiles < p.blocks ? tiles : p.blocks);
  assign_wgmma_kernel<KIND, BN, MT><<<blocks, kThreads, p.smem_bytes, stream>>>(a, sh, centroid_map(p, a));
  FK_CUDA_LAUNCHED();
}

// Calls f with the kernel instance of the plan (f is a generic lambda taking the function pointer
// and its template arguments as a tag).
template <MmaKind KIND, int BN, int MT>
struct Tag {
  static constexpr MmaKind kind = KIND;
  static constexpr int bn = BN, mt = MT;
};

template <typename F>
void dispatch(const AssignPlan& p, F&& f) {
  const auto by_shape = [&](auto kind) {
    constexpr MmaKind K = decltype(kind)::value;
    if (p.bn == 128) {
      if (p.slices == 2) return f(Tag<K, 128, 2>{});
      return f(Tag<K, 128, 1>{});
    }
    if (p.slices == 2) return f(Tag<K, 64, 2>{});
    return f(Tag<K, 64, 1>{});
  };
  switch (p.kind) {
    case MmaKind::f16: return by_shape(std::integral_constant<MmaKind, MmaKind::f16>{});
    case MmaKind::bf16: return by_shape(std::integral_constant<MmaKind, MmaKind::bf16>{});
    default: return by_shape(std::integral_constant<MmaKind, MmaKind::tf32>{});
  }
}

Shape shape_of(const AssignPlan& p, const AssignArgs& a) {
  Shape sh;
  sh.kp = p.kp;
  sh.stages = p.stages, sh.point_buffers = p.point_buffers;
  const std::int64_t bm = 128 * p.slices;
  sh.row_tiles = (a.n + bm - 1) / bm;
  return sh;
}

int smem_bytes(int row_bytes, int bn, int slices, int point_buffers, int stages) {
  return point_buffers * 128 * slices * row_bytes + stages * bn * row_bytes + kBarrierBytes + kAlignSlack;
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
  const bool forced = env && std::strcmp(env, "wgmma") == 0;
  if (!hopper_device(device)) return false;
  // D from 65 to 128 (smaller D would pay for 128 columns; the mma.sync kernel takes it).
  const int es = element_size(p.kind), rb = row_bytes(p.kind);
  if (d <= 64 || d > 128) return false;
  // A few centroid tiles per point tile leave the pipeline little depth: below these K the
  // mma.sync kernel is faster, at any N (H100, docs/perf-notes.md: 50,000 to 400,000 points at
  // K = 256, 100,000 at K = 384 to 1,000, 20,000 to 500,000 at K = 1,000).
  if (k <= (p.kind == MmaKind::tf32 ? kHopperMinK32 : kHopperMinK16) && !forced) return false;
  if (k <= 128) return false;  // one centroid tile per point tile: not even when forced
  int bn = 128, slices = 0, buffers = 0, stages = 0;
  // Preference (measured on an H100, docs/perf-notes.md): a second point buffer first (without
  // it every point tile waits for its load: -15% for tf32), then more points per tile (fewer
  // centroid reads), then wide centroid tiles, then deeper centroid pipelines; at least 2 stages.
  const int bn_first = bn;
  for (const int xb : {2, 1}) {
    for (const int bn_try : {bn_first, 64}) {
      for (const int mt : {2, 1}) {
        for (int s = kMaxStages; s >= 2 && !slices; --s)
          if (smem_bytes(rb, bn_try, mt, xb, s) <= kSmemLimit) slices = mt, buffers = xb, stages = s, bn = bn_try;
        if (slices) break;
      }
      if (slices) break;
    }
    if (slices) break;
  }
  if (!slices) return false;
  if (const char* force = std::getenv("FLASHKMEANS_WGMMA")) {  // bn,slices,buffers,stages (tuning)
    int f[4];
    if (std::sscanf(force, "%d,%d,%d,%d", &f[0], &f[1], &f[2], &f[3]) == 4 && (f[0] == 64 || f[0] == 128) &&
        (f[1] == 1 || f[1] == 2) && (f[2] == 1 || f[2] == 2) && f[3] >= 1 && f[3] <= kMaxStages &&
        smem_bytes(rb, f[0], f[1], f[2], f[3]) <= kSmemLimit)
      bn = f[0], slices = f[1], buffers = f[2], stages = f[3];
  }
  p.wgmma = true;
  p.bn = bn, p.slices = slices, p.point_buffers = buffers, p.stages = stages;
  p.dp = rb / es, p.dc = p.dp, p.resident = true;
  p.kp = static_cast<int>((k + bn - 1) / bn * bn);
  p.smem_bytes = smem_bytes(rb, bn, slices, buffers, stages);
  FK_CUDA(cudaDeviceGetAttribute(&p.blocks, cudaDevAttrMultiProcessorCount, device));
  return true;
}

void prepare_wgmma(const AssignPlan& p) {
  dispatch(p, [&](auto tag) {
    using T = decltype(tag);
    FK_CUDA(cudaFuncSetAttribute(assign_wgmma_kernel<T::kind, T::bn, T::mt>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 kSmemLimit));
  });
}

void launch_wgmma(const AssignPlan& p, const AssignArgs& a, cudaStream_t stream) {
  const Shape sh = shape_of(p, a);
  dispatch(p, [&](auto tag) {
    using T = decltype(tag);
    launch_one<T::kind, T::bn, T::mt>(p, a, sh, stream);
  });
}

}  // namespace flashkmeans::cuda
