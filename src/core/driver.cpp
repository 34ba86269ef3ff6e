// The backend-independent Lloyd driver: init, the iteration loop, the step from local sums to new
// centroids (where a cross-device reduction will slot in), empty clusters, convergence, results.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "core/backend.hpp"
#include "core/check.hpp"
#include "core/convert.hpp"
#include "core/cuda_entry.hpp"
#include "core/init.hpp"
#include "core/validate.hpp"
#include "flashkmeans/kmeans.hpp"

namespace flashkmeans {

namespace detail {
namespace {

int resolve_threads(int requested) { return requested > 0 ? requested : std::max(1, omp_get_max_threads()); }

// With n_threads = 0 (automatic), the threads worth starting for a pass of n x k x d multiply-adds:
// a parallel region costs a few microseconds, and on a busy machine a barrier can wait a whole
// scheduler slice (milliseconds) for a descheduled thread, so small problems run on one thread per
// 256K multiply-adds at most. An explicit count is honoured. Results do not depend on the thread
// count, so this changes only the time.
int threads_for_work(int requested, int n_threads, std::int64_t n, std::int64_t k, std::int64_t d) {
  if (requested > 0) return n_threads;
  constexpr double kWorkPerThread = 1 << 18;
  const double work = static_cast<double>(n) * static_cast<double>(k) * static_cast<double>(d);
  return static_cast<int>(std::max(1.0, std::min(static_cast<double>(n_threads), work / kWorkPerThread)));
}

// Elkan keeps N x K lower bounds: worth it when K is large enough for the bounds to prune more
// than they cost, and the bounds fit comfortably in memory. Dot products have no triangle
// inequality, so dot always runs Lloyd.
Algorithm resolve_algorithm(Algorithm a, Metric m, std::int64_t n, std::int64_t k) {
  if (a != Algorithm::automatic) return a;
  const double bound_bytes = 2.0 * static_cast<double>(n) * static_cast<double>(k);  // float16 bounds
  if (m != Metric::dot && k >= 64 && bound_bytes <= 2.0 * (1ull << 30)) return Algorithm::elkan;
  return Algorithm::lloyd;
}

// The allocation of everything a batch needs, turned into a clear error when memory runs out.
template <class Fn>
auto with_memory_check(Fn fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    throw Error(ErrorKind::out_of_memory, "not enough host memory for this problem size");
  }
}

// sklearn's relocation: each empty cluster takes one of the points farthest from their centroids
// (farthest first, ties by lower index); that point leaves its old cluster's sums.
void relocate_empty(const BatchRows& x, const std::int32_t* labels, const float* dist,
                    std::vector<double>& sums, std::vector<std::int64_t>& counts) {
  const std::int64_t k = static_cast<std::int64_t>(counts.size()), d = x.d;
  std::vector<std::int64_t> empty;
  for (std::int64_t j = 0; j < k; ++j)
    if (counts[j] == 0) empty.push_back(j);
  if (empty.empty()) return;
  std::vector<std::int64_t> order(static_cast<std::size_t>(x.n));
  std::iota(order.begin(), order.end(), 0);
  const std::size_t m = std::min(empty.size(), order.size());
  std::partial_sort(order.begin(), order.begin() + m, order.end(), [&](std::int64_t a, std::int64_t b) {
    return dist[a] > dist[b] || (dist[a] == dist[b] && a < b);
  });
  for (std::size_t e = 0; e < m; ++e) {
    const std::int64_t i = order[e], from = labels[i], to = empty[e];
    const float* row = x.rows + i * x.ld;
    for (std::int64_t c = 0; c < d; ++c) {
      sums[from * d + c] -= row[c];
      sums[to * d + c] = row[c];
    }
    counts[from] -= 1;
    counts[to] = 1;
  }
}

void normalize_centroids(float* c, std::int64_t k, std::int64_t d) { normalize_rows(c, k, d, 1); }

// New centroids from the (reduced) sums: means; a cluster without members keeps its centroid.
// Cosine and dot normalise the means. Returns max_k ||new - old||.
double update_centroids(const std::vector<double>& sums, const std::vector<std::int64_t>& counts,
                        Metric metric, std::int64_t d, const float* old_c, float* new_c) {
  const std::int64_t k = static_cast<std::int64_t>(counts.size());
  for (std::int64_t j = 0; j < k; ++j) {
    if (counts[j] == 0) {
      std::memcpy(new_c + j * d, old_c + j * d, sizeof(float) * d);
      continue;
    }
    const double inv = 1.0 / static_cast<double>(counts[j]);
    for (std::int64_t c = 0; c < d; ++c) new_c[j * d + c] = static_cast<float>(sums[j * d + c] * inv);
  }
  if (metric != Metric::euclidean) normalize_centroids(new_c, k, d);
  double shift = 0;
  for (std::int64_t j = 0; j < k; ++j) {
    double s = 0;
    for (std::int64_t c = 0; c < d; ++c) {
      const double diff = static_cast<double>(new_c[j * d + c]) - old_c[j * d + c];
      s += diff * diff;
    }
    shift = std::max(shift, std::sqrt(s));
  }
  return shift;
}

// The objective of the labels against the new centroids, from the sums alone (no pass over the
// data): euclidean sum ||x||^2 - sum_j n_j ||mu_j||^2; cosine N - sum_j s_j.c_j; dot -sum_j s_j.c_j.
double objective_from_sums(const std::vector<double>& sums, const std::vector<std::int64_t>& counts,
                           const float* c, Metric metric, std::int64_t d, std::int64_t n, double sum_sq_norms) {
  double t = 0;
  for (std::size_t j = 0; j < counts.size(); ++j) {
    if (counts[j] == 0) continue;
    double sc = 0, cc = 0;
    for (std::int64_t q = 0; q < d; ++q) {
      sc += sums[j * d + q] * c[j * d + q];
      cc += static_cast<double>(c[j * d + q]) * c[j * d + q];
    }
    // euclidean: sum over members of ||x - c||^2 = sum ||x||^2 - 2 s.c + n ||c||^2
    t += metric == Metric::euclidean ? static_cast<double>(counts[j]) * cc - 2 * sc : sc;
  }
  if (metric == Metric::euclidean) return std::max(0.0, sum_sq_norms + t);
  return metric == Metric::cosine ? static_cast<double>(n) - t : -t;
}

// sum_i ||x_i||^2 in float64, summed in index order: the same for any thread count.
double sum_sq_norms(const BatchRows& x, int n_threads) {
  std::vector<double> row(static_cast<std::size_t>(x.n));
#pragma omp parallel for num_threads(n_threads) schedule(static)
  for (std::int64_t i = 0; i < x.n; ++i) {
    double r = 0;
    for (std::int64_t c = 0; c < x.d; ++c) r += static_cast<double>(x.rows[i * x.ld + c]) * x.rows[i * x.ld + c];
    row[i] = r;
  }
  return std::accumulate(row.begin(), row.end(), 0.0);
}

// The euclidean distances reported (per point, and summed into the inertia) from the differences
// ||x - c||^2 rather than the expanded form the assignment ranks with, which loses digits for points
// far from the origin (its error grows with ||x||^2 + ||c||^2, not with the distance).
void exact_distances(const BatchRows& x, const float* c, const std::int32_t* labels, Metric metric, float* dist,
                     int n_threads) {
  if (metric != Metric::euclidean) return;
#pragma omp parallel for num_threads(n_threads) schedule(static)
  for (std::int64_t i = 0; i < x.n; ++i) {
    const float* r = x.rows + i * x.ld;
    const float* cj = c + static_cast<std::int64_t>(labels[i]) * x.d;
    float acc = 0.f;
#pragma omp simd reduction(+ : acc)
    for (std::int64_t q = 0; q < x.d; ++q) acc += (r[q] - cj[q]) * (r[q] - cj[q]);
    dist[i] = acc;
  }
}

double fixed_order_total(const float* v, std::int64_t n) {
  double s = 0;
  for (std::int64_t i = 0; i < n; ++i) s += v[i];
  return s;
}

struct BatchOutcome {
  int n_iter = 0;
  bool converged = false;
  double inertia = 0;
};

BatchOutcome fit_batch(const TensorView& x, std::int64_t b, const KMeansOptions& opt, Algorithm algo,
                       int n_threads, std::int32_t* labels, float* centroids, float* distances) {
  Backend& backend = cpu_backend();
  const std::int64_t k = opt.n_clusters, d = x.cols, n = x.rows;
  std::vector<float> staged;
  const BatchRows rows = prepare_batch(x, b, opt.metric, staged, n_threads);

  AssignerConfig cfg{k, opt.metric, algo, n_threads};
  std::unique_ptr<Assigner> assigner = backend.make_assigner(rows, cfg);
  std::vector<float> c(static_cast<std::size_t>(k * d)), next(c.size());
  init_centroids(rows, x, b, opt, *assigner, n_threads, c.data());
  if (opt.metric == Metric::cosine) normalize_centroids(c.data(), k, d);
  std::vector<double> sums(static_cast<std::size_t>(k * d));
  std::vector<std::int64_t> counts(static_cast<std::size_t>(k));
  std::vector<float> dist_storage;
  std::fill(labels, labels + n, -1);
  const bool relocate = opt.empty_clusters == EmptyClusters::relocate;
  const double sq_norms = opt.on_iteration && opt.metric == Metric::euclidean ? sum_sq_norms(rows, n_threads) : 0;

  BatchOutcome out;
  for (int it = 1; it <= opt.max_iter; ++it) {
    const std::int64_t changed = assigner->assign(c.data(), {labels, nullptr, sums.data(), counts.data()});
    // Here the local sums and counts would be all-reduced across devices or machines.
    if (relocate && std::find(counts.begin(), counts.end(), 0) != counts.end()) {
      dist_storage.resize(static_cast<std::size_t>(n));
      assigner->distances(c.data(), labels, dist_storage.data());
      relocate_empty(rows, labels, dist_storage.data(), sums, counts);
    }
    const double shift = update_centroids(sums, counts, opt.metric, d, c.data(), next.data());
    out.n_iter = it;
    if (opt.on_iteration)
      opt.on_iteration({b, it, shift, objective_from_sums(sums, counts, next.data(), opt.metric, d, n, sq_norms),
                        static_cast<int>(changed)});
    if (shift < opt.tol) {
      out.converged = true;
      if (opt.final_assignment) c.swap(next);  // else: the seed returns the centroids before the update
      break;
    }
    c.swap(next);
  }
  float* dist = distances;
  if (!dist) {
    dist_storage.resize(static_cast<std::size_t>(n));
    dist = dist_storage.data();
  }
  if (opt.final_assignment)
    assigner->assign(c.data(), {labels, dist, nullptr, nullptr});
  else
    assigner->distances(c.data(), labels, dist);
  exact_distances(rows, c.data(), labels, opt.metric, dist, n_threads);
  out.inertia = fixed_order_total(dist, n);
  std::memcpy(centroids, c.data(), sizeof(float) * k * d);
  return out;
}

// fit on host data that validate_fit has accepted.
FitSummary fit_host(const TensorView& x, const KMeansOptions& opt, const OutputBuffers& out, int requested_threads) {
  const int n_threads = threads_for_work(opt.n_threads, requested_threads, x.rows, opt.n_clusters, x.cols);
  const Algorithm algo = detail::resolve_algorithm(opt.algorithm, opt.metric, x.rows, opt.n_clusters);
  return detail::with_memory_check([&] {
    FitSummary r;
    r.n_iter.resize(static_cast<std::size_t>(x.batch));
    r.inertia.resize(static_cast<std::size_t>(x.batch));
    r.converged.resize(static_cast<std::size_t>(x.batch));
    const std::int64_t k = opt.n_clusters, d = x.cols, n = x.rows;
    for (std::int64_t b = 0; b < x.batch; ++b) {
      const auto o = detail::fit_batch(x, b, opt, algo, n_threads, out.labels + b * n, out.centroids + b * k * d,
                                       out.distances ? out.distances + b * n : nullptr);
      r.n_iter[b] = o.n_iter, r.inertia[b] = o.inertia, r.converged[b] = o.converged;
    }
    return r;
  });
}

// predict on host data that validate_predict has accepted.
void predict_host(const TensorView& x, const TensorView& centroids, const PredictOptions& opt,
                  const OutputBuffers& out, int requested_threads) {
  const int n_threads = threads_for_work(opt.n_threads, requested_threads, x.rows, centroids.rows, x.cols);
  const Metric metric = opt.metric;
  with_memory_check([&] {
    const std::int64_t k = centroids.rows, d = x.cols;
    std::vector<float> staged, c(static_cast<std::size_t>(k * d)), dist;
    if (!out.distances) dist.resize(static_cast<std::size_t>(x.rows));
    for (std::int64_t b = 0; b < x.batch; ++b) {
      const BatchRows rows = prepare_batch(x, b, metric, staged, n_threads);
      copy_batch(centroids, centroids.batch == 1 ? 0 : b, c.data());
      if (metric == Metric::cosine) normalize_centroids(c.data(), k, d);
      auto assigner = cpu_backend().make_assigner(rows, {k, metric, Algorithm::lloyd, n_threads});
      std::int32_t* labels = out.labels + b * x.rows;
      std::fill(labels, labels + x.rows, -1);
      float* d_out = out.distances ? out.distances + b * x.rows : dist.data();
      assigner->assign(c.data(), {labels, d_out, nullptr, nullptr});
      exact_distances(rows, c.data(), labels, metric, d_out, n_threads);
    }
    return 0;
  });
}

}  // namespace
// Host results are computed into the library's own buffers and reach the caller's in one copy at
// the end, so an error in any batch (out of memory in batch 3, an exception thrown by
// on_iteration) leaves the caller's buffers as they were.
struct StagedOutputs {
  std::vector<std::int32_t> labels;
  std::vector<float> centroids, distances;

