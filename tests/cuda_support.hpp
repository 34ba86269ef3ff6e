// Test support for the CUDA backend: device buffers (RAII), uploads and downloads through the CUDA
// runtime API, device views of fkt::Array data in any layout, and poisoned output buffers.
// Host code only: the tests need no kernels of their own.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "reference.hpp"

namespace fkt::cuda {

/// Throws std::runtime_error naming the call when a runtime call failed (GoogleTest reports the
/// exception as a test failure).
inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

inline int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}

/// An owning device allocation of count elements of T on the current device. Optionally followed
/// by guard elements that tests check are never written (allocated, poisoned, not part of size()).
template <class T>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(std::size_t count, std::size_t guard = 0) : count_(count), guard_(guard) {
    const std::size_t bytes = std::max<std::size_t>(1, (count + guard) * sizeof(T));
    check(cudaMalloc(reinterpret_cast<void**>(&ptr_), bytes), "cudaMalloc");
  }
  explicit Buffer(const std::vector<T>& host) : Buffer(host.size()) { upload(host); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept { swap(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    swap(o);
    return *this;
  }
  ~Buffer() {
    if (ptr_) (void)cudaFree(ptr_);
  }

  T* get() const { return ptr_; }
  std::size_t size() const { return count_; }

  void upload(const std::vector<T>& host) {
    if (host.size() != count_) throw std::runtime_error("Buffer::upload: size mismatch");
    if (count_) check(cudaMemcpy(ptr_, host.data(), count_ * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy H2D");
  }
  /// The first size() elements (not the guard).
  std::vector<T> download() const { return download_all(count_); }
  /// The guard elements that follow the data.
  std::vector<T> download_guard() const {
    std::vector<T> all = download_all(count_ + guard_);
    return std::vector<T>(all.begin() + static_cast<std::ptrdiff_t>(count_), all.end());
  }
  /// Every byte, guard included, set to byte (0xFF: labels -1, floats NaN).
  void fill_bytes(unsigned char byte) {
    check(cudaMemset(ptr_, byte, std::max<std::size_t>(1, (count_ + guard_) * sizeof(T))), "cudaMemset");
  }

 private:
  std::vector<T> download_all(std::size_t count) const {
    std::vector<T> host(count);
    check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    if (count) check(cudaMemcpy(host.data(), ptr_, count * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
    return host;
  }
  void swap(Buffer& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(count_, o.count_);
    std::swap(guard_, o.guard_);
  }
  T* ptr_ = nullptr;
  std::size_t count_ = 0, guard_ = 0;
};

/// A fkt::Array copied to the device in some layout; view() is a TensorView of it on the device.
/// Elements outside the view (padding) hold NaN, so a kernel that reads outside it is noticed.
struct DeviceArray {
  Buffer<float> f32;
  Buffer<std::uint16_t> bits;
  flashkmeans::TensorView view;
};

/// Strides (in elements) for a C-contiguous (B, N, D) array.
struct Strides {
  std::int64_t batch, row, col;
};

inline Strides contiguous(const Array& a) { return {a.rows * a.cols, a.cols, 1}; }

/// Copies a to device `device` (the current device must be that device) with the given strides.
inline DeviceArray upload(const Array& a, Strides s, int device = 0) {
  std::int64_t last = 0;  // highest element index the view touches
  last += (a.batch - 1) * s.batch + (a.rows - 1) * s.row + (a.cols - 1) * s.col;
  const std::size_t count = static_cast<std::size_t>(last + 1);
  DeviceArray out;
  out.view.dtype = a.dtype;
  out.view.device = {flashkmeans::DeviceType::cuda, device};
  out.view.batch = a.batch, out.view.rows = a.rows, out.view.cols = a.cols;
  out.view.batch_stride = s.batch, out.view.row_stride = s.row, out.view.col_stride = s.col;
  auto index = [&](std::int64_t b, std::int64_t i, std::int64_t q) {
    return static_cast<std::size_t>(b * s.batch + i * s.row + q * s.col);
  };
  if (a.dtype == DType::float32) {
    std::vector<float> host(count, std::numeric_limits<float>::quiet_NaN());
    for (std::int64_t b = 0; b < a.batch; ++b)
      for (std::int64_t i = 0; i < a.rows; ++i)
        for (std::int64_t q = 0; q < a.cols; ++q) host[index(b, i, q)] = a.f32[static_cast<std::size_t>((b * a.rows + i) * a.cols + q)];
    out.f32 = Buffer<float>(host);
    out.view.data = out.f32.get();
  } else {
    const std::uint16_t nan = a.dtype == DType::float16 ? 0x7e00u : 0x7fc0u;
    std::vector<std::uint16_t> host(count, nan);
    for (std::int64_t b = 0; b < a.batch; ++b)
      for (std::int64_t i = 0; i < a.rows; ++i)
        for (std::int64_t q = 0; q < a.cols; ++q) host[index(b, i, q)] = a.bits[static_cast<std::size_t>((b * a.rows + i) * a.cols + q)];
    out.bits = Buffer<std::uint16_t>(host);
    out.view.data = out.bits.get();
  }
  return out;
}

inline DeviceArray upload(const Array& a) { return upload(a, contiguous(a)); }

/// Caller-owned fit_into / predict_into outputs on the device, each followed by `guard` elements,
/// all filled with 0xFF bytes (labels -1, floats NaN) before use.
struct Outputs {
  Buffer<std::int32_t> labels;
  Buffer<float> centroids, distances;
  Outputs(std::int64_t batch, std::int64_t n, std::int64_t k, std::int64_t d, std::size_t guard = 64)
      : labels(static_cast<std::size_t>(batch * n), guard),
        centroids(static_cast<std::size_t>(batch * k * d), guard),
        distances(static_cast<std::size_t>(batch * n), guard) {
    labels.fill_bytes(0xFF);
    centroids.fill_bytes(0xFF);
    distances.fill_bytes(0xFF);
  }
  flashkmeans::OutputBuffers buffers(bool with_distances = true) const {
    return {labels.get(), centroids.get(), with_distances ? distances.get() : nullptr};
  }
};

/// Number of elements of v whose bytes are all 0xFF (never written).
template <class T>
std::size_t count_poisoned(const std::vector<T>& v) {
  T poison;
  std::memset(&poison, 0xFF, sizeof(T));
  std::size_t c = 0;
  for (const T& e : v) c += std::memcmp(&e, &poison, sizeof(T)) == 0;
  return c;
}

/// A CUDA stream owned for the duration of a test.
class Stream {
 public:
  Stream() { check(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking), "cudaStreamCreate"); }
  ~Stream() { (void)cudaStreamDestroy(s_); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

/// Decodes float16 / bfloat16 bits to float (exactly: every such value is a float).
inline float half_to_float(std::uint16_t h) { return static_cast<float>(half_to_double(h)); }
inline float bfloat16_to_float(std::uint16_t h) { return static_cast<float>(bfloat16_to_double(h)); }

}  // namespace fkt::cuda
