// Test support, part 2: GoogleTest checks of library output against the float64 reference.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include <flashkmeans/errors.hpp>

#include "printers.hpp"
#include "reference.hpp"

namespace fkt {

/// Checks, for batch b, that every label is (up to float32 rounding) a nearest centroid among the
/// k rows of c, and returns sums for an inertia check: the float64 total distance of the points to
/// their labelled centroids, the total of the absolute distances and the total error bound.
struct LabelCheck {
  double total = 0, abs_total = 0, err_total = 0;
  std::int64_t bad = 0;
};

/// The error bound of a score comparison whose products round both operands to a precision of unit
/// roundoff u_in (0: float32 products, the CPU backend's bound alone). tf32 rounds x and c; float16
/// and bfloat16 round the float32 centroids: a 2u |x| |c| perturbation of x.c, doubled for
/// euclidean's 2 x.c and again for a comparison of two scores.
inline double label_tolerance(Metric m, const double* x, double cmax2, std::int64_t d, double u_in = 0) {
  const double x2 = dot(x, x, d);
  // euclidean: 4u (|x|^2 + |c|^2) >= 8u |x| |c|, and also covers a rounded ||x||^2.
  const double rounding = m == Metric::euclidean ? 4.0 * u_in * (x2 + cmax2) : 8.0 * u_in * std::sqrt(x2 * cmax2);
  return score_tolerance(m, x, cmax2, d) + rounding;
}

inline LabelCheck check_labels_near_optimal(Metric m, const std::vector<double>& x, std::int64_t n, std::int64_t d,
                                            const std::vector<double>& c, std::int64_t k,
                                            const std::int32_t* labels, const std::string& what,
                                            double u_in = 0) {
  LabelCheck out;
  const double cmax2 = max_sq_norm(c.data(), k, d);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int32_t l = labels[i];
    if (l < 0 || l >= k) {
      if (out.bad++ < 5) ADD_FAILURE() << what << ": label " << l << " of point " << i << " is out of [0, " << k << ")";
      continue;
    }
    double best = std::numeric_limits<double>::infinity();
    std::int64_t arg = 0;
    for (std::int64_t j = 0; j < k; ++j) {
      const double s = distance(m, &x[i * d], &c[j * d], d);
      if (s < best) best = s, arg = j;
    }
    const double mine = distance(m, &x[i * d], &c[l * d], d);
    const double tol = label_tolerance(m, &x[i * d], cmax2, d, u_in);
    if (mine - best > tol && out.bad++ < 5)
      ADD_FAILURE() << what << ": point " << i << " has label " << l << " at distance " << mine
                    << " but centroid " << arg << " is at " << best << " (tolerance " << tol << ")";
    out.total += mine;
    out.abs_total += std::fabs(mine);
    out.err_total += tol;
  }
  EXPECT_EQ(out.bad, 0) << what << ": labels that are not nearest centroids";
  return out;
}

/// The library's inertia (float32 distances summed in float64) against the float64 recomputation.
inline void check_inertia(double inertia, const LabelCheck& ref, const std::string& what) {
  EXPECT_NEAR(inertia, ref.total, 1e-4 * ref.abs_total + ref.err_total) << what << ": inertia";
}

