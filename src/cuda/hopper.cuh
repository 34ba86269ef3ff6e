// Hopper (sm_90a) primitives for the wgmma assignment: shared-memory barriers, the asynchronous
// copy's barrier arrival, proxy fences, matrix descriptors and the warp-group products.
// Everything here compiles to nothing outside sm_90a (FK_HOPPER is 0 there), so the file can be
// included by a build for any architecture; the host checks the device before launching.
#pragma once

#include <cstdint>

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define FK_HOPPER 1
#else
#define FK_HOPPER 0
#endif

namespace flashkmeans::cuda::hopper {

#if FK_HOPPER

__device__ __forceinline__ std::uint32_t smem_address(const void* p) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(p));
}

// --- barriers in shared memory (mbarrier) ---

__device__ __forceinline__ void barrier_init(std::uint64_t* bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_address(bar)), "r"(count) : "memory");
}

__device__ __forceinline__ void barrier_arrive(std::uint64_t* bar) {
  asm volatile("{\n.reg .b64 state;\nmbarrier.arrive.shared::cta.b64 state, [%0];\n}\n" ::"r"(smem_address(bar)) : "memory");
}

constexpr std::uint32_t kSuspendHintNs = 1000000;

// Waits until the barrier's phase with this parity has completed. The suspend-time hint lets the
// thread sleep in try_wait until the phase completes (or the hint's time, in ns, passes) instead
// of returning at once: a spinning waiter takes issue slots from the warps that compute.
__device__ __forceinline__ void barrier_wait(std::uint64_t* bar, std::uint32_t parity) {
  const std::uint32_t addr = smem_address(bar);
  std::uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2, %3;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(addr), "r"(parity), "r"(kSuspendHintNs)
        : "memory");
  } while (!done);
}

// --- bulk tensor copies (TMA) that complete a barrier's byte count ---

// Arrives on the barrier and adds `bytes` to the bytes its current phase waits for.
__device__ __forceinline__ void barrier_expect_bytes(std::uint64_t* bar, int bytes) {
  asm volatile("{\n.reg .b64 state;\nmbarrier.arrive.expect_tx.shared::cta.b64 state, [%0], %1;\n}\n" ::"r"(
                   smem_address(bar)),
               "r"(bytes)
               : "memory");
}

// Copies the box at (x0, x1) of a 2-D tensor map into shared memory; the barrier counts its bytes.
__device__ __forceinline__ void tensor_load_2d(void* smem, const void* tensor_map, int x0, int x1, std::uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          smem_address(smem)),
      "l"(reinterpret_cast<std::uint64_t>(tensor_map)), "r"(x0), "r"(x1), "r"(smem_address(bar))
      : "memory");
}

// Copies the box at (x0, x1, x2) of a 3-D tensor map into shared memory; the barrier counts its bytes.
__device__ __forceinline__ void tensor_load_3d(void* smem, const void* tensor_map, int x0, int x1, int x2,
                                               std::uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(
          smem_address(smem)),
      "l"(reinterpret_cast<std::uint64_t>(tensor_map)), "r"(x0), "r"(x1), "r"(x2), "r"(smem_address(bar))
      : "memory");
}

// Copies `bytes` (a multiple of 16, both addresses 16-byte aligned) from global to shared memory;
// the barrier counts them.
__device__ __forceinline__ void bulk_load(void* smem, const void* global, int bytes, std::uint64_t* bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                   smem_address(smem)),
               "l"(reinterpret_cast<std::uint64_t>(global)), "r"(bytes), "r"(smem_address(bar))
               : "memory");
}

// Waits until `threads` threads (whole warps) have reached named barrier id (0 is __syncthreads').
__device__ __forceinline__ void named_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// A 32-bit load from shared memory (the pointer's address space unknown to the compiler).
__device__ __forceinline__ std::uint32_t load_shared(const void* p) {
  std::uint32_t v;
  asm volatile("ld.shared.b32 %0, [%1];\n" : "=r"(v) : "r"(smem_address(p)));
  return v;
}

// Orders this thread's ordinary shared-memory accesses before the tensor cores' (async proxy) reads.
__device__ __forceinline__ void fence_async_shared() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// --- register reallocation between warp groups (the whole warp group executes it) ---

template <int N>
__device__ __forceinline__ void release_registers() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N>
__device__ __forceinline__ void claim_registers() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}

// --- warp-group matrix products ---

// Descriptor of a K-major operand tile in shared memory with the 128-byte swizzle: rows of 128
// bytes, 8-row groups 1024 bytes apart (the group base must be 1024-byte aligned).
__device__ __forceinline__ std::uint64_t descriptor(const void* tile) {
  const std::uint64_t addr = smem_address(tile);
  return ((addr & 0x3FFFF) >> 4) | (std::uint64_t{1} << 16) | (std::uint64_t{1024 >> 4} << 32) | (std::uint64_t{1} << 62);
}

