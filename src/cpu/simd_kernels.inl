// The CPU backend's inner kernels, written once over GCC/Clang vector extensions and compiled once
// per instruction set (simd_avx512.cpp, simd_avx2.cpp, simd_generic.cpp define FK_ISA, FK_LANES,
// FK_ROWS before including this file). Every function is declared in simd_kernels.hpp.
//
// The distance kernel is a register-blocked GEMM micro-kernel: FK_ROWS points (broadcast from their
// rows) times one panel of PANEL = 2 * FK_LANES centroids (packed d-major, so one d-step is two
// vector loads). The score epilogue (bias[j] + alpha * x.c) and the running argmin are applied per
// panel, so the N x K score matrix never exists; score_tile writes a small tile only when the caller
// asks for every score (Elkan's bounds, k-means++).

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "cpu/simd_kernels.hpp"

namespace flashkmeans::cpu::FK_ISA {

namespace {

constexpr int W = FK_LANES;
constexpr int MR = FK_ROWS;
constexpr int PANEL = 2 * W;

typedef float vf __attribute__((vector_size(W * 4)));
typedef float vfu __attribute__((vector_size(W * 4), aligned(4)));
typedef std::int32_t vi __attribute__((vector_size(W * 4)));

inline vf load(const float* p) { return *reinterpret_cast<const vfu*>(p); }
inline void store(float* p, vf v) { *reinterpret_cast<vfu*>(p) = v; }

inline vf vsqrt(vf v) {
#if defined(__AVX512F__) && FK_LANES == 16
  return reinterpret_cast<vf>(_mm512_maskz_sqrt_ps(0xffff, reinterpret_cast<__m512>(v)));  // (masked: see load_bounds)
#elif defined(__AVX__) && FK_LANES == 8
  return reinterpret_cast<vf>(_mm256_sqrt_ps(reinterpret_cast<__m256>(v)));
#else
  for (int l = 0; l < W; ++l) v[l] = std::sqrt(v[l]);
  return v;
#endif
}

// W float16 bounds in and out (bound16.hpp): F16C / AVX-512 conversions, rounding down on the way
// out as bound16_down does, or that function lane by lane.
inline vf load_bounds(const Bound16* p) {
#if defined(__AVX512F__) && FK_LANES == 16
  // (the masked forms: the plain ones start from an "undefined" register that GCC 12 warns about)
  return reinterpret_cast<vf>(_mm512_maskz_cvtph_ps(0xffff, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))));
#elif defined(__F16C__) && FK_LANES == 8
  return reinterpret_cast<vf>(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
#else
  vf v;
  for (int l = 0; l < W; ++l) v[l] = bound16_value(p[l]);
  return v;
#endif
}
inline void store_bounds_down(Bound16* p, vf v) {
  v = v > vf{} ? v : vf{};  // (NaN too: zero is always a lower bound)
  const vf top = vf{} + 65504.f;
  v = v < top ? v : top;  // never +inf (bound16_down's rule)
#if defined(__AVX512F__) && FK_LANES == 16
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p),
                      _mm512_maskz_cvtps_ph(0xffff, reinterpret_cast<__m512>(v),
                                            _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC));
#elif defined(__F16C__) && FK_LANES == 8
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p),
                   _mm256_cvtps_ph(reinterpret_cast<__m256>(v), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC));
#else
  for (int l = 0; l < W; ++l) p[l] = bound16_down(v[l]);
#endif
}
// A true broadcast. (vf{} + s costs a scalar add first: x + 0.0 is not x for x = -0.0; a
// shuffle of lane 0 costs two extra moves.) The set1 intrinsics fold a load into vbroadcastss.
inline vf splat(float s) {
#if defined(__AVX512F__) && FK_LANES == 16
  return reinterpret_cast<vf>(_mm512_set1_ps(s));
#elif defined(__AVX__) && FK_LANES == 8
  return reinterpret_cast<vf>(_mm256_set1_ps(s));
#elif defined(__SSE__) && FK_LANES == 4
  return reinterpret_cast<vf>(_mm_set1_ps(s));
#else
  return vf{} + s;
#endif
}

template <int H, std::size_t... L>
constexpr vi rotation(std::index_sequence<L...>) {
  return vi{static_cast<std::int32_t>((L + H) % W)...};
}