/// Checks that the k centroids c (float32 from the library) are the means of their members under
/// labels (normalised for cosine and dot); a cluster without members must hold empty_expected[j]
/// (its previous centroid, normalised for cosine and dot). Tolerance: 1e-4 of the members' mean
/// absolute coordinate (float32 partial sums), plus the float32 rounding of the result.
inline void check_means(Metric m, const std::vector<double>& x, std::int64_t n, std::int64_t d,
                        const float* c, std::int64_t k, const std::int32_t* labels,
                        const std::vector<double>& empty_expected, const std::string& what) {
  std::vector<double> sum(static_cast<std::size_t>(k * d), 0.0), abs_sum(sum.size(), 0.0);
  std::vector<std::int64_t> count(static_cast<std::size_t>(k), 0);
  for (std::int64_t i = 0; i < n; ++i) {
    ASSERT_GE(labels[i], 0) << what;
    ASSERT_LT(labels[i], k) << what;
    ++count[labels[i]];
    for (std::int64_t q = 0; q < d; ++q) {
      sum[labels[i] * d + q] += x[i * d + q];
      abs_sum[labels[i] * d + q] += std::fabs(x[i * d + q]);
    }
  }
  int reported = 0;
  for (std::int64_t j = 0; j < k; ++j) {
    std::vector<double> mean(static_cast<std::size_t>(d));
    double norm = 1.0;
    if (count[j] == 0) {
      for (std::int64_t q = 0; q < d; ++q) mean[q] = empty_expected[j * d + q];
    } else {
      for (std::int64_t q = 0; q < d; ++q) mean[q] = sum[j * d + q] / static_cast<double>(count[j]);
      if (m != Metric::euclidean) {
        norm = std::max(std::sqrt(dot(mean.data(), mean.data(), d)), 1e-12);
        for (double& v : mean) v /= norm;
      }
    }
    for (std::int64_t q = 0; q < d; ++q) {
      const double scale = count[j] ? abs_sum[j * d + q] / static_cast<double>(count[j]) / norm : 0.0;
      const double tol = 1e-4 * scale + 4 * kU * std::max(1.0, std::fabs(mean[q]));
      if (std::fabs(c[j * d + q] - mean[q]) > tol && reported++ < 5)
        ADD_FAILURE() << what << ": centroid " << j << " (" << count[j] << " members) coordinate " << q << " is "
                      << c[j * d + q] << ", expected " << mean[q] << " +- " << tol;
    }
  }
  EXPECT_EQ(reported, 0) << what << ": centroids that are not the means of their members";
}

/// Fraction of equal entries.
inline double agreement(const std::int32_t* a, const std::int32_t* b, std::int64_t n) {
  std::int64_t same = 0;
  for (std::int64_t i = 0; i < n; ++i) same += a[i] == b[i];
  return n ? static_cast<double>(same) / static_cast<double>(n) : 1.0;
}

/// Every element of a result compared bitwise (floats by bit pattern, so -0 != +0 and NaN == NaN).
inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

inline void expect_identical(const flashkmeans::KMeansResult& a, const flashkmeans::KMeansResult& b,
                             const std::string& what) {
  EXPECT_EQ(a.labels, b.labels) << what << ": labels differ";
  EXPECT_TRUE(same_bits(a.centroids, b.centroids)) << what << ": centroids differ";
  EXPECT_EQ(a.n_iter, b.n_iter) << what << ": n_iter differs";
  EXPECT_EQ(a.converged, b.converged) << what << ": converged differs";
  ASSERT_EQ(a.inertia.size(), b.inertia.size()) << what;
  for (std::size_t i = 0; i < a.inertia.size(); ++i)
    EXPECT_EQ(std::memcmp(&a.inertia[i], &b.inertia[i], sizeof(double)), 0)
        << what << ": inertia of batch " << i << " differs: " << a.inertia[i] << " vs " << b.inertia[i];
}

inline const char* name(DType t) { return flashkmeans::to_string(t); }

inline const char* kind_name(flashkmeans::ErrorKind k) {
  using flashkmeans::ErrorKind;
  switch (k) {
    case ErrorKind::invalid_argument: return "invalid_argument";
    case ErrorKind::invalid_type: return "invalid_type";
    case ErrorKind::out_of_memory: return "out_of_memory";
    case ErrorKind::unsupported: return "unsupported";
    case ErrorKind::internal: return "internal";
  }
  return "?";
}

/// Runs fn, which must throw flashkmeans::Error of kind with every word in its message.
inline void expect_error(const std::function<void()>& fn, flashkmeans::ErrorKind kind,
                         std::initializer_list<const char*> words) {
  try {
    fn();
  } catch (const flashkmeans::Error& e) {
    EXPECT_EQ(kind_name(e.kind()), std::string(kind_name(kind))) << "message: " << e.what();
    const std::string msg = e.what();
    for (const char* w : words) EXPECT_NE(msg.find(w), std::string::npos) << "\"" << w << "\" not in: " << msg;
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a std::exception that is not flashkmeans::Error: " << e.what();
    return;
  } catch (...) {
    ADD_FAILURE() << "threw something that is not a std::exception";
    return;
  }
  ADD_FAILURE() << "did not throw";
}

}  // namespace fkt
