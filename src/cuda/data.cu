#include "cuda/data.cuh"

#include <algorithm>
#include <cstdlib>

#include "cuda/check.cuh"
#include "cuda/elements.cuh"

namespace flashkmeans::cuda {

namespace {

constexpr int kBlock = 128;

struct ViewArgs {
  const void* data;
  DType dtype;
  std::int64_t rows, cols, batch_stride, row_stride, col_stride;
};
ViewArgs args_of(const TensorView& v) {
  return {v.data, v.dtype, v.rows, v.cols, v.batch_stride, v.row_stride, v.col_stride};
}
__device__ __forceinline__ std::int64_t row_base(const ViewArgs& v, std::int64_t flat_row) {
  return (flat_row / v.rows) * v.batch_stride + (flat_row % v.rows) * v.row_stride;
}

__device__ __forceinline__ std::int64_t first_row() { return (blockIdx.x * static_cast<std::int64_t>(blockDim.x) + threadIdx.x) / 32; }
__device__ __forceinline__ std::int64_t row_step() { return static_cast<std::int64_t>(gridDim.x) * (blockDim.x / 32); }

__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// 1 / max(||row||, 1e-12) for one row (float64 sum, as the CPU backend normalises), in every lane
// of the warp. get(q) reads coordinate q.
template <class Get>
__device__ float inverse_norm(std::int64_t cols, Get get) {
  double sq = 0;
  for (std::int64_t q = threadIdx.x % 32; q < cols; q += 32) {
    const double x = get(q);
    sq += x * x;
  }
  const double norm = sqrt(warp_sum(sq));
  return static_cast<float>(1.0 / (norm > 1e-12 ? norm : 1e-12));
}

// A warp per row, kRowsInFlight rows at a time (their loads in flight together); the lowest bad
// row wins (atomicMin on the flat row index; all ones: none). flags[0] collects rows holding NaN or
// infinity, flags[1] (when zero_rows) rows without a direction: no element of magnitude 1e-12 or
// more and a norm below 1e-12, the host check's rule. xx (optional): each good row's squared norm
// in float32 (the check and the norms in one read of the points).
// vector: rows of unit column stride, four elements at a time (8- or 16-byte loads; the data
// read at ~2x the rate of 4-byte loads, see vector_view); else one element a lane at a time.
template <int kRowsInFlight, int kBlocks>
__global__ void __launch_bounds__(kRowPassThreads, kBlocks)
    bad_rows_kernel(ViewArgs v, std::int64_t rows, bool zero_rows, unsigned* flags, float* xx, bool vector) {
  const int lane = threadIdx.x % 32;
  for (std::int64_t r0 = first_row() * kRowsInFlight; r0 < rows; r0 += row_step() * kRowsInFlight) {
    bool bad[kRowsInFlight] = {}, direction[kRowsInFlight] = {};
    float acc[kRowsInFlight] = {};
    std::int64_t base[kRowsInFlight];
#pragma unroll
    for (int u = 0; u < kRowsInFlight; ++u) base[u] = r0 + u < rows ? row_base(v, r0 + u) : 0;
    auto take = [&](int u, float x) {
      bad[u] |= !isfinite(x);
      direction[u] |= fabsf(x) >= 1e-12f;
      acc[u] += x * x;
    };
    if (vector) {
      for (std::int64_t q = 4 * lane; q < v.cols; q += 128) {
        float x[kRowsInFlight][4];
#pragma unroll
        for (int u = 0; u < kRowsInFlight; ++u) {
          if (r0 + u < rows) load4_as_float(v.data, base[u] + q, v.dtype, true, v.cols - q, x[u]);
          else x[u][0] = x[u][1] = x[u][2] = x[u][3] = 0.f;
        }
#pragma unroll
        for (int u = 0; u < kRowsInFlight; ++u)
#pragma unroll
          for (int e = 0; e < 4; ++e) take(u, x[u][e]);
      }
    } else {
#pragma unroll 2
      for (std::int64_t q = lane; q < v.cols; q += 32) {
        float x[kRowsInFlight];
#pragma unroll
        for (int u = 0; u < kRowsInFlight; ++u) x[u] = r0 + u < rows ? load_as_float(v.data, base[u] + q * v.col_stride, v.dtype) : 0.f;
#pragma unroll
        for (int u = 0; u < kRowsInFlight; ++u) take(u, x[u]);
      }
    }
#pragma unroll
    for (int u = 0; u < kRowsInFlight; ++u) {
      const std::int64_t r = r0 + u;
      if (r >= rows) break;  // uniform over the warp
      const unsigned at = static_cast<unsigned>(r < 0x7fffffff ? r : 0x7ffffffe);
      if (__any_sync(0xffffffffu, bad[u])) {
        if (lane == 0) atomicMin(flags, at);
        continue;
      }
      if (xx) {
        float s = acc[u];
        for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
        if (lane == 0) xx[r] = s;
      }
      if (!zero_rows || __any_sync(0xffffffffu, direction[u])) continue;
      // Every element below 1e-12 (rare): the norm, in float64, decides.
      double sq = 0;
      for (std::int64_t q = lane; q < v.cols; q += 32) {
        const double x = load_as_float(v.data, base[u] + q * v.col_stride, v.dtype);
        sq += x * x;
      }
      const double total = warp_sum(sq);
      if (lane == 0 && !(sqrt(total) >= 1e-12)) atomicMin(flags + 1, at);
    }
  }
}

// The same check for 16-bit rows read 16 bytes a lane: half a warp per row (16 lanes of eight
// elements cover 128 columns a load), kPairs pairs of rows in flight per warp. bad_rows_kernel's
// 8-byte loads kept too few bytes in flight (H100, 8.4M x 128 float16: 0.90 ms here, 73% of DRAM's
// bandwidth, against 1.61 ms; 32 x 74,256 x 128: 0.26 against 0.46). Rows of D % 8 == 0 elements,
// 16-byte aligned.
template <int kPairs>
__global__ void __launch_bounds__(kRowPassThreads, 8)
    bad_rows16_kernel(ViewArgs v, std::int64_t rows, bool zero_rows, unsigned* flags, float* xx) {
  const int lane = threadIdx.x % 32, half = lane / 16, col0 = 8 * (lane % 16);
  const unsigned half_mask = half ? 0xffff0000u : 0x0000ffffu;
  const bool bf16 = v.dtype == DType::bfloat16;
  for (std::int64_t r0 = first_row() * 2 * kPairs; r0 < rows; r0 += row_step() * 2 * kPairs) {
    bool bad[kPairs] = {}, direction[kPairs] = {};
    float acc[kPairs] = {};
    std::int64_t base[kPairs];
#pragma unroll
    for (int u = 0; u < kPairs; ++u) base[u] = r0 + 2 * u + half < rows ? row_base(v, r0 + 2 * u + half) : -1;
    for (std::int64_t q = col0; q < v.cols; q += 128) {
      uint4 w[kPairs];
#pragma unroll
      for (int u = 0; u < kPairs; ++u)
        w[u] = base[u] >= 0 ? *reinterpret_cast<const uint4*>(static_cast<const std::uint16_t*>(v.data) + base[u] + q)
                            : make_uint4(0u, 0u, 0u, 0u);
#pragma unroll
      for (int u = 0; u < kPairs; ++u) {
        const std::uint32_t words[4] = {w[u].x, w[u].y, w[u].z, w[u].w};
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          const float x = half_as_float(static_cast<std::uint16_t>(words[e / 2] >> (16 * (e % 2))), bf16);
          bad[u] |= !isfinite(x);
          direction[u] |= fabsf(x) >= 1e-12f;
          acc[u] += x * x;
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kPairs; ++u) {
      if (r0 + 2 * u >= rows) break;  // uniform over the warp
      const std::int64_t r = r0 + 2 * u + half;
      const bool row_in = r < rows;
      const unsigned at = static_cast<unsigned>(r < 0x7fffffff ? r : 0x7ffffffe);
      const bool row_bad = (__ballot_sync(0xffffffffu, bad[u]) & half_mask) != 0;
      float sq = acc[u];
#pragma unroll
      for (int off = 8; off > 0; off >>= 1) sq += __shfl_xor_sync(0xffffffffu, sq, off);
      if (row_in && lane % 16 == 0) {
        if (row_bad) atomicMin(flags, at);
        else if (xx) xx[r] = sq;
      }
      const bool faint = row_in && !row_bad && zero_rows && (__ballot_sync(0xffffffffu, direction[u]) & half_mask) == 0;
      if (!__any_sync(0xffffffffu, faint)) continue;
      // Every element below 1e-12 (rare): the norm, in float64, decides.
      double total = 0;
      if (faint)
        for (std::int64_t q = lane % 16; q < v.cols; q += 16) {
          const double x = load_as_float(v.data, base[u] + q, v.dtype);
          total += x * x;
        }
#pragma unroll
      for (int off = 8; off > 0; off >>= 1) total += __shfl_xor_sync(0xffffffffu, total, off);
      if (faint && lane % 16 == 0 && !(sqrt(total) >= 1e-12)) atomicMin(flags + 1, at);
    }
  }
}

__global__ void stage_kernel(ViewArgs v, std::int64_t rows, void* dst, DType out_type, std::int64_t ld, bool normalize) {
  for (std::int64_t r = first_row(); r < rows; r += row_step()) {
    const std::int64_t base = row_base(v, r);
    auto get = [&](std::int64_t q) { return load_as_float(v.data, base + q * v.col_stride, v.dtype); };
    const float scale = normalize ? inverse_norm(v.cols, get) : 1.f;
    for (std::int64_t q = threadIdx.x % 32; q < ld; q += 32) {
      const float x = q < v.cols ? get(q) * scale : 0.f;
      store_rounded(dst, r * ld + q, out_type, x);
    }
  }
}

__global__ void inverse_norms_kernel(ViewArgs v, std::int64_t rows, float* scale) {
  for (std::int64_t r = first_row(); r < rows; r += row_step()) {
    const std::int64_t base = row_base(v, r);
    const float inv = inverse_norm(v.cols, [&](std::int64_t q) { return load_as_float(v.data, base + q * v.col_stride, v.dtype); });
    if (threadIdx.x % 32 == 0) scale[r] = inv;
  }
}

__global__ void gather_kernel(ViewArgs v, const std::int64_t* rows, std::int64_t k, float* c) {
  const std::int64_t g = blockIdx.x, b = g / k;
  const std::int64_t base = b * v.batch_stride + rows[g] * v.row_stride;
  for (std::int64_t q = threadIdx.x; q < v.cols; q += blockDim.x)
    c[g * v.cols + q] = load_as_float(v.data, base + q * v.col_stride, v.dtype);
}

__global__ void normalize_kernel(float* c, std::int64_t rows, std::int64_t d) {
  for (std::int64_t r = first_row(); r < rows; r += row_step()) {
    float* row = c + r * d;
    const float inv = inverse_norm(d, [&](std::int64_t q) { return row[q]; });
    for (std::int64_t q = threadIdx.x % 32; q < d; q += 32) row[q] *= inv;
  }
}

}  // namespace

// Whether v's rows can be read four elements at a time (unit column stride, aligned rows).
static bool vector_view(const TensorView& v) {
  return v.col_stride == 1 && four_element_loads(v.data, v.dtype, v.cols, v.rows <= 1 ? 0 : v.row_stride,
                                                 v.batch <= 1 ? 0 : v.batch_stride);
}

unsigned row_pass_blocks(std::int64_t warps) {
  return static_cast<unsigned>(std::max<std::int64_t>(1, std::min<std::int64_t>((warps + kRowPassThreads / 32 - 1) / (kRowPassThreads / 32), 4096)));
}

void launch_bad_rows(const TensorView& v, bool zero_rows, unsigned* flags, cudaStream_t stream, float* xx) {
  FK_CUDA(cudaMemsetAsync(flags, 0xff, 2 * sizeof(unsigned), stream));  // no bad row yet
  const std::int64_t rows = v.batch * v.rows;
  const ViewArgs a = args_of(v);
  const bool vector = vector_view(v);
  // 16-bit rows: 16 bytes a lane where the rows allow (bad_rows16_kernel), else two rows a warp,
  // eight blocks per multiprocessor (H100, 8.4M x 128 float16 with 8-byte loads: 1.61 against
  // 1.89 ms at four rows and four blocks); other rows four a warp (500K x 128 float32: 100 us
  // against 105 at two).
  const bool wide = element_bytes(v.dtype) == 2 && v.col_stride == 1 &&
                    group_loads(v.data, v.dtype, v.cols, v.rows <= 1 ? 0 : v.row_stride, v.batch <= 1 ? 0 : v.batch_stride, 8);
  const char* force = std::getenv("FLASHKMEANS_CHECK16");  // development aid: 0 keeps the 8-byte loads
  if (wide && !(force && *force == '0'))
    bad_rows16_kernel<2><<<row_pass_blocks((rows + 3) / 4), kRowPassThreads, 0, stream>>>(a, rows, zero_rows, flags, xx);
  else if (vector && element_bytes(v.dtype) == 2)
    bad_rows_kernel<2, 8><<<row_pass_blocks((rows + 1) / 2), kRowPassThreads, 0, stream>>>(a, rows, zero_rows, flags, xx, true);
  else
    bad_rows_kernel<4, 4><<<row_pass_blocks((rows + 3) / 4), kRowPassThreads, 0, stream>>>(a, rows, zero_rows, flags, xx, vector);
  FK_CUDA_LAUNCHED();
}

BadRows bad_rows_of(const unsigned* found) {
  const auto row = [](unsigned f) { return f == 0xffffffffu ? std::int64_t{-1} : static_cast<std::int64_t>(f); };
  return {row(found[0]), row(found[1])};
}

void stage_rows(const TensorView& v, void* dst, DType out_type, std::int64_t ld, bool normalize, cudaStream_t stream) {
  const std::int64_t rows = v.batch * v.rows;
  stage_kernel<<<row_pass_blocks(rows), kRowPassThreads, 0, stream>>>(args_of(v), rows, dst, out_type, ld, normalize);
  FK_CUDA_LAUNCHED();
}

void inverse_norms(const TensorView& v, float* scale, cudaStream_t stream) {
  const std::int64_t rows = v.batch * v.rows;
  inverse_norms_kernel<<<row_pass_blocks(rows), kRowPassThreads, 0, stream>>>(args_of(v), rows, scale);
  FK_CUDA_LAUNCHED();
}

void gather_rows(const TensorView& v, const std::int64_t* rows, std::int64_t k, float* c, cudaStream_t stream) {
  gather_kernel<<<static_cast<unsigned>(v.batch * k), kBlock, 0, stream>>>(args_of(v), rows, k, c);
  FK_CUDA_LAUNCHED();
}

void normalize_rows(float* c, std::int64_t count, std::int64_t d, cudaStream_t stream) {
  normalize_kernel<<<row_pass_blocks(count), kRowPassThreads, 0, stream>>>(c, count, d);
  FK_CUDA_LAUNCHED();
}

}  // namespace flashkmeans::cuda