// Tree reduction with compile-time shuffles: log2(W) shuffles and adds.
inline float hsum(vf v) {
  constexpr auto lanes = std::make_index_sequence<W>{};
  if constexpr (W >= 16) v += __builtin_shuffle(v, rotation<8>(lanes));
  if constexpr (W >= 8) v += __builtin_shuffle(v, rotation<4>(lanes));
  v += __builtin_shuffle(v, rotation<2>(lanes));
  v += __builtin_shuffle(v, rotation<1>(lanes));
  return v[0];
}

// The least score in two vectors of lane minima and the lowest index holding it, without a
// branch per lane (a scalar scan mispredicted on data-dependent comparisons): butterfly minima of
// the scores, then of the indices whose score equals it.
inline void lane_argmin(vf v0, vi i0, vf v1, vi i1, float& best, std::int32_t& arg) {
  constexpr auto lanes = std::make_index_sequence<W>{};
  vf m = v1 < v0 ? v1 : v0;
  const auto fold = [&](auto rot) {
    const vf t = __builtin_shuffle(m, rot);
    m = t < m ? t : m;
  };
  if constexpr (W >= 16) fold(rotation<8>(lanes));
  if constexpr (W >= 8) fold(rotation<4>(lanes));
  fold(rotation<2>(lanes));
  fold(rotation<1>(lanes));
  const vi none = vi{} + 0x7fffffff;
  const vi c0 = v0 == m ? i0 : none, c1 = v1 == m ? i1 : none;
  vi c = c1 < c0 ? c1 : c0;
  const auto fold_index = [&](auto rot) {
    const vi t = __builtin_shuffle(c, rot);
    c = t < c ? t : c;
  };
  if constexpr (W >= 16) fold_index(rotation<8>(lanes));
  if constexpr (W >= 8) fold_index(rotation<4>(lanes));
  fold_index(rotation<2>(lanes));
  fold_index(rotation<1>(lanes));
  best = m[0], arg = c[0];
}

// acc[r][h] = sum_d x[r][d] * panel[d][h*W .. h*W+W)
inline void micro_tile(const float* x, std::int64_t ldx, const float* panel, std::int64_t d,
                       vf acc[MR][2]) {
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = vf{};
  for (std::int64_t k = 0; k < d; ++k) {
    const vf c0 = load(panel + k * PANEL), c1 = load(panel + k * PANEL + W);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const vf xr = splat(x[r * ldx + k]);
      acc[r][0] += xr * c0;
      acc[r][1] += xr * c1;
    }
  }
}

// The first half of a panel only (its first W centroids), for a last panel with no more real
// centroids than that: the same products as micro_tile's acc[r][0], half the work.
inline void micro_tile_half(const float* x, std::int64_t ldx, const float* panel, std::int64_t d, vf acc[MR]) {
  for (int r = 0; r < MR; ++r) acc[r] = vf{};
  for (std::int64_t k = 0; k < d; ++k) {
    const vf c0 = load(panel + k * PANEL);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) acc[r] += splat(x[r * ldx + k]) * c0;
  }
}

// Runs fn(rows pointer, ldx, row offset) over the points in blocks of MR; the last partial block is
// copied into a zero-padded buffer so that the micro-kernel never reads past the data.
template <class Fn>
void for_each_row_block(const float* x, std::int64_t ldx, std::int64_t n, std::int64_t d,
                        float* pad, Fn fn) {
  std::int64_t i = 0;
  for (; i + MR <= n; i += MR) fn(x + i * ldx, ldx, i, MR);
  if (i < n) {
    std::memset(pad, 0, sizeof(float) * MR * d);
    for (std::int64_t r = 0; r < n - i; ++r) std::memcpy(pad + r * d, x + (i + r) * ldx, sizeof(float) * d);
    fn(pad, d, i, static_cast<int>(n - i));
  }
}

