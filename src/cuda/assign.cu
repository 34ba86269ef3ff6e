// The fused assignment kernel. A block owns 128 points of one batch and walks over all centroid
// tiles: products on tensor cores (mma.sync, float32 accumulation), then score = h_k - x.c and a
// running argmin per point in registers. Only labels (and optionally previous labels, distances) are written.
//
// Tiles: 8 warps as 4 (points) x 2 (centroids); a warp owns 32 points x BN/2 centroids. Points and
// centroids are staged in shared memory by cp.async, double-buffered; when a tile of points fits
// (D small enough) it is loaded once and stays, and only centroid tiles stream through.
// Fragments are read with 64-bit shared loads: the k index inside a step is permuted the same way
// for both operands, which leaves every dot product unchanged.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "cuda/assign.cuh"
#include "cuda/assign_common.cuh"
#include "cuda/check.cuh"
#include "cuda/elements.cuh"

namespace flashkmeans::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kBM = 128;
constexpr int kSmemLimit = 227 * 1024;

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int src_bytes) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

template <MmaKind K>
__device__ __forceinline__ void mma(float (&c)[4], const std::uint32_t (&a)[4], std::uint32_t b0, std::uint32_t b1) {
  if constexpr (K == MmaKind::f16) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else if constexpr (K == MmaKind::bf16) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

__host__ __device__ constexpr int k_step(MmaKind k) { return element_size(k) == 2 ? 16 : 8; }

// Shared-memory row stride (elements) for rows of dc elements: a multiple of 16 bytes whose
// 32-bit word count is 8 mod 32, so that the 64-bit fragment loads of a half-warp (8 rows x 4
// threads) hit 32 distinct banks.
__host__ __device__ constexpr int smem_stride(int dc, int esize) {
  return (dc * esize / 4 + ((8 - (dc * esize / 4) % 32) % 32 + 32) % 32) * 4 / esize;
}

// FIXED_DC: the D chunk as a compile-time constant (0: taken from dc_arg). With it the k loop
// unrolls and every shared-memory address is a constant offset from one register per operand.
template <MmaKind KIND, int BN, int FIXED_DC>
__global__ void __launch_bounds__(kThreads)
    assign_kernel(AssignArgs a, int dp, int kp, int dc_arg, bool resident, int stride_arg) {
  constexpr int ES = element_size(KIND);
  constexpr int KSTEP = k_step(KIND);
  const int dc = FIXED_DC ? FIXED_DC : dc_arg;
  const int stride = FIXED_DC ? smem_stride(FIXED_DC, ES) : stride_arg;
  constexpr int NT = BN / 16;  // 8-wide centroid tiles per warp (two warps share BN)
  using E = std::conditional_t<ES == 2, std::uint16_t, float>;
  extern __shared__ __align__(16) unsigned char smem[];

  const int b = blockIdx.y;
  if (a.skip && a.skip[b]) return;
  const std::int64_t row0 = static_cast<std::int64_t>(blockIdx.x) * kBM;
  E* xs = reinterpret_cast<E*>(smem);
  E* cs = xs + (resident ? 1 : 2) * kBM * stride;
  const char* xg = static_cast<const char*>(a.x) + (b * a.x_batch_stride + row0 * a.x_row_stride) * ES;
  const char* cg = static_cast<const char*>(a.ct) + static_cast<std::int64_t>(b) * kp * dp * ES;
  const float* hb = a.h + static_cast<std::int64_t>(b) * kp;
  const int nchunks = dp / dc, steps = (kp / BN) * nchunks;
  const int pieces = dc * ES / 16;
  const std::int64_t rows_left = a.n - row0, row_bytes = a.d * ES;

  auto load_x = [&](int q, E* dst) {
    for (int p = threadIdx.x; p < kBM * pieces; p += kThreads) {
      const int r = p / pieces, c = p % pieces;
      const std::int64_t off = static_cast<std::int64_t>(q) * dc * ES + c * 16;
      std::int64_t src = r < rows_left ? row_bytes - off : 0;
      src = src < 0 ? 0 : (src > 16 ? 16 : src);
      const char* g = src > 0 ? xg + r * a.x_row_stride * ES + off : static_cast<const char*>(a.x);
      cp_async16(dst + r * stride + c * (16 / ES), g, static_cast<int>(src));
    }
  };
  auto load_c = [&](int j, int q, E* dst) {
    for (int p = threadIdx.x; p < BN * pieces; p += kThreads) {
      const int r = p / pieces, c = p % pieces;
      cp_async16(dst + r * stride + c * (16 / ES),
                 cg + (static_cast<std::int64_t>(j * BN + r) * dp + static_cast<std::int64_t>(q) * dc) * ES + c * 16, 16);
    }
  };

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
  const int wm = warp & 3, wn = warp >> 2;
  // acc starts at -h_k and accumulates x.c: it ends as x.c - h_k = -score, so the running
  // best is a maximum (one FMNMX per score; the index is looked up only when a tile improves).
  float acc[2][NT][4];
  float best_s[2][2];
  int best_i[2][2];
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) best_s[mi][hr] = -__int_as_float(0x7f800000), best_i[mi][hr] = 0x7fffffff;

  load_x(0, xs);
  load_c(0, 0, cs);
  cp_commit();
  for (int s = 0; s < steps; ++s) {
    const int j = s / nchunks, q = s % nchunks;
    if (s + 1 < steps) {
      const int j1 = (s + 1) / nchunks, q1 = (s + 1) % nchunks;
      if (!resident) load_x(q1, xs + ((s + 1) & 1) * kBM * stride);
      load_c(j1, q1, cs + ((s + 1) & 1) * BN * stride);
      cp_commit();
      cp_wait<1>();
    } else {
      cp_wait<0>();
    }
    __syncthreads();
    const E* xb = xs + (resident ? 0 : (s & 1) * kBM * stride);
    const E* cb = cs + (s & 1) * BN * stride;
    if (q == 0) {
#pragma unroll
      for (int ni = 0; ni < NT; ++ni) {
        const int col = j * BN + wn * (BN / 2) + ni * 8 + 2 * t;
        const float h0 = -__ldg(hb + col), h1 = -__ldg(hb + col + 1);
#pragma unroll
        for (int mi = 0; mi < 2; ++mi) acc[mi][ni][0] = h0, acc[mi][ni][1] = h1, acc[mi][ni][2] = h0, acc[mi][ni][3] = h1;
      }
    }
    const E* xa = xb + (wm * 32 + g) * stride + (ES == 2 ? 4 : 2) * t;   // this thread's A fragment
    const E* cbt = cb + (wn * (BN / 2) + g) * stride + (ES == 2 ? 4 : 2) * t;  // and its B fragment
#pragma unroll(FIXED_DC ? FIXED_DC / KSTEP : 1)
    for (int kk = 0; kk < dc; kk += KSTEP) {
      std::uint32_t af[2][4], as[2][4];
#pragma unroll
      for (int mi = 0; mi < 2; ++mi) {
        const int r = mi * 16;
        if constexpr (ES == 2) {
          const uint2 lo = *reinterpret_cast<const uint2*>(xa + r * stride + kk);
          const uint2 hi = *reinterpret_cast<const uint2*>(xa + (r + 8) * stride + kk);
          af[mi][0] = lo.x, af[mi][1] = hi.x, af[mi][2] = lo.y, af[mi][3] = hi.y;
        } else {
          const float2 lo = *reinterpret_cast<const float2*>(xa + r * stride + kk);
          const float2 hi = *reinterpret_cast<const float2*>(xa + (r + 8) * stride + kk);
          const float v[4] = {lo.x, hi.x, lo.y, hi.y};
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            af[mi][e] = to_tf32(v[e]);
            if constexpr (KIND == MmaKind::tf32x3) as[mi][e] = to_tf32(v[e] - __uint_as_float(af[mi][e]));
          }
        }
      }
#pragma unroll
      for (int ni = 0; ni < NT; ++ni) {
        const int n = ni * 8;
        std::uint32_t b0, b1;
        if constexpr (ES == 2) {
          const uint2 bv = *reinterpret_cast<const uint2*>(cbt + n * stride + kk);
          b0 = bv.x, b1 = bv.y;
#pragma unroll
          for (int mi = 0; mi < 2; ++mi) mma<KIND>(acc[mi][ni], af[mi], b0, b1);
        } else {
          const float2 bv = *reinterpret_cast<const float2*>(cbt + n * stride + kk);
          if constexpr (KIND == MmaKind::tf32) {
            b0 = __float_as_uint(bv.x), b1 = __float_as_uint(bv.y);  // stored rounded to tf32
          } else {
            b0 = to_tf32(bv.x), b1 = to_tf32(bv.y);
          }
          if constexpr (KIND == MmaKind::tf32x3) {
            const std::uint32_t s0 = to_tf32(bv.x - __uint_as_float(b0)), s1 = to_tf32(bv.y - __uint_as_float(b1));
#pragma unroll
            for (int mi = 0; mi < 2; ++mi) {
              mma<MmaKind::tf32>(acc[mi][ni], as[mi], b0, b1);
              mma<MmaKind::tf32>(acc[mi][ni], af[mi], s0, s1);
            }
          }
#pragma unroll
          for (int mi = 0; mi < 2; ++mi) mma<MmaKind::tf32>(acc[mi][ni], af[mi], b0, b1);
        }
      }
    }
    if (q == nchunks - 1) {
      // The tile's best per row; only when it beats the running best is its column looked up
      // (the lowest column holding the maximum: ties keep the lowest index, as earlier tiles do).
#pragma unroll
      for (int mi = 0; mi < 2; ++mi) {
#pragma unroll
        for (int hr = 0; hr < 2; ++hr) {
          float m = acc[mi][0][2 * hr];
#pragma unroll
          for (int ni = 0; ni < NT; ++ni) m = fmaxf(m, fmaxf(acc[mi][ni][2 * hr], acc[mi][ni][2 * hr + 1]));
          if (m > best_s[mi][hr]) {
            int idx = 0;
#pragma unroll
            for (int ni = NT - 1; ni >= 0; --ni) {
              const int col = j * BN + wn * (BN / 2) + ni * 8 + 2 * t;
              if (acc[mi][ni][2 * hr + 1] == m) idx = col + 1;
              if (acc[mi][ni][2 * hr] == m) idx = col;
            }
            best_s[mi][hr] = m, best_i[mi][hr] = idx;
          }
        }
      }
    }
    __syncthreads();
  }

  // Combine the four threads of a quad (same rows, other columns), then the two column warps.
  float* red_s = reinterpret_cast<float*>(smem);
  int* red_i = reinterpret_cast<int*>(red_s + 2 * kBM);
