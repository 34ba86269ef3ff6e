// The SIMD kernels of every instruction set this CPU has (src/cpu/simd_kernels.hpp), against
// scalar float64 code on odd sizes. Every buffer ends right before an inaccessible page, so a
// kernel that reads or writes one element too far crashes the test.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cpu/simd_kernels.hpp"
#include "reference.hpp"

namespace cpu = flashkmeans::cpu;
using cpu::Bound16;
using cpu::bound16_down;
using cpu::bound16_value;
using cpu::kBound16Inf;

namespace {

// count elements of T whose end touches a PROT_NONE page.
template <class T>
class Guarded {
 public:
  explicit Guarded(std::size_t count) : count_(count) {
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    const std::size_t bytes = count * sizeof(T);
    pages_ = (bytes + page - 1) / page + 1;
    void* p = mmap(nullptr, pages_ * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    base_ = static_cast<char*>(p);
    if (mprotect(base_ + (pages_ - 1) * page, page, PROT_NONE) != 0) throw std::bad_alloc();
    data_ = reinterpret_cast<T*>(base_ + (pages_ - 1) * page - bytes);
    page_ = page;
  }
  Guarded(const std::vector<T>& v) : Guarded(v.size()) { std::copy(v.begin(), v.end(), data_); }
  ~Guarded() { munmap(base_, pages_ * page_); }
  Guarded(const Guarded&) = delete;
  Guarded& operator=(const Guarded&) = delete;
  T* data() { return data_; }
  T& operator[](std::size_t i) { return data_[i]; }
  std::size_t size() const { return count_; }

 private:
  std::size_t count_, pages_ = 0, page_ = 0;
  char* base_ = nullptr;
  T* data_ = nullptr;
};

class Kernels : public testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    k_ = cpu::simd_by_name(GetParam());
    if (!k_) GTEST_SKIP() << GetParam() << " is not available on this CPU or in this build";
  }
  const cpu::SimdKernels* k_ = nullptr;
};

std::vector<float> random_floats(std::mt19937& g, std::size_t count) {
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  std::vector<float> v(count);
  for (float& f : v) f = u(g);
  return v;
}

// Scores bias[j] + alpha * x.c_j in float64, with a bound on the float32 error of the kernel's.
struct Scores {
  std::vector<double> s, err;  // (n, k)
};

Scores reference_scores(const float* x, std::int64_t ldx, std::int64_t n, std::int64_t d, const float* c,
                        const float* bias, std::int64_t k, float alpha) {
  Scores r;
  r.s.resize(static_cast<std::size_t>(n * k));
  r.err.resize(r.s.size());
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < k; ++j) {
      double dot = 0, mag = 0;
      for (std::int64_t q = 0; q < d; ++q) {
        dot += static_cast<double>(x[i * ldx + q]) * c[j * d + q];
        mag += std::fabs(static_cast<double>(x[i * ldx + q]) * c[j * d + q]);
      }
      const double s = bias[j] + alpha * dot;
      r.s[i * k + j] = s;
      r.err[i * k + j] = (static_cast<double>(d) + 2) * fkt::kU * std::fabs(alpha) * mag +
                         2 * fkt::kU * (std::fabs(bias[j]) + std::fabs(s)) + 1e-30;
    }
  return r;
}

// Euclidean-style (bias ||c||^2, alpha -2) and dot-style (bias 0, alpha -1) epilogues.
std::vector<float> make_bias(const std::vector<float>& c, std::int64_t k, std::int64_t d, bool euclidean) {
  std::vector<float> b(static_cast<std::size_t>(k), 0.f);
  if (euclidean)
    for (std::int64_t j = 0; j < k; ++j) {
      double s = 0;
      for (std::int64_t q = 0; q < d; ++q) s += static_cast<double>(c[j * d + q]) * c[j * d + q];
      b[j] = static_cast<float>(s);
    }
  return b;
}