// The few-centroid kernel (K <= 16 in many dimensions): R points against G centroids, vectorised
// along d, with no packing and no padding of K. Each centroid load feeds R points and each point
// load G centroids. d is cut into slices so that a slice of every centroid and of the span of
// points in flight stays in L1 (whole rows of 784 floats did not: the centroids then streamed from
// L2 for every block of points). The R x G accumulators live in memory between slices; lane for
// lane they sum the same products in the same order as one pass over d would.
//
// Alongside, a block call prefetches the cache lines [pf, pf_end) of rows that come later, one
// line per step: spread over the arithmetic the requests keep memory busy, where a burst of
// prefetches stalled on full miss buffers.
template <int R, int G>
inline void dot_slice(const float* x, std::int64_t ldx, const float* c, std::int64_t ldc, std::int64_t k0,
                      std::int64_t k1, vf* acc, std::int64_t lda, const char* pf, const char* pf_end) {
  vf a[R][G];
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < G; ++g) a[r][g] = acc[r * lda + g];
  for (std::int64_t k = k0; k < k1; k += W) {
    if (pf < pf_end) {
      __builtin_prefetch(pf, 0, 1);
      pf += 64;
    }
    vf xv[R];
    for (int r = 0; r < R; ++r) xv[r] = load(x + r * ldx + k);
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g) {
      const vf cv = load(c + g * ldc + k);
      for (int r = 0; r < R; ++r) a[r][g] += xv[r] * cv;
    }
  }
  for (; pf < pf_end; pf += 64) __builtin_prefetch(pf, 0, 1);
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < G; ++g) acc[r * lda + g] = a[r][g];
}

// Spans of points fetched this far ahead: the kernel streams the data at few flops a byte.
constexpr std::int64_t kPrefetchSpans = 2;
constexpr int kFewRows = W >= 16 ? 5 : 3;
constexpr int kMaxGroup = W >= 16 ? 5 : 4;
constexpr std::int64_t kSpan = 2 * kFewRows;
constexpr std::int64_t kFewMaxK = 16;
constexpr std::int64_t kSliceFloats = 256;

// Bytes of a later span that each block call prefetches, handed out in call order.
struct PrefetchPlan {
  const char* next;
  const char* end;
  std::int64_t per_call;
  std::pair<const char*, const char*> take() {
    const char* a = next;
    next = next + per_call < end ? next + per_call : end;
    return {a, next};
  }
};

// One slice of the span's rows (n of them) against centroids j0 .. j0 + G.
template <int G>
void slice_group(const float* x, std::int64_t ldx, std::int64_t n, const float* c, std::int64_t ldc,
                 std::int64_t k0, std::int64_t k1, vf* acc, std::int64_t lda, PrefetchPlan& pf) {
  std::int64_t i = 0;
  for (; i + kFewRows <= n; i += kFewRows) {
    const auto range = pf.take();
    dot_slice<kFewRows, G>(x + i * ldx, ldx, c, ldc, k0, k1, acc + i * lda, lda, range.first, range.second);
  }
  for (; i < n; ++i) {
    const auto range = pf.take();
    dot_slice<1, G>(x + i * ldx, ldx, c, ldc, k0, k1, acc + i * lda, lda, range.first, range.second);
  }
}

template <int G>
void slice_group_upto(int g, const float* x, std::int64_t ldx, std::int64_t n, const float* c, std::int64_t ldc,
                      std::int64_t k0, std::int64_t k1, vf* acc, std::int64_t lda, PrefetchPlan& pf) {
  if constexpr (G >= 1) {
    if (g == G) return slice_group<G>(x, ldx, n, c, ldc, k0, k1, acc, lda, pf);
    slice_group_upto<G - 1>(g, x, ldx, n, c, ldc, k0, k1, acc, lda, pf);
  }
}

}  // namespace

void add_row(float* acc, const float* x, std::int64_t d);
void add_rows(float* sums, std::int64_t* counts, const float* x, std::int64_t ldx, const std::int32_t* labels,
              std::int64_t m, std::int64_t d);