#pragma unroll
  for (int mi = 0; mi < 2; ++mi) {
#pragma unroll
    for (int hr = 0; hr < 2; ++hr) {
      float s = -best_s[mi][hr];  // back to the score h_k - x.c
      int i = best_i[mi][hr];
      quad_best(s, i);
      if (t == 0) {
        const int r = wm * 32 + mi * 16 + hr * 8 + g;
        red_s[wn * kBM + r] = s;
        red_i[wn * kBM + r] = i;
      }
    }
  }
  __syncthreads();
  bool moved = false;
  if (threadIdx.x < kBM && threadIdx.x < rows_left) {
    const int r = threadIdx.x;
    float s = red_s[r];
    int i = red_i[r];
    if (better(red_s[kBM + r], red_i[kBM + r], s, i)) s = red_s[kBM + r], i = red_i[kBM + r];
    moved = write_assignment(a, static_cast<std::int64_t>(b) * a.n + row0 + r, s, i);
  }
  if (a.moved && threadIdx.x < kBM) {  // whole warps (kBM is a multiple of 32): a ballot per 32 rows
    const unsigned bits = __ballot_sync(0xffffffffu, moved);
    const int lane = threadIdx.x % 32;
    const std::int64_t row16 = row0 + threadIdx.x - lane + 16 * lane;
    if (lane < 2 && row16 < a.n) write_moved(a, b, row16, bits >> (16 * lane));
  }
  const int moved_count = __syncthreads_count(moved);
  if (a.changed && threadIdx.x == 0 && moved_count) atomicAdd(a.changed + b, moved_count);
}