void check_argmin(const Scores& ref, std::int64_t n, std::int64_t k, const std::int32_t* labels, const float* best,
                  const std::string& what) {
  int bad = 0;
  for (std::int64_t i = 0; i < n && bad < 5; ++i) {
    std::int64_t arg = 0;
    for (std::int64_t j = 1; j < k; ++j)
      if (ref.s[i * k + j] < ref.s[i * k + arg]) arg = j;
    const std::int32_t l = labels[i];
    if (l < 0 || l >= k) {
      ++bad;
      ADD_FAILURE() << what << ": label " << l << " of row " << i << " out of range";
      continue;
    }
    const double gap = ref.s[i * k + l] - ref.s[i * k + arg];
    if (gap > ref.err[i * k + l] + ref.err[i * k + arg]) {
      ++bad;
      ADD_FAILURE() << what << ": row " << i << " label " << l << " (score " << ref.s[i * k + l] << "), best " << arg
                    << " (score " << ref.s[i * k + arg] << ")";
    }
    if (std::fabs(best[i] - ref.s[i * k + l]) > ref.err[i * k + l]) {
      ++bad;
      ADD_FAILURE() << what << ": row " << i << " best score " << best[i] << ", expected " << ref.s[i * k + l];
    }
  }
}

const std::int64_t kNs[] = {1, 2, 5, 7, 13, 37, 101};
const std::int64_t kDs[] = {1, 3, 7, 16, 17, 33, 64, 67};
const std::int64_t kKs[] = {1, 2, 5, 7, 13, 33, 36, 50, 70};  // 33, 36, 50: last panels of 1 to 4 centroids

TEST_P(Kernels, Metadata) {
  EXPECT_STREQ(k_->name, GetParam());
  EXPECT_GE(k_->panel_width(), 1);
  EXPECT_GE(k_->row_block(), 1);
}

// pack_panels + argmin_rows against float64, and score_rows for every score.
TEST_P(Kernels, ArgminAndScoreRows) {
  std::mt19937 g(91);
  const std::int64_t pw = k_->panel_width();
  for (std::int64_t n : kNs)
    for (std::int64_t d : kDs)
      for (std::int64_t k : kKs)
        for (bool euclid : {true, false}) {
          const std::string what = std::string(GetParam()) + " n=" + std::to_string(n) + " d=" + std::to_string(d) +
                                   " k=" + std::to_string(k) + (euclid ? " euclidean" : " dot");
          const std::int64_t ldx = (n % 2) ? d : d + 3;  // also rows with a gap
          const std::vector<float> xs = random_floats(g, static_cast<std::size_t>((n - 1) * ldx + d));
          const std::vector<float> cs = random_floats(g, static_cast<std::size_t>(k * d));
          const std::int64_t padded = (k + pw - 1) / pw * pw;
          std::vector<float> bias = make_bias(cs, k, d, euclid);
          bias.resize(static_cast<std::size_t>(padded), std::numeric_limits<float>::infinity());
          const float alpha = euclid ? -2.f : -1.f;
          Guarded<float> x(xs), c(cs), b(bias), panels(static_cast<std::size_t>(padded * d));
          Guarded<float> scratch(static_cast<std::size_t>(k_->row_block() * d)), best(static_cast<std::size_t>(n));
          Guarded<std::int32_t> labels(static_cast<std::size_t>(n));
          k_->pack_panels(c.data(), k, d, d, panels.data());
          const Scores ref = reference_scores(xs.data(), ldx, n, d, cs.data(), bias.data(), k, alpha);
          k_->argmin_rows(x.data(), ldx, n, d, panels.data(), b.data(), k, alpha, labels.data(), best.data(),
                          scratch.data());
          check_argmin(ref, n, k, labels.data(), best.data(), what + " argmin_rows");

          // score_rows: exactly k scores per row; ldo = k (guarded) and ldo = k + 3 (sentinels).
          Guarded<float> out(static_cast<std::size_t>(n * k));
          k_->score_rows(x.data(), ldx, n, d, panels.data(), b.data(), k, alpha, out.data(), k, scratch.data());
          std::vector<float> wide(static_cast<std::size_t>(n * (k + 3)), 12345.f);
          k_->score_rows(x.data(), ldx, n, d, panels.data(), b.data(), k, alpha, wide.data(), k + 3, scratch.data());
          int bad = 0;
          for (std::int64_t i = 0; i < n; ++i) {
            for (std::int64_t j = 0; j < k; ++j) {
              const double want = ref.s[i * k + j], tol = ref.err[i * k + j];
              if ((std::fabs(out[i * k + j] - want) > tol || wide[i * (k + 3) + j] != out[i * k + j]) && bad++ < 3)
                ADD_FAILURE() << what << " score_rows(" << i << ", " << j << ") = " << out[i * k + j] << " / "
                              << wide[i * (k + 3) + j] << ", expected " << want;
            }
            for (std::int64_t j = k; j < k + 3; ++j)
              if (wide[i * (k + 3) + j] != 12345.f && bad++ < 3)
                ADD_FAILURE() << what << " score_rows wrote column " << j << " of row " << i;
          }
        }
}