namespace {

// Rows of the few-centroid kernel added to the sums a group at a time once their labels are known:
// a group of kSumRows rows (still in L2) is ordered by label, and each cluster's rows are summed
// in registers, a few vectors of d at a time, with one load and one store of the sums per cluster
// instead of one per row (the per-row stores bounded add_rows at ~2 cycles a vector). Each
// cluster's rows are added in ascending row order, so every sum is the same as add_rows gives.
constexpr std::int64_t kSumRows = 96;
constexpr std::int64_t kSumMaxK = 64;  // (more clusters: add_rows, the counting order costs O(K))

template <int V>
inline void add_group_chunk(float* acc, const float* x, std::int64_t ldx, const std::int32_t* rows, std::int64_t p) {
  vf a[V];
  for (int v = 0; v < V; ++v) a[v] = load(acc + v * W);
  for (std::int64_t t = 0; t < p; ++t) {
    const float* xr = x + rows[t] * ldx;
    for (int v = 0; v < V; ++v) a[v] += load(xr + v * W);
  }
  for (int v = 0; v < V; ++v) store(acc + v * W, a[v]);
}

void add_rows_grouped(float* sums, std::int64_t* counts, const float* x, std::int64_t ldx, const std::int32_t* labels,
                      std::int64_t m, std::int64_t d, std::int64_t k) {
  if (k > kSumMaxK || m > kSumRows) return add_rows(sums, counts, x, ldx, labels, m, d);
  std::int32_t start[kSumMaxK + 1] = {}, order[kSumRows];
  for (std::int64_t r = 0; r < m; ++r) ++start[labels[r] + 1];
  for (std::int64_t j = 0; j < k; ++j) start[j + 1] += start[j];
  std::int32_t fill[kSumMaxK];
  std::copy(start, start + k, fill);
  for (std::int64_t r = 0; r < m; ++r) order[fill[labels[r]]++] = static_cast<std::int32_t>(r);
  for (std::int64_t j = 0; j < k; ++j) {
    const std::int32_t* rows = order + start[j];
    const std::int64_t p = start[j + 1] - start[j];
    if (p == 0) continue;
    counts[j] += p;
    float* acc = sums + j * d;
    std::int64_t q = 0;
    for (; q + 8 * W <= d; q += 8 * W) add_group_chunk<8>(acc + q, x + q, ldx, rows, p);
    for (; q + W <= d; q += W) add_group_chunk<1>(acc + q, x + q, ldx, rows, p);
    for (; q < d; ++q)
      for (std::int64_t t = 0; t < p; ++t) acc[q] += x[rows[t] * ldx + q];
  }
}

}  // namespace

void argmin_rows_few(const float* x, std::int64_t ldx, std::int64_t n, std::int64_t d, const float* c,
                     const float* bias, std::int64_t k, float alpha, std::int32_t* labels, float* best_score,
                     float* sums, std::int64_t* counts) {
  // Even groups (K = 10: 3 + 3 + 4) keep every group's accumulator chains long. A span of a few
  // rows meets every group while it is in L1: the data is read from memory once. More than
  // kFewMaxK centroids (not what the kernel is for, but allowed) go in chunks of kFewMaxK.
  const std::int64_t dv = d / W * W;  // the vector part; the last d % W products are added per pair
  const std::int64_t slices = std::max<std::int64_t>(1, (dv + kSliceFloats - 1) / kSliceFloats);
  const std::int64_t slice = std::max<std::int64_t>(W, (dv / slices + W - 1) / W * W);
  vf acc[kSpan * kFewMaxK];
  std::int64_t summed = 0;  // rows before this one are in the sums
  for (std::int64_t i0 = 0; i0 < n; i0 += kSpan) {
    const std::int64_t rows = std::min(kSpan, n - i0);
    const float* span = x + i0 * ldx;
    for (std::int64_t r = 0; r < rows; ++r)
      best_score[i0 + r] = std::numeric_limits<float>::infinity(), labels[i0 + r] = 0;
    for (std::int64_t c0 = 0; c0 < k; c0 += kFewMaxK) {
      const std::int64_t kc = std::min(kFewMaxK, k - c0), groups = (kc + kMaxGroup - 1) / kMaxGroup;
      const float* cc = c + c0 * d;
      for (std::int64_t e = 0; e < rows * kc; ++e) acc[e] = vf{};
      // The span kPrefetchSpans ahead is fetched line by line inside this span's block calls.
      const std::int64_t ahead = std::min(n, i0 + kPrefetchSpans * kSpan), ahead_end = std::min(n, ahead + kSpan);
      const char* pf_begin = reinterpret_cast<const char*>(x + ahead * ldx);
      const char* pf_end = ahead_end > ahead && c0 == 0 ? reinterpret_cast<const char*>(x + (ahead_end - 1) * ldx + d)
                                                        : pf_begin;
      const std::int64_t calls = slices * groups * (rows / kFewRows + rows % kFewRows);
      PrefetchPlan pf{pf_begin, pf_end, ((pf_end - pf_begin + calls - 1) / calls + 63) / 64 * 64};
      for (std::int64_t k0 = 0; k0 < dv; k0 += slice) {
        const std::int64_t k1 = std::min(dv, k0 + slice);
        std::int64_t j0 = 0;
        for (std::int64_t g = 0; g < groups; ++g) {
          const int size = static_cast<int>((kc - j0) / (groups - g));
          slice_group_upto<kMaxGroup>(size, span, ldx, rows, cc + j0 * d, d, k0, k1, acc + j0, kc, pf);
          j0 += size;
        }
      }
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t j = 0; j < kc; ++j) {
          float t = hsum(acc[r * kc + j]);
          for (std::int64_t q = dv; q < d; ++q) t += span[r * ldx + q] * cc[j * d + q];
          const float score = bias[c0 + j] + alpha * t;
          if (score < best_score[i0 + r]) best_score[i0 + r] = score, labels[i0 + r] = static_cast<std::int32_t>(c0 + j);
        }
    }
    // The update's sums while the rows are still in cache (a group of kSumRows, or the last).
    const std::int64_t done = i0 + rows;
    if (sums && (done - summed >= kSumRows - kSpan || done == n)) {
      add_rows_grouped(sums, counts, x + summed * ldx, ldx, labels + summed, done - summed, d, k);
      summed = done;
    }
  }
}