template <MmaKind KIND, int BN>
void launch_kind(const AssignPlan& p, const AssignArgs& a, cudaStream_t stream) {
  const int stride = smem_stride(p.dc, element_size(KIND));
  const dim3 grid(static_cast<unsigned>((a.n + kBM - 1) / kBM), static_cast<unsigned>(a.batches));
  if (p.dc == 128)
    assign_kernel<KIND, BN, 128><<<grid, kThreads, p.smem_bytes, stream>>>(a, p.dp, p.kp, p.dc, p.resident, stride);
  else if (p.dc == 64)
    assign_kernel<KIND, BN, 64><<<grid, kThreads, p.smem_bytes, stream>>>(a, p.dp, p.kp, p.dc, p.resident, stride);
  else
    assign_kernel<KIND, BN, 0><<<grid, kThreads, p.smem_bytes, stream>>>(a, p.dp, p.kp, p.dc, p.resident, stride);
  FK_CUDA_LAUNCHED();
}

template <MmaKind KIND, int BN>
void allow_smem() {
  FK_CUDA(cudaFuncSetAttribute(assign_kernel<KIND, BN, 128>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemLimit));
  FK_CUDA(cudaFuncSetAttribute(assign_kernel<KIND, BN, 64>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemLimit));
  FK_CUDA(cudaFuncSetAttribute(assign_kernel<KIND, BN, 0>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemLimit));
}