TEST_P(Kernels, ArgminRowsFew) {
  std::mt19937 g(92);
  for (std::int64_t n : kNs)
    for (std::int64_t d : kDs)
      for (std::int64_t k : kKs)
        for (bool euclid : {true, false}) {
          const std::string what = std::string(GetParam()) + " n=" + std::to_string(n) + " d=" + std::to_string(d) +
                                   " k=" + std::to_string(k) + (euclid ? " euclidean" : " dot");
          const std::int64_t ldx = (n % 2) ? d : d + 5;
          const std::vector<float> xs = random_floats(g, static_cast<std::size_t>((n - 1) * ldx + d));
          const std::vector<float> cs = random_floats(g, static_cast<std::size_t>(k * d));
          const std::vector<float> bias = make_bias(cs, k, d, euclid);  // not padded
          const float alpha = euclid ? -2.f : -1.f;
          Guarded<float> x(xs), c(cs), b(bias), best(static_cast<std::size_t>(n));
          Guarded<std::int32_t> labels(static_cast<std::size_t>(n));
          k_->argmin_rows_few(x.data(), ldx, n, d, c.data(), b.data(), k, alpha, labels.data(), best.data(), nullptr,
                             nullptr);
          check_argmin(reference_scores(xs.data(), ldx, n, d, cs.data(), bias.data(), k, alpha), n, k, labels.data(),
                       best.data(), what + " argmin_rows_few");
        }
}

// With sums: every row is added to its label's sums and counted; nothing else is touched.
TEST_P(Kernels, ArgminRowsFewAccumulates) {
  std::mt19937 g(96);
  // n past 96 rows: the rows reach the sums in several groups; k up to 64 sums them grouped by
  // label, k = 70 row by row.
  for (std::int64_t n : {1, 5, 17, 40, 97, 301})
    for (std::int64_t d : {64, 67, 130})
      for (std::int64_t k : {1, 3, 10, 16, 33, 64, 70}) {
        const std::string what = std::string(GetParam()) + " n=" + std::to_string(n) + " d=" + std::to_string(d) +
                                 " k=" + std::to_string(k);
        const std::int64_t ldx = d + 3;
        const std::vector<float> xs = random_floats(g, static_cast<std::size_t>((n - 1) * ldx + d));
        const std::vector<float> cs = random_floats(g, static_cast<std::size_t>(k * d));
        const std::vector<float> bias = make_bias(cs, k, d, true);
        std::vector<float> start = random_floats(g, static_cast<std::size_t>(k * d));  // sums add onto these
        Guarded<float> x(xs), c(cs), b(bias), best(static_cast<std::size_t>(n)), sums(start);
        Guarded<std::int32_t> labels(static_cast<std::size_t>(n));
        Guarded<std::int64_t> counts(std::vector<std::int64_t>(static_cast<std::size_t>(k), 7));
        k_->argmin_rows_few(x.data(), ldx, n, d, c.data(), b.data(), k, -2.f, labels.data(), best.data(), sums.data(),
                           counts.data());
        // Each cluster's rows added in row order, in float32: the same sums bit for bit.
        std::vector<float> want(start);
        std::vector<std::int64_t> want_counts(static_cast<std::size_t>(k), 7);
        for (std::int64_t i = 0; i < n; ++i) {
          ASSERT_GE(labels[i], 0) << what;
          ASSERT_LT(labels[i], k) << what;
          ++want_counts[labels[i]];
          for (std::int64_t q = 0; q < d; ++q) want[labels[i] * d + q] += xs[i * ldx + q];
        }
        for (std::int64_t j = 0; j < k; ++j) {
          EXPECT_EQ(counts[j], want_counts[j]) << what << ", cluster " << j;
          for (std::int64_t q = 0; q < d; ++q) ASSERT_EQ(sums[j * d + q], want[j * d + q]) << what << ", cluster " << j;
        }
      }
}