int panel_width() { return PANEL; }
int row_block() { return MR; }

void pack_panels(const float* c, std::int64_t k, std::int64_t d, std::int64_t ldc, float* out) {
  const std::int64_t panels = (k + PANEL - 1) / PANEL;
  for (std::int64_t p = 0; p < panels; ++p) {
    float* dst = out + p * d * PANEL;
    for (std::int64_t kk = 0; kk < d; ++kk)
      for (int h = 0; h < PANEL; ++h) {
        const std::int64_t j = p * PANEL + h;
        dst[kk * PANEL + h] = j < k ? c[j * ldc + kk] : 0.f;
      }
  }
}

namespace {

// A last panel with at most kTail real centroids (K = 50 with 16-wide panels: 2) is cheaper as
// products along d, one dot per row and centroid, than as a panel tile that is mostly padding.
constexpr std::int64_t kTail = W / 4;

// The tail centroids' scores for a block of MR rows, folded into each row's best in index order
// (strict <: the panels' centroids have the lower indices and win ties).
inline void fold_tail(const float* xr, std::int64_t ld, std::int64_t d, const float* tail, std::int64_t t,
                      std::int64_t j0, const float* bias, float alpha, int rows, float* best, std::int32_t* arg) {
  for (std::int64_t i = 0; i < t; ++i) {
    const float* cj = tail + i * d;
    vf acc[MR];
    for (int r = 0; r < MR; ++r) acc[r] = vf{};
    std::int64_t q = 0;
    for (; q + W <= d; q += W) {
      const vf cv = load(cj + q);
      for (int r = 0; r < MR; ++r) acc[r] += load(xr + r * ld + q) * cv;
    }
    for (int r = 0; r < rows; ++r) {
      float dot = hsum(acc[r]);
      for (std::int64_t e = q; e < d; ++e) dot += xr[r * ld + e] * cj[e];
      const float score = bias[j0 + i] + alpha * dot;
      if (score < best[r]) best[r] = score, arg[r] = static_cast<std::int32_t>(j0 + i);
    }
  }
}

}  // namespace

