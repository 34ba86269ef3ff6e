// doc:hide
// README.md, "On a GPU": data in device memory, outputs into device buffers. Needs the CUDA
// backend and a device; without a device it exits with 77, which CTest reports as skipped.
#include <cstdio>
#include <random>
#include <vector>

#include <cuda_runtime.h>

#include <flashkmeans/flashkmeans.hpp>

int main() {
  if (!flashkmeans::cuda_available()) {
    std::puts("no CUDA device: skipped");
    return 77;
  }
  const std::int64_t b = 2, n = 20000, d = 32, k = 1000;
  std::vector<float> host(b * n * d);
  std::mt19937 rng(0);
  std::normal_distribution<float> normal;
  for (float& v : host) v = normal(rng);
  float *d_x = nullptr, *d_centroids = nullptr;
  std::int32_t* d_labels = nullptr;
  cudaMalloc(&d_x, host.size() * sizeof(float));
  cudaMalloc(&d_centroids, b * k * d * sizeof(float));
  cudaMalloc(&d_labels, b * n * sizeof(std::int32_t));
  cudaMemcpy(d_x, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice);
// doc:show
flashkmeans::TensorView x = flashkmeans::TensorView::batched(d_x, b, n, d);  // d_x: device float*
x.device = {flashkmeans::DeviceType::cuda, 0};
flashkmeans::KMeansOptions opt;
opt.n_clusters = 1000;
opt.precision = flashkmeans::Precision::tf32;  // float32 data: tf32 products (default: exact)
auto summary = flashkmeans::fit_into(x, opt, {d_labels, d_centroids, nullptr});
// doc:hide
  std::vector<std::int32_t> labels(b * n);
  cudaMemcpy(labels.data(), d_labels, labels.size() * sizeof(std::int32_t), cudaMemcpyDeviceToHost);
  cudaFree(d_x), cudaFree(d_centroids), cudaFree(d_labels);
  for (std::int32_t l : labels)
    if (l < 0 || l >= k) return 1;
  std::printf("fit_into on the GPU: %d and %d iterations, inertia %.1f and %.1f\n", summary.n_iter[0],
              summary.n_iter[1], summary.inertia[0], summary.inertia[1]);
  return 0;
}