// Exactly equal centroids give exactly equal scores; the first index must win, whether the
// duplicates share a lane of different panels, sit in different lanes, or in different groups.
TEST_P(Kernels, TiesGoToTheFirstIndex) {
  std::mt19937 g(93);
  const std::int64_t pw = k_->panel_width(), d = 19, n = 23;
  const std::int64_t k = 3 * pw + 5;
  const std::pair<std::int64_t, std::int64_t> pairs[] = {{2, 2 + pw}, {3, 2 * pw + 6}, {1, k - 1}, {0, 5}};
  for (auto [first, second] : pairs) {
    std::vector<float> cs = random_floats(g, static_cast<std::size_t>(k * d));
    std::copy(cs.begin() + first * d, cs.begin() + (first + 1) * d, cs.begin() + second * d);
    std::vector<float> xs(static_cast<std::size_t>(n * d));
    std::normal_distribution<float> nd(0.f, 1e-3f);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t q = 0; q < d; ++q) xs[i * d + q] = cs[first * d + q] + nd(g);
    for (bool euclid : {true, false}) {
      std::vector<float> bias = make_bias(cs, k, d, euclid);
      const float alpha = euclid ? -2.f : -1.f;
      std::vector<std::int32_t> lab(static_cast<std::size_t>(n));
      std::vector<float> best(static_cast<std::size_t>(n));
      k_->argmin_rows_few(xs.data(), d, n, d, cs.data(), bias.data(), k, alpha, lab.data(), best.data(), nullptr, nullptr);
      std::vector<std::int32_t> lab_few = lab;
      const std::int64_t padded = (k + pw - 1) / pw * pw;
      bias.resize(static_cast<std::size_t>(padded), std::numeric_limits<float>::infinity());
      std::vector<float> panels(static_cast<std::size_t>(padded * d)), scratch(static_cast<std::size_t>(k_->row_block() * d));
      k_->pack_panels(cs.data(), k, d, d, panels.data());
      k_->argmin_rows(xs.data(), d, n, d, panels.data(), bias.data(), k, alpha, lab.data(), best.data(), scratch.data());
      for (std::int64_t i = 0; i < n; ++i) {
        // The second of two equal centroids can never win; for euclidean the first one is nearest.
        EXPECT_NE(lab[i], second) << "argmin_rows, duplicates " << first << " and " << second;
        EXPECT_NE(lab_few[i], second) << "argmin_rows_few, duplicates " << first << " and " << second;
        if (euclid) {
          EXPECT_EQ(lab[i], first) << "argmin_rows, duplicates " << first << " and " << second;
          EXPECT_EQ(lab_few[i], first) << "argmin_rows_few, duplicates " << first << " and " << second;
        }
      }
    }
  }
}

TEST_P(Kernels, Dot) {
  std::mt19937 g(94);
  for (std::int64_t d = 0; d <= 300; d += (d < 80 ? 1 : 37)) {
    const std::vector<float> as = random_floats(g, static_cast<std::size_t>(d));
    const std::vector<float> cs = random_floats(g, static_cast<std::size_t>(d));
    Guarded<float> a(as), c(cs);
    double want = 0, mag = 0;
    for (std::int64_t q = 0; q < d; ++q) {
      want += static_cast<double>(as[q]) * cs[q];
      mag += std::fabs(static_cast<double>(as[q]) * cs[q]);
    }
    const double tol = (static_cast<double>(d) + 1) * fkt::kU * mag + 1e-30;
    EXPECT_NEAR(k_->dot(a.data(), c.data(), d), want, tol) << "dot, d = " << d;
  }
}

TEST_P(Kernels, AllFinite) {
  std::mt19937 g(95);
  for (std::int64_t n = 0; n <= 70; ++n) {
    const std::vector<float> base = random_floats(g, static_cast<std::size_t>(n));
    {
      Guarded<float> a(base);
      EXPECT_TRUE(k_->all_finite(a.data(), n)) << "n = " << n;
    }
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                      -std::numeric_limits<float>::infinity()})
      for (std::int64_t at = 0; at < n; at += 7) {
        std::vector<float> v = base;
        v[static_cast<std::size_t>(at)] = bad;
        Guarded<float> a(v);
        EXPECT_FALSE(k_->all_finite(a.data(), n)) << "n = " << n << ", bad value at " << at;
      }
  }
}