// Descriptor of a K-major operand tile without swizzle: 8 x 16-byte core matrices, those along K
// `along_k` bytes apart, 8-row groups `along_rows` bytes apart.
__device__ __forceinline__ std::uint64_t descriptor_interleaved(const void* tile, int along_k, int along_rows) {
  const std::uint64_t addr = smem_address(tile);
  return ((addr & 0x3FFFF) >> 4) | (static_cast<std::uint64_t>(along_k >> 4) << 16) |
         (static_cast<std::uint64_t>(along_rows >> 4) << 32);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

// Keeps the compiler from moving accesses to accumulator registers across wgmma issue and wait.
template <int R>
__device__ __forceinline__ void fence_registers(float (&d)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// -v as a fresh register (the compiler cannot merge it with another negation of v).
__device__ __forceinline__ float negated(float v) {
  float r;
  asm volatile("neg.f32 %0, %1;\n" : "=f"(r) : "f"(v));
  return r;
}

// d += A * B^T for a 64-row A tile and an N-row B tile, both K-major in shared memory; one k step
// (16 elements of 16-bit types, 8 of tf32). Inline PTX has no loops, so the accumulator operand
// lists are spelled out once per register count (N / 2) and the six products share them.
#define FK_WGMMA_ACC32 \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31" \
  "}, %32, %33"
#define FK_WGMMA_OPS32 \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
  "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
  "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
  "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
#define FK_WGMMA_ACC64 \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63" \
  "}, %64, %65"
#define FK_WGMMA_OPS64 \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
  "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
  "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
  "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
  "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
  "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
  "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
  "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
// scale_d "1": d += A * B; "0": d = A * B (the accumulators' values ignored: a tile's first k step).
#define FK_WGMMA(name, regs, scale_d, instruction, tail)                                                   \
  __device__ __forceinline__ void name(float(&d)[regs], std::uint64_t a, std::uint64_t b) {                \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, " scale_d ", 0;\n" instruction " {" FK_WGMMA_ACC##regs tail \
                 "\n}\n"                                                                        \
                 : FK_WGMMA_OPS##regs                                                           \
                 : "l"(a), "l"(b));                                                              \
  }

// tf32 products with A from registers: 4 32-bit registers a thread per k step, the layout of
// mma.sync's A fragment (warp w of the group holds rows 16w..16w+15).
#define FK_WGMMA_RS(name, regs, instruction, tail)                                                          \
  __device__ __forceinline__ void name(float(&d)[regs], const std::uint32_t(&a)[4], std::uint64_t b) {      \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n" instruction " {" FK_WGMMA_ACC##regs##_RS tail \
                 "\n}\n"                                                                                  \
                 : FK_WGMMA_OPS##regs                                                                     \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b));                                   \
  }
#define FK_WGMMA_ACC32_RS \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31" \
  "}, {%32, %33, %34, %35}, %36"
#define FK_WGMMA_ACC64_RS \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63" \
  "}, {%64, %65, %66, %67}, %68"

FK_WGMMA_RS(wgmma_rs_tf32_n64, 32, "wgmma.mma_async.sync.aligned.m64n64k8.f32.tf32.tf32", ", p, 1, 1;")
FK_WGMMA_RS(wgmma_rs_tf32_n128, 64, "wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32", ", p, 1, 1;")

#undef FK_WGMMA_RS
#undef FK_WGMMA_ACC32_RS
#undef FK_WGMMA_ACC64_RS

// 16-bit products take the operands' transposition flags (0: K-major); tf32 has none.
FK_WGMMA(wgmma_f16_n64, 32, "1", "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16", ", p, 1, 1, 0, 0;")
FK_WGMMA(wgmma_f16_n128, 64, "1", "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16", ", p, 1, 1, 0, 0;")
FK_WGMMA(wgmma_bf16_n64, 32, "1", "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16", ", p, 1, 1, 0, 0;")
FK_WGMMA(wgmma_bf16_n128, 64, "1", "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16", ", p, 1, 1, 0, 0;")
FK_WGMMA(wgmma_tf32_n64, 32, "1", "wgmma.mma_async.sync.aligned.m64n64k8.f32.tf32.tf32", ", p, 1, 1;")
FK_WGMMA(wgmma_tf32_n128, 64, "1", "wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32", ", p, 1, 1;")
// The first k step of the packed fold's tiles (its bias rows, assign_wgmma.cu).
FK_WGMMA(wgmma_first_f16_n128, 64, "0", "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16", ", p, 1, 1, 0, 0;")
FK_WGMMA(wgmma_first_bf16_n128, 64, "0", "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16", ", p, 1, 1, 0, 0;")

#undef FK_WGMMA
#undef FK_WGMMA_ACC32
#undef FK_WGMMA_OPS32
#undef FK_WGMMA_ACC64
#undef FK_WGMMA_OPS64

#endif  // FK_HOPPER

}  // namespace flashkmeans::cuda::hopper
