// Every CUDA runtime call goes through FK_CUDA: a failure becomes a flashkmeans::Error naming the
// call (out_of_memory for allocation failures, internal otherwise).
#pragma once

#include <cuda_runtime.h>

#include "core/check.hpp"

#define FK_CUDA(call)                                                                               \
  do {                                                                                              \
    const cudaError_t fk_cuda_err_ = (call);                                                        \
    if (fk_cuda_err_ != cudaSuccess) {                                                              \
      (void)cudaGetLastError(); /* clear a sticky-free error so the process stays usable */        \
      FK_CHECK(fk_cuda_err_ != cudaErrorMemoryAllocation, out_of_memory,                            \
               "not enough CUDA device memory for this problem size (" #call ")");                  \
      FK_CHECK(false, internal, "CUDA call failed: " #call ": " << cudaGetErrorString(fk_cuda_err_)); \
    }                                                                                               \
  } while (0)

/// After a kernel launch: a bad launch configuration surfaces here, not at the next call.
#define FK_CUDA_LAUNCHED() FK_CUDA(cudaPeekAtLastError())
