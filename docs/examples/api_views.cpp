// doc:hide
// docs/api.md, "Example: batches, caller buffers, strided and 16-bit views".
// doc:show
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include <flashkmeans/flashkmeans.hpp>

int main() {
  const std::int64_t b = 4, n = 1000, d = 16, k = 8;
  std::vector<float> data(b * n * d);  // (B, N, D): four independent problems
// doc:hide
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>((i * 2654435761u) % 1000) / 100.0f;
// doc:show
  const auto x = flashkmeans::TensorView::batched(data.data(), b, n, d);

  // fit_into: the caller owns the outputs, labels (B, N), centroids (B, K, D), distances (B, N).
  flashkmeans::KMeansOptions opt;
  opt.n_clusters = k;
  opt.max_iter = 10;
  std::vector<std::int32_t> labels(b * n);
  std::vector<float> centroids(b * k * d), distances(b * n);
  const flashkmeans::FitSummary s =
      flashkmeans::fit_into(x, opt, {labels.data(), centroids.data(), distances.data()});
  for (std::int64_t i = 0; i < b; ++i) std::printf("batch %lld: inertia %.1f\n", static_cast<long long>(i), s.inertia[i]);

  // predict with one (K, D) set of centroids (batch 0's) shared by all four batches.
  const auto shared = flashkmeans::TensorView::matrix(centroids.data(), k, d);
  const flashkmeans::PredictResult p = flashkmeans::predict(x, shared, flashkmeans::Metric::euclidean);
  std::printf("predict: %zu labels, point 0 of batch 0 in cluster %d\n", p.labels.size(), p.labels[0]);

  // A strided view, read in place: the first 8 of the 16 columns of batch 0.
  flashkmeans::TensorView left = x;
  left.batch = 1, left.cols = 8;  // strides stay (N * D, D, 1)
  std::printf("left half: %d iterations\n", flashkmeans::fit(left, opt).n_iter[0]);

  // bfloat16 data as uint16_t bits (the upper half of each float32, truncated here).
  std::vector<std::uint16_t> bf16(data.size());
  for (std::size_t i = 0; i < data.size(); ++i) {
    std::uint32_t bits;
    std::memcpy(&bits, &data[i], 4);
    bf16[i] = static_cast<std::uint16_t>(bits >> 16);
  }
  const auto xb = flashkmeans::TensorView::batched(bf16.data(), flashkmeans::DType::bfloat16, b, n, d);
  flashkmeans::PredictOptions po;  // metric, threads; precision and stream for CUDA data
  flashkmeans::predict_into(xb, shared, po, {labels.data(), nullptr, nullptr});
  std::printf("bfloat16 points: point 0 in cluster %d (%s kernels, CUDA %s)\n", labels[0], flashkmeans::cpu_isa(),
              flashkmeans::cuda_available() ? "available" : "not available");
// doc:hide
  if (p.labels.size() != static_cast<std::size_t>(b * n) || s.n_iter.size() != static_cast<std::size_t>(b)) return 1;
// doc:show
  return 0;
}