  StagedOutputs(const OutputBuffers& out, std::int64_t points, std::int64_t centroid_values) {
    with_memory_check([&] {
      labels.resize(static_cast<std::size_t>(points));
      if (out.centroids) centroids.resize(static_cast<std::size_t>(centroid_values));
      if (out.distances) distances.resize(static_cast<std::size_t>(points));
      return 0;
    });
  }
  OutputBuffers buffers() {
    return {labels.data(), centroids.empty() ? nullptr : centroids.data(), distances.empty() ? nullptr : distances.data()};
  }
  void copy_to(const OutputBuffers& out) const {
    std::copy(labels.begin(), labels.end(), out.labels);
    if (out.centroids) std::copy(centroids.begin(), centroids.end(), out.centroids);
    if (out.distances) std::copy(distances.begin(), distances.end(), out.distances);
  }
};

}  // namespace detail

// Every entry point validates before it allocates or writes anything: on error the caller's
// buffers are untouched and no output-sized allocation is attempted.
FitSummary fit_into(const TensorView& x, const KMeansOptions& opt, const OutputBuffers& out) {
  const int n_threads = detail::resolve_threads(opt.n_threads);
  detail::validate_fit(x, opt, n_threads);
  FK_CHECK(out.labels != nullptr && out.centroids != nullptr, invalid_argument,
           "fit_into needs labels and centroids buffers: got a null pointer");
  if (x.device.type == DeviceType::cuda) return detail::cuda_fit_into(x, opt, out);
  detail::StagedOutputs staged(out, x.batch * x.rows, x.batch * opt.n_clusters * x.cols);
  FitSummary s = detail::fit_host(x, opt, staged.buffers(), n_threads);
  staged.copy_to(out);
  return s;
}

