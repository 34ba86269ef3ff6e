// The CPU backend: OpenMP threads over SIMD kernels chosen at run time.
#include "core/backend.hpp"
#include "cpu/assigners.hpp"
#include "cpu/simd_kernels.hpp"
#include "flashkmeans/kmeans.hpp"

namespace flashkmeans {

namespace cpu {
namespace {

class CpuBackend final : public detail::Backend {
 public:
  std::unique_ptr<detail::Assigner> make_assigner(const detail::BatchRows& x,
                                                  const detail::AssignerConfig& cfg) override {
    return cfg.algorithm == Algorithm::elkan ? make_elkan(x, cfg) : make_lloyd(x, cfg);
  }
};

}  // namespace
}  // namespace cpu

detail::Backend& detail::cpu_backend() {
  static cpu::CpuBackend backend;
  return backend;
}

const char* cpu_isa() { return cpu::simd().name; }

}  // namespace flashkmeans
