// The SIMD kernels compiled for avx512 (flags set in CMakeLists.txt).
#define FK_ISA avx512
#define FK_LANES 16
#define FK_ROWS 12
#include "cpu/simd_kernels.inl"

namespace flashkmeans::cpu {
extern const SimdKernels kSimd_avx512;
const SimdKernels kSimd_avx512 = {"avx512", avx512::panel_width, avx512::row_block, avx512::pack_panels,
                                avx512::argmin_rows, avx512::argmin_rows_few,
                                avx512::score_rows, avx512::dot,
                                avx512::candidate_dots, avx512::elkan_candidates, avx512::elkan_bound_row, avx512::elkan_update,
                                avx512::all_finite, avx512::add_row, avx512::add_rows};
}  // namespace flashkmeans::cpu
