// The SIMD kernels compiled for avx2 (flags set in CMakeLists.txt).
#define FK_ISA avx2
#define FK_LANES 8
#define FK_ROWS 6
#include "cpu/simd_kernels.inl"

namespace flashkmeans::cpu {
extern const SimdKernels kSimd_avx2;
const SimdKernels kSimd_avx2 = {"avx2", avx2::panel_width, avx2::row_block, avx2::pack_panels,
                                avx2::argmin_rows, avx2::argmin_rows_few,
                                avx2::score_rows, avx2::dot,
                                avx2::candidate_dots, avx2::elkan_candidates, avx2::elkan_bound_row, avx2::elkan_update,
                                avx2::all_finite, avx2::add_row, avx2::add_rows};
}  // namespace flashkmeans::cpu