// candidate_dots: x . c_j for a list of centroid rows, in list order.
TEST_P(Kernels, CandidateDots) {
  std::mt19937 g(97);
  for (std::int64_t d : {1, 3, 8, 17, 33, 67, 130})
    for (std::int64_t m : {0, 1, 3, 4, 5, 8, 9, 13}) {
      const std::int64_t k = 20;
      const std::vector<float> xs = random_floats(g, static_cast<std::size_t>(d));
      const std::vector<float> cs = random_floats(g, static_cast<std::size_t>(k * d));
      std::vector<std::int32_t> list(static_cast<std::size_t>(m));
      std::uniform_int_distribution<std::int32_t> pick(0, static_cast<std::int32_t>(k - 1));
      for (auto& j : list) j = pick(g);
      if (m > 0) list.back() = static_cast<std::int32_t>(k - 1);  // the last row of c, up to the guard page
      Guarded<float> x(xs), c(cs), out(static_cast<std::size_t>(m));
      Guarded<std::int32_t> cand(list);
      k_->candidate_dots(x.data(), c.data(), d, cand.data(), m, out.data());
      for (std::int64_t t = 0; t < m; ++t) {
        double want = 0, mag = 0;
        for (std::int64_t q = 0; q < d; ++q) {
          want += static_cast<double>(xs[q]) * cs[list[t] * d + q];
          mag += std::fabs(static_cast<double>(xs[q]) * cs[list[t] * d + q]);
        }
        EXPECT_NEAR(out[t], want, (static_cast<double>(d) + 1) * fkt::kU * mag + 1e-30)
            << "d = " << d << ", m = " << m << ", t = " << t;
      }
    }
}

// Float16 bounds: the largest float16 at or below the value; past the range (+inf too) the largest
// finite float16, at or below zero (and NaN) zero; exact round trips for every finite float16.
TEST(Bound16, RoundsDown) {
  for (std::uint32_t h = 0; h < 0x7c00; ++h) {
    const float v = bound16_value(static_cast<Bound16>(h));
    ASSERT_EQ(bound16_down(v), h) << "float16 " << h;
    ASSERT_LT(v, bound16_value(static_cast<Bound16>(h + 1))) << "float16 " << h;
    if (h > 0) {
      ASSERT_EQ(bound16_down(std::nextafter(v, 0.f)), h - 1) << "just below float16 " << h;
    }
  }
  EXPECT_EQ(bound16_value(0x7bff), 65504.f);
  EXPECT_EQ(bound16_down(65504.f * 1.5f), 0x7bff);
  EXPECT_EQ(bound16_down(std::numeric_limits<float>::max()), 0x7bff);
  EXPECT_EQ(bound16_down(std::numeric_limits<float>::infinity()), 0x7bff);  // a finite bound, never the marker
  EXPECT_EQ(bound16_down(-0.f), 0);
  EXPECT_EQ(bound16_down(-3.f), 0);
  EXPECT_EQ(bound16_down(std::numeric_limits<float>::quiet_NaN()), 0);
  EXPECT_EQ(bound16_value(kBound16Inf), std::numeric_limits<float>::infinity());
  EXPECT_EQ(bound16_down(0x1.0p-30f), 0);
  EXPECT_EQ(bound16_down(0.f), 0);
}

// The kernels store a bound b as float16 units rounded down: a lower bound still, and within one
// float16 step of b.
void expect_rounded_bound(Bound16 got, double want, float unit, const std::string& what) {
  const double v = static_cast<double>(bound16_value(got)) * unit;
  EXPECT_LE(v, want * (1 + 1e-6) + 1e-30) << what;
  EXPECT_GE(v, want * (1 - 0x1.0p-10) - 0x1.0p-24 * unit - 1e-6 * (1 + want)) << what;
}