void argmin_rows(const float* x, std::int64_t ldx, std::int64_t n, std::int64_t d,
                 const float* panels, const float* bias, std::int64_t k, float alpha,
                 std::int32_t* labels, float* best_score, float* scratch) {
  std::int64_t panels_n = (k + PANEL - 1) / PANEL;
  // The tail's centroids unpacked from the last panel into rows (a few d-long gathers per call).
  const std::int64_t tail_j0 = (panels_n - 1) * PANEL, tail_n = k - tail_j0;
  thread_local std::vector<float> tail;
  if (tail_n <= kTail) {
    tail.resize(static_cast<std::size_t>(tail_n * d));
    const float* last = panels + tail_j0 * d;
    for (std::int64_t i = 0; i < tail_n; ++i)
      for (std::int64_t q = 0; q < d; ++q) tail[i * d + q] = last[q * PANEL + i];
    --panels_n;
  }
  const vf va = splat(alpha);
  for_each_row_block(x, ldx, n, d, scratch, [&](const float* xr, std::int64_t ld, std::int64_t i0, int rows) {
    vf bv[MR][2];
    vi bi[MR][2];
    for (int r = 0; r < MR; ++r)
      for (int h = 0; h < 2; ++h) {
        bv[r][h] = splat(std::numeric_limits<float>::infinity());
        bi[r][h] = vi{} + 0x7fffffff;
      }
    vi lane;
    for (int l = 0; l < W; ++l) lane[l] = l;
    for (std::int64_t p = 0; p < panels_n; ++p) {
      const vf b0 = load(bias + p * PANEL), b1 = load(bias + p * PANEL + W);
      const vi j0 = lane + static_cast<std::int32_t>(p * PANEL), j1 = j0 + W;
      if (k - p * PANEL <= W) {  // a last panel of padding past its first half (K = 50: 56 of 64 columns)
        vf acc[MR];
        micro_tile_half(xr, ld, panels + p * d * PANEL, d, acc);
        for (int r = 0; r < MR; ++r) {
          const vf s0 = b0 + va * acc[r];
          const vi m0 = s0 < bv[r][0];
          bv[r][0] = m0 ? s0 : bv[r][0];
          bi[r][0] = m0 ? j0 : bi[r][0];
        }
        continue;
      }
      vf acc[MR][2];
      micro_tile(xr, ld, panels + p * d * PANEL, d, acc);
      for (int r = 0; r < MR; ++r) {
        // Strict < keeps the first (smallest) index among equal scores within a lane.
        const vf s0 = b0 + va * acc[r][0], s1 = b1 + va * acc[r][1];
        const vi m0 = s0 < bv[r][0], m1 = s1 < bv[r][1];
        bv[r][0] = m0 ? s0 : bv[r][0];
        bi[r][0] = m0 ? j0 : bi[r][0];
        bv[r][1] = m1 ? s1 : bv[r][1];
        bi[r][1] = m1 ? j1 : bi[r][1];
      }
    }
    float best[MR];
    std::int32_t arg[MR];
    for (int r = 0; r < rows; ++r) lane_argmin(bv[r][0], bi[r][0], bv[r][1], bi[r][1], best[r], arg[r]);
    if (tail_n <= kTail) fold_tail(xr, ld, d, tail.data(), tail_n, tail_j0, bias, alpha, rows, best, arg);
    for (int r = 0; r < rows; ++r) {
      // A row of NaN scores (impossible after validation) would leave arg unset: clamp to 0.
      labels[i0 + r] = arg[r] == 0x7fffffff ? 0 : arg[r];
      best_score[i0 + r] = best[r];
    }
  });
}

void score_rows(const float* x, std::int64_t ldx, std::int64_t n, std::int64_t d,
                const float* panels, const float* bias, std::int64_t k, float alpha, float* out,
                std::int64_t ldo, float* scratch) {
  const std::int64_t panels_n = (k + PANEL - 1) / PANEL;
  const vf va = splat(alpha);
  for_each_row_block(x, ldx, n, d, scratch, [&](const float* xr, std::int64_t ld, std::int64_t i0, int rows) {
    for (std::int64_t p = 0; p < panels_n; ++p) {
      vf acc[MR][2];
      micro_tile(xr, ld, panels + p * d * PANEL, d, acc);
      const vf b0 = load(bias + p * PANEL), b1 = load(bias + p * PANEL + W);
      const std::int64_t j0 = p * PANEL, cols = std::min<std::int64_t>(PANEL, k - j0);
      for (int r = 0; r < rows; ++r) {
        float* dst = out + (i0 + r) * ldo + j0;
        if (cols == PANEL) {  // whole panels: straight vector stores (a memcpy call per 64 bytes cost 6%)
          store(dst, b0 + va * acc[r][0]);
          store(dst + W, b1 + va * acc[r][1]);
        } else {
          float tile[PANEL];
          store(tile, b0 + va * acc[r][0]);
          store(tile + W, b1 + va * acc[r][1]);
          std::memcpy(dst, tile, sizeof(float) * cols);
        }
      }
    }
  });
}

float dot(const float* a, const float* b, std::int64_t d) {
  vf s0{}, s1{};
  std::int64_t k = 0;
  for (; k + 2 * W <= d; k += 2 * W) {
    s0 += load(a + k) * load(b + k);
    s1 += load(a + k + W) * load(b + k + W);
  }
  for (; k + W <= d; k += W) s0 += load(a + k) * load(b + k);
  float s = hsum(s0 + s1);
  for (; k < d; ++k) s += a[k] * b[k];
  return s;
}

