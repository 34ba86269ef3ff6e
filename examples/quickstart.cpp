// The quick start: cluster the Iris flowers into three groups and compare them with the species.
#include <chrono>
#include <cstdio>
#include <vector>

#include <flashkmeans/flashkmeans.hpp>

#include "iris_data.hpp"

namespace {

// Adjusted Rand index of two labelings of n points with labels in [0, ka) and [0, kb).
double adjusted_rand_index(const std::vector<int>& a, const std::vector<int>& b, int ka, int kb) {
  std::vector<double> table(static_cast<std::size_t>(ka * kb)), rows(ka), cols(kb);
  for (std::size_t i = 0; i < a.size(); ++i) table[a[i] * kb + b[i]] += 1, rows[a[i]] += 1, cols[b[i]] += 1;
  auto pairs = [](double n) { return n * (n - 1) / 2; };
  double index = 0, sum_rows = 0, sum_cols = 0;
  for (double t : table) index += pairs(t);
  for (double r : rows) sum_rows += pairs(r);
  for (double c : cols) sum_cols += pairs(c);
  const double expected = sum_rows * sum_cols / pairs(static_cast<double>(a.size()));
  return (index - expected) / ((sum_rows + sum_cols) / 2 - expected);
}

}  // namespace

int main() {
  const int n = 150, d = 4, k = 3;
  std::vector<float> x;
  std::vector<int> species;
  for (const IrisFlower& f : kIris) {
    x.insert(x.end(), {f.sepal_length, f.sepal_width, f.petal_length, f.petal_width});
    species.push_back(f.species);
  }

  flashkmeans::KMeansOptions options;
  options.n_clusters = k;
  options.max_iter = 100;
  options.tol = 1e-6;
  options.init = flashkmeans::Init::kmeans_plus_plus;
  options.seed = 0;
  options.on_iteration = [](const flashkmeans::IterationInfo& it) {
    std::printf("  iteration %2d  shift %.6f  inertia %.4f  changed %d\n", it.iteration, it.shift, it.inertia,
                it.changed);
  };

  std::printf("flashkmeans %s (CPU kernels: %s): Iris, %d flowers x %d measurements, K = %d\n",
              FLASHKMEANS_VERSION, flashkmeans::cpu_isa(), n, d, k);
  const auto t0 = std::chrono::steady_clock::now();
  const flashkmeans::KMeansResult r = flashkmeans::fit(flashkmeans::TensorView::matrix(x.data(), n, d), options);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();

  const std::vector<int> labels(r.labels.begin(), r.labels.end());
  std::printf("done in %.2f ms: %d iterations, %s, inertia %.4f\n", ms, r.n_iter[0],
              r.converged[0] ? "converged" : "not converged", r.inertia[0]);
  std::printf("agreement with the species: adjusted Rand index %.3f\n", adjusted_rand_index(labels, species, k, 3));
  std::printf("centroids (sepal length, sepal width, petal length, petal width):\n");
  for (int j = 0; j < k; ++j) {
    int members = 0;
    for (int l : labels) members += l == j;
    std::printf("  %d: %.3f %.3f %.3f %.3f  (%d flowers)\n", j, r.centroids[j * d], r.centroids[j * d + 1],
                r.centroids[j * d + 2], r.centroids[j * d + 3], members);
  }
  return 0;
}