KMeansResult fit(const TensorView& x, const KMeansOptions& opt) {
  if (x.device.type == DeviceType::cuda) {
    detail::validate_fit(x, opt, 1);
    return detail::cuda_fit(x, opt);
  }
  const int n_threads = detail::resolve_threads(opt.n_threads);
  detail::validate_fit(x, opt, n_threads);
  KMeansResult r;
  r.batch = x.batch, r.n = x.rows, r.k = opt.n_clusters, r.d = x.cols;
  detail::with_memory_check([&] {
    r.labels.resize(static_cast<std::size_t>(std::max<std::int64_t>(0, x.batch * x.rows)));
    r.centroids.resize(static_cast<std::size_t>(std::max<std::int64_t>(0, x.batch * r.k * r.d)));
    return 0;
  });
  FitSummary s = detail::fit_host(x, opt, {r.labels.data(), r.centroids.data(), nullptr}, n_threads);
  r.n_iter = std::move(s.n_iter), r.inertia = std::move(s.inertia), r.converged = std::move(s.converged);
  return r;
}

void predict_into(const TensorView& x, const TensorView& centroids, const PredictOptions& opt,
                  const OutputBuffers& out) {
  FK_CHECK(opt.n_threads >= 0, invalid_argument,
           "n_threads = " << opt.n_threads << " is not allowed: expected 0 (all cores) or a positive count");
  const int n_threads = detail::resolve_threads(opt.n_threads);
  detail::validate_predict(x, centroids, opt.metric, n_threads);
  FK_CHECK(out.labels != nullptr, invalid_argument, "predict_into needs a labels buffer: got a null pointer");
  if (x.device.type == DeviceType::cuda) return detail::cuda_predict_into(x, centroids, opt, out);
  detail::StagedOutputs staged({out.labels, nullptr, out.distances}, x.batch * x.rows, 0);
  detail::predict_host(x, centroids, opt, staged.buffers(), n_threads);
  staged.copy_to({out.labels, nullptr, out.distances});
}

PredictResult predict(const TensorView& x, const TensorView& centroids, Metric metric, int n_threads) {
  PredictOptions opt;
  opt.metric = metric, opt.n_threads = n_threads;
  FK_CHECK(n_threads >= 0, invalid_argument,
           "n_threads = " << n_threads << " is not allowed: expected 0 (all cores) or a positive count");
  if (x.device.type == DeviceType::cuda) {
    detail::validate_predict(x, centroids, metric, 1);
    return detail::cuda_predict(x, centroids, opt);
  }
  const int threads = detail::resolve_threads(n_threads);
  detail::validate_predict(x, centroids, metric, threads);
  PredictResult r;
  r.batch = x.batch, r.n = x.rows;
  detail::with_memory_check([&] {
    r.labels.resize(static_cast<std::size_t>(std::max<std::int64_t>(0, x.batch * x.rows)));
    r.distances.resize(r.labels.size());
    return 0;
  });
  detail::predict_host(x, centroids, opt, {r.labels.data(), nullptr, r.distances.data()}, threads);
  return r;
}

bool cuda_available() { return detail::cuda_device_count() > 0; }

}  // namespace flashkmeans