// elkan_candidates: the j with ub + drift_total[j] > lower[j] * unit, ascending (equality excluded).
TEST_P(Kernels, ElkanCandidates) {
  std::mt19937 g(95);
  std::uniform_int_distribution<int> pick(0, 3);
  for (const float unit : {1.f, 0.25f})
    for (std::int64_t k = 0; k <= 90; ++k)
      for (int rep = 0; rep < 4; ++rep) {
        const std::vector<float> lv = random_floats(g, static_cast<std::size_t>(k));
        std::vector<float> drift = random_floats(g, static_cast<std::size_t>(k));
        const float ub = random_floats(g, 1)[0];
        std::vector<Bound16> lower(static_cast<std::size_t>(k));
        for (std::int64_t j = 0; j < k; ++j) {
          lower[j] = bound16_down(std::fabs(lv[j]) * 4.f);
          if (pick(g) == 0) {  // exactly on the boundary (where float arithmetic allows): not a candidate
            const float v = bound16_value(lower[j]) * unit;
            if (ub + (v - ub) == v) drift[j] = v - ub;
          }
          if (pick(g) == 0) lower[j] = kBound16Inf;  // never a candidate
        }
        std::vector<std::int32_t> want;
        for (std::int64_t j = 0; j < k; ++j)
          if (ub + drift[j] > bound16_value(lower[j]) * unit) want.push_back(static_cast<std::int32_t>(j));
        Guarded<Bound16> l(lower);
        Guarded<float> dr(drift);
        Guarded<std::int32_t> out(static_cast<std::size_t>(k + 16));  // the documented room: k + 16
        const std::int64_t m = k_->elkan_candidates(l.data(), dr.data(), ub, unit, k, out.data());
        ASSERT_EQ(m, static_cast<std::int64_t>(want.size())) << "k = " << k;
        for (std::int64_t t = 0; t < m; ++t) EXPECT_EQ(out[t], want[t]) << "k = " << k << ", position " << t;
      }
}

// elkan_bound_row: the first smallest score's j, and every bound as elkan_update writes it.
TEST_P(Kernels, ElkanBoundRow) {
  std::mt19937 g(97);
  std::uniform_real_distribution<float> pos(0.f, 4.f);
  for (const float unit : {1.f, 0x1.0p-6f})
    for (std::int64_t k = 1; k <= 70; k += 3) {
      std::vector<float> scores = random_floats(g, static_cast<std::size_t>(k)), norms(static_cast<std::size_t>(k)),
                         drift(static_cast<std::size_t>(k));
      for (std::int64_t j = 0; j < k; ++j) norms[j] = pos(g), drift[j] = pos(g);
      if (k > 5) scores[k - 1] = scores[2];  // a tie: the first one wins
      const float x_norm = 3.f, err = 1e-6f, shrink = 1.f - 0x1.0p-20f;
      Guarded<float> sc(scores), gn(norms), gdr(drift);
      Guarded<Bound16> row(static_cast<std::size_t>(k));
      const std::int64_t best = k_->elkan_bound_row(sc.data(), row.data(), k, x_norm, gn.data(), gdr.data(), err,
                                                    shrink, unit);
      const std::int64_t want = std::min_element(scores.begin(), scores.end()) - scores.begin();
      EXPECT_EQ(best, want) << "k = " << k;
      for (std::int64_t j = 0; j < k; ++j) {
        const double sq = static_cast<double>(x_norm) + scores[j] - static_cast<double>(err) * (x_norm + norms[j]);
        const double bound = (std::sqrt(std::max(sq, 0.0)) + drift[j]) * shrink;
        expect_rounded_bound(row[j], bound, unit, "k = " + std::to_string(k) + ", bound " + std::to_string(j));
      }
    }
}