void candidate_dots(const float* x, const float* c, std::int64_t d, const std::int32_t* cand, std::int64_t m,
                    float* out) {
  std::int64_t t = 0;
  for (; t + 4 <= m; t += 4) {
    const float *c0 = c + cand[t] * d, *c1 = c + cand[t + 1] * d, *c2 = c + cand[t + 2] * d, *c3 = c + cand[t + 3] * d;
    if (t + 8 <= m)  // the next group's rows are scattered in L2: ask for them early
      for (int q = 4; q < 8; ++q) __builtin_prefetch(c + cand[t + q] * d);
    vf s0{}, s1{}, s2{}, s3{};
    std::int64_t k = 0;
    for (; k + W <= d; k += W) {
      const vf xv = load(x + k);
      s0 += xv * load(c0 + k);
      s1 += xv * load(c1 + k);
      s2 += xv * load(c2 + k);
      s3 += xv * load(c3 + k);
    }
    float r0 = hsum(s0), r1 = hsum(s1), r2 = hsum(s2), r3 = hsum(s3);
    for (; k < d; ++k) r0 += x[k] * c0[k], r1 += x[k] * c1[k], r2 += x[k] * c2[k], r3 += x[k] * c3[k];
    out[t] = r0, out[t + 1] = r1, out[t + 2] = r2, out[t + 3] = r3;
  }
  for (; t < m; ++t) out[t] = dot(x, c + cand[t] * d, d);
}

#if defined(__AVX2__) && !defined(__AVX512F__)
namespace {
// For each 8-bit mask, the lane numbers of its set bits, packed left: the AVX2 left-pack table.
struct LeftPack {
  alignas(32) std::int32_t lanes[256][8];
  LeftPack() {
    for (int m = 0; m < 256; ++m) {
      int n = 0;
      for (int l = 0; l < 8; ++l)
        if (m >> l & 1) lanes[m][n++] = l;
      for (; n < 8; ++n) lanes[m][n] = 0;
    }
  }
};
const LeftPack kLeftPack;
}  // namespace
#endif

std::int64_t elkan_candidates(const Bound16* lower, const float* drift_total, float ub, float unit, std::int64_t k,
                              std::int32_t* out) {
  // Candidate: ub + T_j > l~_j, i.e. the centroid may be nearer than ub. The indices are packed
  // without branches: a few percent of the lanes pass, scattered, so a branch per chunk would
  // mispredict on a third of them.
  std::int64_t n = 0, j = 0;
  const vf u = splat(ub);
  vi lane;
  for (int l = 0; l < W; ++l) lane[l] = l;
  for (; j + W <= k; j += W) {
    const vi m = u + load(drift_total + j) > load_bounds(lower + j) * splat(unit);
    [[maybe_unused]] const vi idx = lane + static_cast<std::int32_t>(j);  // (the generic path packs j + l)
#if defined(__AVX512F__)
    const __mmask16 bits = _mm512_cmplt_epi32_mask(reinterpret_cast<__m512i>(m), _mm512_setzero_si512());
    _mm512_storeu_si512(out + n, _mm512_maskz_compress_epi32(bits, reinterpret_cast<__m512i>(idx)));
    n += __builtin_popcount(bits);
#elif defined(__AVX2__)
    const int bits = _mm256_movemask_ps(reinterpret_cast<__m256>(m));
    const __m256i perm = _mm256_load_si256(reinterpret_cast<const __m256i*>(kLeftPack.lanes[bits]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + n),
                        _mm256_permutevar8x32_epi32(reinterpret_cast<__m256i>(idx), perm));
    n += __builtin_popcount(bits);
#else
    std::int32_t lanes[W];  // through memory: GCC 12 miscompiles m[l] under -fsanitize=undefined
    std::memcpy(lanes, &m, sizeof lanes);
    for (int l = 0; l < W; ++l) {
      out[n] = static_cast<std::int32_t>(j + l);
      n += lanes[l] != 0;
    }
#endif
  }
  for (; j < k; ++j) {
    out[n] = static_cast<std::int32_t>(j);
    n += ub + drift_total[j] > bound16_value(lower[j]) * unit;
  }
  return n;
}

