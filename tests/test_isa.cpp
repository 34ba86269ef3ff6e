// A small fit and predict under the instruction set FLASHKMEANS_ISA selects. CTest runs this
// binary once per value (avx512, avx2, generic, unset): the choice is made once per process.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "checks.hpp"
#include "cpu/simd_kernels.hpp"
#include "reference.hpp"

namespace fk = flashkmeans;
using fk::Algorithm;
using fk::Metric;

namespace {

// The best instruction set at or below the cap that this CPU has (unset: AVX2 rather than
// AVX-512 on AMD, whose AVX-512 parts split 512-bit FMAs in two).
std::string expected_isa() {
  const char* order[] = {"avx512", "avx2", "generic"};
  const char* cap = std::getenv("FLASHKMEANS_ISA");
  int from = 0;
  for (int i = 0; i < 3; ++i)
    if (cap && std::strcmp(cap, order[i]) == 0) from = i;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (!(cap && *cap) && __builtin_cpu_is("amd") && flashkmeans::cpu::simd_by_name("avx2")) from = 1;
#endif
  for (int i = from; i < 3; ++i)
    if (flashkmeans::cpu::simd_by_name(order[i])) return order[i];
  return "none";
}

TEST(Isa, CapIsRespected) {
  const char* cap = std::getenv("FLASHKMEANS_ISA");
  SCOPED_TRACE(std::string("FLASHKMEANS_ISA=") + (cap ? cap : "(unset)"));
  EXPECT_EQ(std::string(fk::cpu_isa()), expected_isa());
  EXPECT_STREQ(fk::cpu_isa(), flashkmeans::cpu::simd().name);
}

TEST(Isa, FitAndPredictMatchReference) {
  SCOPED_TRACE(std::string("running ") + fk::cpu_isa());
  // Shapes that reach the panel kernel, the few-centroid kernel (K <= 12, D >= 64) and Elkan.
  struct Shape {
    std::int64_t n, d, k;
  };
  for (const Shape s : {Shape{517, 23, 11}, Shape{301, 67, 5}, Shape{611, 13, 37}})
    for (Metric m : {Metric::euclidean, Metric::cosine, Metric::dot})
      for (Algorithm a : {Algorithm::lloyd, Algorithm::elkan}) {
        if (m == Metric::dot && a == Algorithm::elkan) continue;
        const std::string what = std::to_string(s.n) + "x" + std::to_string(s.d) + " k=" + std::to_string(s.k) + " " +
                                 fk::to_string(m) + " " + fk::to_string(a);
        SCOPED_TRACE(what);
        std::mt19937 g(101);
        const fkt::Array x = fkt::make_array(fkt::blobs(g, 1, s.n, s.d, s.k), 1, s.n, s.d, fk::DType::float32);
        const fkt::Array init = fkt::first_rows(x, s.k);
        fk::KMeansOptions o;
        o.n_clusters = s.k;
        o.max_iter = 4;
        o.metric = m;
        o.algorithm = a;
        o.init = fk::Init::given;
        o.init_centroids = init.view();
        o.empty_clusters = fk::EmptyClusters::keep;
        o.n_threads = 2;
        const fk::KMeansResult r = fk::fit(x.view(), o);
        o.final_assignment = false;
        const fk::KMeansResult r_seed = fk::fit(x.view(), o);
        o.final_assignment = true;
        o.max_iter = 3;
        const fk::KMeansResult r_prev = fk::fit(x.view(), o);

        const std::vector<double> xb = fkt::prepared(x, 0, m);
        const std::vector<double> cb = fkt::to_double(r.centroids.data(), r.centroids.size());
        const fkt::LabelCheck lc = fkt::check_labels_near_optimal(m, xb, s.n, s.d, cb, s.k, r.labels.data(), what);
        fkt::check_inertia(r.inertia[0], lc, what);
        std::vector<double> prev = fkt::to_double(r_prev.centroids.data(), r_prev.centroids.size());
        if (m != Metric::euclidean) fkt::normalize_rows(prev.data(), s.k, s.d);
        fkt::check_means(m, xb, s.n, s.d, r_seed.centroids.data(), s.k, r_seed.labels.data(), prev, what);
        const fkt::Run ref = fkt::lloyd(m, xb, s.n, init.values, s.k, s.d, 4);
        EXPECT_GE(fkt::agreement(r.labels.data(), ref.labels.data(), s.n), 0.99);

        const fk::PredictResult p = fk::predict(x.view(), fk::TensorView::matrix(r.centroids.data(), s.k, s.d), m, 2);
        std::vector<double> pc = cb;
        if (m == Metric::cosine) fkt::normalize_rows(pc.data(), s.k, s.d);
        const fkt::LabelCheck pl = fkt::check_labels_near_optimal(m, xb, s.n, s.d, pc, s.k, p.labels.data(), what);
        double total = 0;
        for (float v : p.distances) total += v;
        fkt::check_inertia(total, pl, what + " predict");
      }
}

}  // namespace