// elkan_update: the candidates' scores ||c||^2 - 2 x.c, their new lower bounds (nothing else
// written), and the position of the smallest score, first on ties; -1 for no candidates.
TEST_P(Kernels, ElkanUpdate) {
  std::mt19937 g(98);
  std::uniform_real_distribution<float> pos(0.f, 4.f);
  for (const float unit : {1.f, 0x1.0p-6f})
    for (std::int64_t k : {1, 2, 7, 16, 33})
      for (std::int64_t m = 0; m <= k; m += (k > 8 ? 3 : 1)) {
        // m ascending candidates out of k.
        std::vector<std::int32_t> all(static_cast<std::size_t>(k));
        for (std::int64_t j = 0; j < k; ++j) all[j] = static_cast<std::int32_t>(j);
        std::shuffle(all.begin(), all.end(), g);
        std::vector<std::int32_t> list(all.begin(), all.begin() + m);
        std::sort(list.begin(), list.end());
        std::vector<float> dots = random_floats(g, static_cast<std::size_t>(m)), norms(static_cast<std::size_t>(k)),
                           drift(static_cast<std::size_t>(k));
        std::vector<Bound16> lower(static_cast<std::size_t>(k));
        for (std::int64_t j = 0; j < k; ++j) norms[j] = pos(g), drift[j] = pos(g), lower[j] = bound16_down(pos(g));
        if (m >= 3) dots[m - 1] = dots[1], norms[list[m - 1]] = norms[list[1]];  // an exact tie in score
        const float x_norm = 3.f, err = 1e-6f, shrink = 1.f - 0x1.0p-20f;
        Guarded<std::int32_t> cand(list);
        Guarded<float> gd(dots), gn(norms), gdr(drift), scores(static_cast<std::size_t>(m));
        Guarded<Bound16> gl(lower);
        const std::int64_t at = k_->elkan_update(cand.data(), gd.data(), m, gn.data(), gdr.data(), x_norm, err,
                                                 shrink, unit, gl.data(), scores.data());
        std::int64_t want_at = -1;
        std::vector<char> is_cand(static_cast<std::size_t>(k), 0);
        for (std::int64_t t = 0; t < m; ++t) {
          const std::int32_t j = list[t];
          is_cand[j] = 1;
          const float score = norms[j] - 2.f * dots[t];  // exact: 2 x is exact, one rounding
          EXPECT_EQ(scores[t], score) << "k = " << k << ", t = " << t;
          if (want_at < 0 || score < scores[want_at]) want_at = t;
          const double sq = static_cast<double>(x_norm) + score - static_cast<double>(err) * (x_norm + norms[j]);
          const double bound = (std::sqrt(std::max(sq, 0.0)) + drift[j]) * shrink;
          expect_rounded_bound(gl[j], bound, unit, "lower bound of " + std::to_string(j));
        }
        for (std::int64_t j = 0; j < k; ++j)
          if (!is_cand[j]) {
            EXPECT_EQ(gl[j], lower[j]) << "lower bound of non-candidate " << j << " changed";
          }
        EXPECT_EQ(at, want_at) << "k = " << k << ", m = " << m;
      }
}

TEST_P(Kernels, AddRow) {
  std::mt19937 g(96);
  for (std::int64_t d = 0; d <= 100; ++d) {
    const std::vector<float> xs = random_floats(g, static_cast<std::size_t>(d));
    std::vector<float> acc = random_floats(g, static_cast<std::size_t>(d));
    Guarded<float> a(acc), x(xs);
    k_->add_row(a.data(), x.data(), d);
    for (std::int64_t q = 0; q < d; ++q) EXPECT_EQ(a[q], acc[q] + xs[q]) << "d = " << d << ", element " << q;
  }
}

// Rows added in order to their label's sums (so exactly the sums of a scalar loop), counts too.
TEST_P(Kernels, AddRows) {
  std::mt19937 g(98);
  // Few labels and many; blocks of 96 rows and more.
  for (std::int64_t d : {1, 7, 8, 17, 64, 67, 200})
    for (std::int64_t m : {0, 1, 5, 96, 200})
      for (std::int64_t k : {5, 64, 65}) {
        const std::int64_t ldx = d + 3;
        const std::vector<float> xs = random_floats(g, static_cast<std::size_t>(m * ldx));
        std::vector<std::int32_t> labels(static_cast<std::size_t>(m));
        for (auto& l : labels) l = static_cast<std::int32_t>(g() % k);
        std::vector<float> want = random_floats(g, static_cast<std::size_t>(k * d));
        std::vector<std::int64_t> want_counts(static_cast<std::size_t>(k), 3);
        Guarded<float> sums(want);
        Guarded<std::int64_t> counts(want_counts);
        for (std::int64_t r = 0; r < m; ++r) {
          for (std::int64_t q = 0; q < d; ++q) want[labels[r] * d + q] += xs[r * ldx + q];
          ++want_counts[labels[r]];
        }
        k_->add_rows(sums.data(), counts.data(), xs.data(), ldx, labels.data(), m, d);
        const std::string what = "d = " + std::to_string(d) + ", m = " + std::to_string(m) + ", k = " + std::to_string(k);
        for (std::int64_t e = 0; e < k * d; ++e) ASSERT_EQ(sums[e], want[e]) << what;
        for (std::int64_t j = 0; j < k; ++j) EXPECT_EQ(counts[j], want_counts[j]) << what;
      }
}

INSTANTIATE_TEST_SUITE_P(Isa, Kernels, testing::Values("avx512", "avx2", "generic"),
                         [](const auto& i) { return std::string(i.param); });

TEST(KernelLookup, UnknownNameIsNull) {
  EXPECT_EQ(cpu::simd_by_name("sse9"), nullptr);
  EXPECT_NE(cpu::simd_by_name("generic"), nullptr);
}

}  // namespace
