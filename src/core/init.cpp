#include "core/init.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/convert.hpp"
#include "core/rng.hpp"

namespace flashkmeans::detail {

namespace {

void copy_row(const BatchRows& x, std::int64_t i, float* out) {
  std::memcpy(out, x.rows + i * x.ld, sizeof(float) * x.d);
}

// Sums v[0..n) in double over fixed chunks combined in order: the same result for any thread count.
double fixed_order_sum(const float* v, std::int64_t n, int n_threads) {
  constexpr std::int64_t kChunk = 4096;
  const std::int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> part(static_cast<std::size_t>(chunks));
#pragma omp parallel for num_threads(n_threads) schedule(static)
  for (std::int64_t c = 0; c < chunks; ++c) {
    double s = 0;
    for (std::int64_t i = c * kChunk; i < std::min(n, (c + 1) * kChunk); ++i) s += v[i];
    part[c] = s;
  }
  double s = 0;
  for (double p : part) s += p;
  return s;
}

// Greedy k-means++ as scikit-learn does it: each new centroid is the best of 2 + ln K candidates
// drawn with probability proportional to the squared distance to the nearest chosen centroid.
void kmeans_plus_plus(const BatchRows& x, std::int64_t k, Rng& rng, Assigner& assigner,
                      int n_threads, float* out) {
  const std::int64_t n = x.n, d = x.d;
  const std::int64_t trials = 2 + static_cast<std::int64_t>(std::log(static_cast<double>(k)));
  std::vector<float> closest(static_cast<std::size_t>(n)), dist(static_cast<std::size_t>(n * trials));
  std::vector<float> cand(static_cast<std::size_t>(trials * d)), column(static_cast<std::size_t>(n));
  std::vector<double> cumulative(static_cast<std::size_t>(n));

  copy_row(x, rng.below(n), out);
  assigner.sq_distances(out, 1, closest.data());

  std::vector<std::int64_t> ids(static_cast<std::size_t>(trials));
  for (std::int64_t c = 1; c < k; ++c) {
    double run = 0;
    for (std::int64_t i = 0; i < n; ++i) cumulative[i] = (run += closest[i]);
    for (std::int64_t t = 0; t < trials; ++t) {
      const double r = rng.uniform() * run;
      const std::int64_t at = std::upper_bound(cumulative.begin(), cumulative.end(), r) - cumulative.begin();
      ids[t] = std::min(at, n - 1);
      copy_row(x, ids[t], cand.data() + t * d);
    }
    assigner.sq_distances(cand.data(), trials, dist.data());
    std::int64_t best = 0;
    double best_pot = 0;
    for (std::int64_t t = 0; t < trials; ++t) {
#pragma omp parallel for num_threads(n_threads) schedule(static)
      for (std::int64_t i = 0; i < n; ++i) column[i] = std::min(closest[i], dist[i * trials + t]);
      const double pot = fixed_order_sum(column.data(), n, n_threads);
      if (t == 0 || pot < best_pot) best = t, best_pot = pot;
    }
#pragma omp parallel for num_threads(n_threads) schedule(static)
    for (std::int64_t i = 0; i < n; ++i) closest[i] = std::min(closest[i], dist[i * trials + best]);
    std::memcpy(out + c * d, cand.data() + best * d, sizeof(float) * d);
  }
}

}  // namespace

void init_centroids(const BatchRows& x, const TensorView& original, std::int64_t b,
                    const KMeansOptions& opt, Assigner& assigner, int n_threads, float* out) {
  const std::int64_t k = opt.n_clusters;
  switch (opt.init) {
    case Init::given:
      copy_batch(opt.init_centroids, b, out);
      return;
    case Init::random: {
      // K row indices drawn uniformly with replacement, as the seed does; the raw rows of the
      // input are gathered (the driver normalises them for cosine).
      Rng rng = batch_rng(opt.seed, b);
      for (std::int64_t j = 0; j < k; ++j) {
        const std::int64_t i = rng.below(x.n);
        for (std::int64_t c = 0; c < x.d; ++c) out[j * x.d + c] = element(original, b, i, c);
      }
      return;
    }
    case Init::kmeans_plus_plus: {
      Rng rng = batch_rng(opt.seed, b);
      kmeans_plus_plus(x, k, rng, assigner, n_threads, out);
      return;
    }
  }
}

}  // namespace flashkmeans::detail