template <int BN>
void allow_smem_bn(MmaKind kind) {
  switch (kind) {
    case MmaKind::f16: return allow_smem<MmaKind::f16, BN>();
    case MmaKind::bf16: return allow_smem<MmaKind::bf16, BN>();
    case MmaKind::tf32: return allow_smem<MmaKind::tf32, BN>();
    case MmaKind::tf32x3: return allow_smem<MmaKind::tf32x3, BN>();
  }
}

template <int BN>
void launch_bn(const AssignPlan& p, const AssignArgs& a, cudaStream_t stream) {
  switch (p.kind) {
    case MmaKind::f16: return launch_kind<MmaKind::f16, BN>(p, a, stream);
    case MmaKind::bf16: return launch_kind<MmaKind::bf16, BN>(p, a, stream);
    case MmaKind::tf32: return launch_kind<MmaKind::tf32, BN>(p, a, stream);
    case MmaKind::tf32x3: return launch_kind<MmaKind::tf32x3, BN>(p, a, stream);
  }
}

}  // namespace

AssignPlan assign_plan(MmaKind kind, std::int64_t k, std::int64_t d, int device) {
  AssignPlan p;
  p.kind = kind;
  if (plan_wgmma(p, k, d, device)) return p;
  p.bn = k <= 64 ? 64 : 128;
  const int es = element_size(kind), ks = k_step(kind);
  p.kp = static_cast<int>((k + p.bn - 1) / p.bn * p.bn);
  const int dmin = static_cast<int>((d + ks - 1) / ks * ks);
  const auto bytes = [&](int dc, bool resident) {
    return ((resident ? 1 : 2) * kBM + 2 * p.bn) * smem_stride(dc, es) * es;
  };
  if (bytes(dmin, true) <= kSmemLimit) {
    p.resident = true, p.dc = p.dp = dmin;
  } else {
    p.resident = false;
    p.dc = es == 2 ? 128 : 64;
    p.dp = static_cast<int>((d + p.dc - 1) / p.dc * p.dc);
  }
  p.smem_bytes = bytes(p.dc, p.resident);
  const int reduce_bytes = 2 * kBM * 8;  // the final cross-warp argmin reuses the tiles' memory
  if (p.smem_bytes < reduce_bytes) p.smem_bytes = reduce_bytes;
  return p;
}

void prepare_assign(const AssignPlan& plan) {
  if (plan.wgmma)
    prepare_wgmma(plan);
  else if (plan.bn == 64)
    allow_smem_bn<64>(plan.kind);
  else
    allow_smem_bn<128>(plan.kind);
}

void launch_assign(const AssignPlan& plan, const AssignArgs& a, cudaStream_t stream) {
  if (plan.wgmma)
    launch_wgmma(plan, a, stream);
  else if (plan.bn == 64)
    launch_bn<64>(plan, a, stream);
  else
    launch_bn<128>(plan, a, stream);
}

}  // namespace flashkmeans::cuda
