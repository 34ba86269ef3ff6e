// doc:hide
// docs/api.md, "Example: options, progress, errors".
// doc:show
#include <cstdio>
#include <vector>

#include <flashkmeans/flashkmeans.hpp>

int main() {
  const std::int64_t n = 3000, d = 8;
  std::vector<float> x(n * d);  // (N, D), row-major
// doc:hide
  for (std::int64_t i = 0; i < n; ++i)  // three blobs around 0, 10 and 20
    for (std::int64_t j = 0; j < d; ++j) x[i * d + j] = 10.0f * (i % 3) + 0.001f * ((i * 31 + j * 7) % 97);
// doc:show

  flashkmeans::KMeansOptions opt;
  opt.n_clusters = 3;
  opt.max_iter = 50;
  opt.tol = 1e-4;  // stop once no centroid moves by 1e-4 or more
  opt.init = flashkmeans::Init::kmeans_plus_plus;
  opt.seed = 42;
  opt.on_iteration = [](const flashkmeans::IterationInfo& it) {
    std::printf("iteration %d: shift %.3g, inertia %.6g, %d labels changed\n", it.iteration, it.shift,
                it.inertia, it.changed);
  };
  const auto view = flashkmeans::TensorView::matrix(x.data(), n, d);
  const flashkmeans::KMeansResult r = flashkmeans::fit(view, opt);
  std::printf("%d iterations, converged: %d, inertia %.6g, point 0 in cluster %d\n", r.n_iter[0],
              r.converged[0], r.inertia[0], r.labels[0]);

  opt.n_clusters = n + 1;  // more clusters than points
  try {
    flashkmeans::fit(view, opt);
  } catch (const flashkmeans::Error& e) {
    std::printf("rejected (%s): %s\n",
                e.kind() == flashkmeans::ErrorKind::invalid_argument ? "invalid_argument" : "other", e.what());
  }
// doc:hide
  if (!r.converged[0] || r.labels[0] == r.labels[1] || r.labels[1] == r.labels[2]) return 1;
// doc:show
  return 0;
}
