// The SIMD kernels compiled for generic (flags set in CMakeLists.txt).
#define FK_ISA generic
#define FK_LANES 4
#define FK_ROWS 4
#include "cpu/simd_kernels.inl"

namespace flashkmeans::cpu {
extern const SimdKernels kSimd_generic;
const SimdKernels kSimd_generic = {"generic", generic::panel_width, generic::row_block, generic::pack_panels,
                                generic::argmin_rows, generic::argmin_rows_few,
                                generic::score_rows, generic::dot,
                                generic::candidate_dots, generic::elkan_candidates, generic::elkan_bound_row, generic::elkan_update,
                                generic::all_finite, generic::add_row, generic::add_rows};
}  // namespace flashkmeans::cpu
