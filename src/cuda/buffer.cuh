// Device memory owned by RAII, freed on every path out of a fit (errors included). Allocations
// are stream-ordered from a memory pool the library keeps per device, so that repeated fits
// reuse memory instead of paying for cudaMalloc and cudaFree (which synchronises) each time.
#pragma once

#include <cstddef>
#include <utility>

#include "cuda/check.cuh"

namespace flashkmeans::cuda {

/// The library's pool on the current device (created on first use; keeps up to 1 GiB cached).
cudaMemPool_t current_pool();

template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t count, cudaStream_t stream = nullptr) : stream_(stream) { resize(count); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { release(); }

  /// Reallocates (contents lost) when count differs; count 0 frees.
  void resize(std::size_t count) {
    if (count == count_) return;
    release();
    if (count == 0) return;
    FK_CUDA(cudaMallocFromPoolAsync(reinterpret_cast<void**>(&ptr_), count * sizeof(T), current_pool(), stream_));
    count_ = count;
  }
  T* get() const { return ptr_; }
  std::size_t size() const { return count_; }

 private:
  void release() {
    if (ptr_) cudaFreeAsync(ptr_, stream_);
    ptr_ = nullptr;
    count_ = 0;
  }
  cudaStream_t stream_ = nullptr;
  T* ptr_ = nullptr;
  std::size_t count_ = 0;
};

}  // namespace flashkmeans::cuda
