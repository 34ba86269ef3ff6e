// doc:hide
// README.md, "C++ quick start". The docs show this file without its doc:hide ... doc:show lines
// (tests/doc_examples.py checks that they match); CTest builds and runs it (tests/CMakeLists.txt).
// doc:show
#include <flashkmeans/flashkmeans.hpp>
// doc:hide
#include <cstdio>
#include <random>
#include <vector>

int main() {
  const std::int64_t n = 20000, d = 16, m = 100;
  std::mt19937 rng(0);
  std::normal_distribution<float> normal;
  std::vector<float> q(m * d);
  for (float& v : q) v = normal(rng);
// doc:show

std::vector<float> x(n * d);                        // your points, row-major (N, D)
// doc:hide
  for (float& v : x) v = normal(rng);
// doc:show
flashkmeans::KMeansOptions opt;
opt.n_clusters = 256;
opt.max_iter = 20;
opt.init = flashkmeans::Init::kmeans_plus_plus;
auto r = flashkmeans::fit(flashkmeans::TensorView::matrix(x.data(), n, d), opt);
// r.labels (N), r.centroids (K * D), r.n_iter[0], r.inertia[0], r.converged[0]

auto p = flashkmeans::predict(flashkmeans::TensorView::matrix(q.data(), m, d),
                              flashkmeans::TensorView::matrix(r.centroids.data(), 256, d));
// p.labels (M), p.distances (M)
// doc:hide
  if (r.labels.size() != static_cast<std::size_t>(n) || r.centroids.size() != static_cast<std::size_t>(256 * d) ||
      p.labels.size() != static_cast<std::size_t>(m) || r.n_iter[0] != 20)
    return 1;
  std::printf("quick start: %d iterations, inertia %.1f; first query in cluster %d at %.3f\n", r.n_iter[0],
              r.inertia[0], p.labels[0], p.distances[0]);
  return 0;
}