std::int64_t elkan_bound_row(const float* __restrict scores, Bound16* __restrict row, std::int64_t k, float x_norm,
                             const float* __restrict c_norms, const float* __restrict drift_total, float err,
                             float shrink, float unit) {
  // Lane-wise running minimum (strict <: the first index per lane), then across lanes.
  vf bv = splat(std::numeric_limits<float>::infinity());
  vi bi = vi{} + 0x7fffffff, jv;
  for (int l = 0; l < W; ++l) jv[l] = l;
  std::int64_t j = 0;
  for (; j + W <= k; j += W, jv += W) {
    const vf v = load(scores + j);
    const vi m = v < bv;
    bv = m ? v : bv;
    bi = m ? jv : bi;
  }
  float best_v;
  std::int32_t lane_best;
  lane_argmin(bv, bi, bv, bi, best_v, lane_best);
  std::int64_t best = lane_best;
  for (; j < k; ++j)
    if (scores[j] < best_v) best_v = scores[j], best = j;
  if (best == 0x7fffffff) best = 0;  // no finite score (impossible after validation)
  // sqrt without errno (the argument is clamped at 0) vectorises; the bounds go out W at a time.
  const float inv_unit = 1.f / unit;
  const vf xn = splat(x_norm), e = splat(err);
  std::int64_t q = 0;
  for (; q + W <= k; q += W) {
    vf sq = xn + load(scores + q) - e * (xn + load(c_norms + q));
    sq = sq > vf{} ? sq : vf{};
    store_bounds_down(row + q, (vsqrt(sq) + load(drift_total + q)) * splat(shrink) * splat(inv_unit));
  }
  for (; q < k; ++q) {
    const float sq = x_norm + scores[q] - err * (x_norm + c_norms[q]);
    row[q] = bound16_down((std::sqrt(sq > 0.f ? sq : 0.f) + drift_total[q]) * shrink * inv_unit);
  }
  return best;
}

std::int64_t elkan_update(const std::int32_t* __restrict cand, const float* __restrict dots, std::int64_t m,
                          const float* __restrict c_norms, const float* __restrict drift_total, float x_norm,
                          float err, float shrink, float unit, Bound16* __restrict lower, float* __restrict scores) {
  // Gathers of the centroid norms and drifts, vectorised; the bounds are scattered after.
  const float inv_unit = 1.f / unit;
  Bound16 bounds[W];
  vf best_v = splat(std::numeric_limits<float>::infinity());
  vi best_t = vi{} + 0x7fffffff, tv;
  for (int l = 0; l < W; ++l) tv[l] = l;
  std::int64_t t = 0;
  for (; t + W <= m; t += W, tv += W) {
    vf cn, dt;
    for (int l = 0; l < W; ++l) cn[l] = c_norms[cand[t + l]], dt[l] = drift_total[cand[t + l]];
    const vf score = cn - splat(2.f) * load(dots + t);
    vf sq = splat(x_norm) + score - splat(err) * (splat(x_norm) + cn);
    sq = sq > vf{} ? sq : vf{};
    store_bounds_down(bounds, (vsqrt(sq) + dt) * splat(shrink) * splat(inv_unit));
    for (int l = 0; l < W; ++l) lower[cand[t + l]] = bounds[l];
    store(scores + t, score);
    const vi better = score < best_v;  // strict: the first position per lane on ties
    best_v = better ? score : best_v;
    best_t = better ? tv : best_t;
  }
  float best;
  std::int32_t lane_at;
  lane_argmin(best_v, best_t, best_v, best_t, best, lane_at);
  std::int64_t at = lane_at == 0x7fffffff ? -1 : lane_at;  // no lane took a score
  for (; t < m; ++t) {
    const std::int32_t j = cand[t];
    const float score = c_norms[j] - 2.f * dots[t];
    const float sq = x_norm + score - err * (x_norm + c_norms[j]);
    lower[j] = bound16_down((std::sqrt(sq > 0.f ? sq : 0.f) + drift_total[j]) * shrink * inv_unit);
    scores[t] = score;
    if (score < best) best = score, at = t;
  }
  return at;
}

bool all_finite(const float* x, std::int64_t n) {
  // v - v is 0 for finite v and NaN for inf or NaN; NaN != NaN.
  vi bad{};
  std::int64_t k = 0;
  for (; k + W <= n; k += W) {
    const vf v = load(x + k);
    bad |= (v - v) != (v - v);
  }
  bool ok = true;
  for (int l = 0; l < W; ++l) ok &= bad[l] == 0;
  for (; k < n; ++k) ok &= (x[k] - x[k]) == 0.f;
  return ok;
}

void add_row(float* acc, const float* x, std::int64_t d) {
  std::int64_t k = 0;
  for (; k + W <= d; k += W) store(acc + k, load(acc + k) + load(x + k));
  for (; k < d; ++k) acc[k] += x[k];
}

void add_rows(float* sums, std::int64_t* counts, const float* x, std::int64_t ldx, const std::int32_t* labels,
              std::int64_t m, std::int64_t d) {
  for (std::int64_t r = 0; r < m; ++r) {
    add_row(sums + labels[r] * d, x + r * ldx, d);
    ++counts[labels[r]];
  }
}

}  // namespace flashkmeans::cpu::FK_ISA
