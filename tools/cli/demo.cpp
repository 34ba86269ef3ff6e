// demo: k-means on a real dataset embedded in the tool (the handwritten digits 8x8), scored against
// the true digits, timed against scikit-learn when it is installed, and drawn as a PNG.
#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include <flashkmeans/flashkmeans.hpp>

#include "args.hpp"
#include "commands.hpp"
#include "digits_data.hpp"
#include "io/io.hpp"
#include "peers.hpp"
#include "png.hpp"

namespace flashkmeans::cli {

const char* const kDemoHelp =
    "usage: flashkmeans demo [options]\n"
    "\n"
    "Clusters the handwritten digits 8x8 embedded in the tool (1797 images, 64 pixels; UCI, as\n"
    "scikit-learn ships them) into K = 10 groups from k-means++ centroids. Prints the time, the\n"
    "iterations, the inertia and the agreement with the true digits (adjusted Rand index, normalized\n"
    "mutual information); times scikit-learn's KMeans on the same data and initial centroids when\n"
    "`python3 -c \"import sklearn\"` works; and writes a PNG: the images projected on their first two\n"
    "principal components, coloured by cluster (left) and by true digit (right).\n"
    "\n"
    "  -o, --out PNG   the picture (default flashkmeans-demo.png)\n"
    "  --seed S        k-means++ seed (default 0)\n"
    "  --repeats R     timed fits of each library, the best is reported (default 5)\n"
    "  --threads N     CPU threads (default 0: all cores)\n"
    "  --no-compare    do not run scikit-learn\n"
    "  --python P      the Python interpreter for the comparison (default $FLASHKMEANS_DEMO_PYTHON, else python3)\n";

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// Contingency table of two labelings with labels in [0, ka) and [0, kb).
std::vector<double> contingency(const std::vector<int>& a, const std::vector<int>& b, int ka, int kb) {
  std::vector<double> t(static_cast<std::size_t>(ka) * kb);
  for (std::size_t i = 0; i < a.size(); ++i) t[static_cast<std::size_t>(a[i]) * kb + b[i]] += 1;
  return t;
}

double adjusted_rand_index(const std::vector<int>& a, const std::vector<int>& b, int ka, int kb) {
  const std::vector<double> t = contingency(a, b, ka, kb);
  std::vector<double> rows(ka), cols(kb);
  for (int i = 0; i < ka; ++i)
    for (int j = 0; j < kb; ++j) rows[i] += t[i * kb + j], cols[j] += t[i * kb + j];
  auto pairs = [](double n) { return n * (n - 1) / 2; };
  double index = 0, sum_rows = 0, sum_cols = 0;
  for (double v : t) index += pairs(v);
  for (double r : rows) sum_rows += pairs(r);
  for (double c : cols) sum_cols += pairs(c);
  const double expected = sum_rows * sum_cols / pairs(static_cast<double>(a.size()));
  const double max_index = (sum_rows + sum_cols) / 2;
  return max_index == expected ? 1.0 : (index - expected) / (max_index - expected);
}

// Normalized mutual information, normalized by the arithmetic mean of the two entropies (the
// scikit-learn default).
double normalized_mutual_information(const std::vector<int>& a, const std::vector<int>& b, int ka, int kb) {
  const std::vector<double> t = contingency(a, b, ka, kb);
  const double n = static_cast<double>(a.size());
  std::vector<double> rows(ka), cols(kb);
  for (int i = 0; i < ka; ++i)
    for (int j = 0; j < kb; ++j) rows[i] += t[i * kb + j], cols[j] += t[i * kb + j];
  auto entropy = [n](const std::vector<double>& counts) {
    double h = 0;
    for (double c : counts)
      if (c > 0) h -= c / n * std::log(c / n);
    return h;
  };
  double mi = 0;
  for (int i = 0; i < ka; ++i)
    for (int j = 0; j < kb; ++j) {
      const double v = t[i * kb + j];
      if (v > 0) mi += v / n * std::log(v * n / (rows[i] * cols[j]));
    }
  const double mean_h = (entropy(rows) + entropy(cols)) / 2;
  return mean_h > 0 ? std::max(0.0, mi / mean_h) : 1.0;
}

// k-means++ seeding (one candidate per step), so that both libraries start from the same centroids.
std::vector<float> kmeanspp(const std::vector<float>& x, int n, int d, int k, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<float> c;
  std::vector<double> nearest(n, INFINITY);
  int pick = static_cast<int>(rng() % static_cast<std::uint64_t>(n));
  for (int j = 0; j < k; ++j) {
    c.insert(c.end(), x.begin() + static_cast<std::ptrdiff_t>(pick) * d, x.begin() + static_cast<std::ptrdiff_t>(pick + 1) * d);
    double total = 0;
    for (int i = 0; i < n; ++i) {
      double s = 0;
      for (int e = 0; e < d; ++e) {
        const double diff = x[static_cast<std::size_t>(i) * d + e] - x[static_cast<std::size_t>(pick) * d + e];
        s += diff * diff;
      }
      nearest[i] = std::min(nearest[i], s);
      total += nearest[i];
    }
    double r = std::uniform_real_distribution<double>(0, total)(rng);
    pick = n - 1;
    for (int i = 0; i < n; ++i) {
      r -= nearest[i];
      if (r < 0 && nearest[i] > 0) {
        pick = i;
        break;
      }
    }
  }
  return c;
}

// The first two principal axes of x (power iteration on the covariance, deflated once), and every
// point projected on them: (n, 2).
std::vector<double> pca_2d(const std::vector<float>& x, int n, int d) {
  std::vector<double> mean(d), cov(static_cast<std::size_t>(d) * d);
  for (int i = 0; i < n; ++i)
    for (int e = 0; e < d; ++e) mean[e] += x[static_cast<std::size_t>(i) * d + e] / static_cast<double>(n);
  std::vector<double> row(d);
  for (int i = 0; i < n; ++i) {
    for (int e = 0; e < d; ++e) row[e] = x[static_cast<std::size_t>(i) * d + e] - mean[e];
    for (int a = 0; a < d; ++a)
      for (int b = 0; b < d; ++b) cov[a * d + b] += row[a] * row[b];
  }
  std::vector<std::vector<double>> axes;
  for (int axis = 0; axis < 2; ++axis) {
    std::vector<double> v(d), w(d);
    for (int e = 0; e < d; ++e) v[e] = 1.0 + 0.01 * e;  // not orthogonal to the leading axes
    double lambda = 0;
    for (int it = 0; it < 500; ++it) {
      for (int a = 0; a < d; ++a) {
        double s = 0;
        for (int b = 0; b < d; ++b) s += cov[a * d + b] * v[b];
        w[a] = s;
      }
      double norm = 0;
      for (double t : w) norm += t * t;
      norm = std::sqrt(norm);
      if (norm == 0) break;
      double change = 0;
      for (int e = 0; e < d; ++e) change += std::abs(w[e] / norm - v[e]), v[e] = w[e] / norm;
      lambda = norm;
      if (change < 1e-12) break;
    }
    // Sign convention: the largest coordinate is positive, so the picture does not flip.
    const auto big = std::max_element(v.begin(), v.end(), [](double p, double q) { return std::abs(p) < std::abs(q); });
    if (*big < 0)
      for (double& t : v) t = -t;
    for (int a = 0; a < d; ++a)
      for (int b = 0; b < d; ++b) cov[a * d + b] -= lambda * v[a] * v[b];
    axes.push_back(v);
  }
  std::vector<double> p(static_cast<std::size_t>(n) * 2);
  for (int i = 0; i < n; ++i)
    for (int axis = 0; axis < 2; ++axis) {
      double s = 0;
      for (int e = 0; e < d; ++e) s += (x[static_cast<std::size_t>(i) * d + e] - mean[e]) * axes[axis][e];
      p[static_cast<std::size_t>(i) * 2 + axis] = s;
    }
  return p;
}

// For each cluster, the true label it is paired with: the largest cells of the contingency table
// first, one cluster per label, so that matching groups share a colour in the picture.
std::vector<int> match_clusters(const std::vector<int>& clusters, const std::vector<int>& truth, int k) {
  std::vector<double> t = contingency(clusters, truth, k, k);
  std::vector<int> to_label(k, -1);
  std::vector<bool> label_used(k);
  for (int step = 0; step < k; ++step) {
    int best = -1;
    for (int c = 0; c < k; ++c)
      for (int l = 0; l < k; ++l)
        if (to_label[c] < 0 && !label_used[l] && (best < 0 || t[c * k + l] > t[best])) best = c * k + l;
    to_label[best / k] = best % k;
    label_used[best % k] = true;
  }
  return to_label;
}

// Two square panels side by side: the points at p (n, 2) coloured by left[i] and by right[i]
// (palette entries 2 + label).
PaletteImage draw_panels(const std::vector<double>& p, const std::vector<int>& left, const std::vector<int>& right) {
  const int panel = 360, margin = 12, radius = 2;
  PaletteImage img;
  img.width = 2 * panel + 3 * margin;
  img.height = panel + 2 * margin;
  img.pixels.assign(static_cast<std::size_t>(img.width) * img.height, 0);
  img.palette = {{255, 255, 255}, {160, 160, 160},
                 // Matplotlib's "tab10" colours.
                 {31, 119, 180},  {255, 127, 14}, {44, 160, 44},   {214, 39, 40},  {148, 103, 189},
                 {140, 86, 75},   {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};
  const std::size_t n = left.size();
  double lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY};
  for (std::size_t i = 0; i < n; ++i)
    for (int a = 0; a < 2; ++a) lo[a] = std::min(lo[a], p[i * 2 + a]), hi[a] = std::max(hi[a], p[i * 2 + a]);
  const double span = std::max({hi[0] - lo[0], hi[1] - lo[1], 1e-9}) * 1.06;  // same scale on both axes
  const double mid[2] = {(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2};
  for (int side = 0; side < 2; ++side) {
    const int x0 = margin + side * (panel + margin), y0 = margin;
    for (int t = 0; t < panel; ++t) {
      img.pixels[static_cast<std::size_t>(y0) * img.width + x0 + t] = 1;
      img.pixels[static_cast<std::size_t>(y0 + panel - 1) * img.width + x0 + t] = 1;
      img.pixels[static_cast<std::size_t>(y0 + t) * img.width + x0] = 1;
      img.pixels[static_cast<std::size_t>(y0 + t) * img.width + x0 + panel - 1] = 1;
    }
    const std::vector<int>& colour = side == 0 ? left : right;
    for (std::size_t i = 0; i < n; ++i) {
      const int cx = x0 + static_cast<int>((p[i * 2] - mid[0]) / span * (panel - 1) + (panel - 1) / 2.0);
      const int cy = y0 + static_cast<int>((mid[1] - p[i * 2 + 1]) / span * (panel - 1) + (panel - 1) / 2.0);
      for (int dy = -radius; dy <= radius; ++dy)
        for (int dx = -radius; dx <= radius; ++dx) {
          if (dx * dx + dy * dy > radius * radius + 1) continue;
          const int px = cx + dx, py = cy + dy;
          if (px <= x0 || px >= x0 + panel - 1 || py <= y0 || py >= y0 + panel - 1) continue;
          img.pixels[static_cast<std::size_t>(py) * img.width + px] = static_cast<std::uint8_t>(2 + colour[i]);
        }
    }
  }
  return img;
}

struct PeerRun {
  bool ok = false;
  std::string version;
  double ms = 0, inertia = 0;
  int n_iter = 0;
  std::vector<int> labels;
};

// scikit-learn's KMeans (Lloyd, float32, the given initial centroids, tol = 0: it stops when no
// label changes) in a Python subprocess, best of repeats.
PeerRun run_sklearn(const std::string& python, const std::vector<float>& x, const std::vector<float>& init, int n,
                    int d, int k, int repeats) {
  const char* const script =
      "import sys, time, numpy as np, sklearn\n"
      "from sklearn.cluster import KMeans\n"
      "x = np.load(sys.argv[1]); c = np.load(sys.argv[2]); best = float('inf')\n"
      "for _ in range(int(sys.argv[3])):\n"
      "    km = KMeans(n_clusters=len(c), init=c, n_init=1, max_iter=300, tol=0.0, algorithm='lloyd')\n"
      "    t = time.perf_counter(); km.fit(x); best = min(best, time.perf_counter() - t)\n"
      "print(sklearn.__version__, best * 1e3, km.n_iter_, km.inertia_)\n"
      "print(''.join(str(int(v)) for v in km.labels_))\n";
  const PythonOutput p = run_python(python, script, {{x.data(), {n, d}}, {init.data(), {k, d}}}, {std::to_string(repeats)});
  PeerRun r;
  char version[64] = {0};
  int used = 0;
  if (p.error.empty() &&
      std::sscanf(p.out.c_str(), "%63s %lf %d %lf%n", version, &r.ms, &r.n_iter, &r.inertia, &used) == 4) {
    r.version = version;
    for (std::size_t i = static_cast<std::size_t>(used); i < p.out.size(); ++i)
      if (p.out[i] >= '0' && p.out[i] <= '9') r.labels.push_back(p.out[i] - '0');
  }
  r.ok = p.error.empty() && p.status == 0 && static_cast<int>(r.labels.size()) == n;
  return r;
}

}  // namespace

int run_demo(const std::vector<std::string>& argv) {
  const Args a(argv, {{"out", 'o', true},
                      {"seed", 0, true},
                      {"repeats", 0, true},
                      {"threads", 0, true},
                      {"no-compare", 0, false},
                      {"python", 0, true}});
  if (!a.positional().empty()) throw UsageError("demo takes no DATA file");
  const std::string out = a.str("out", "flashkmeans-demo.png");
  const std::uint64_t seed = static_cast<std::uint64_t>(a.integer("seed", 0, 0, INT64_MAX));
  const int repeats = static_cast<int>(a.integer("repeats", 5, 1, 1000));
  const int n = kDigitsCount, d = kDigitsPixels, k = 10;

  std::vector<float> x(static_cast<std::size_t>(n) * d);
  std::vector<int> truth(n);
  for (int i = 0; i < n; ++i) {
    truth[i] = kDigits[i][0] - '0';
    for (int e = 0; e < d; ++e) x[static_cast<std::size_t>(i) * d + e] = static_cast<float>(kDigits[i][1 + e] - 'A');
  }
  const std::vector<float> init = kmeanspp(x, n, d, k, seed);

  KMeansOptions opt;
  opt.n_clusters = k;
  opt.max_iter = 300;
  opt.tol = 1e-4;  // pixels move by less than 1e-4 grey levels: no label changes any more
  opt.init = Init::given;
  opt.init_centroids = TensorView::matrix(init.data(), k, d);
  opt.n_threads = static_cast<int>(a.integer("threads", 0, 0, 4096));

  std::printf("flashkmeans %s (CPU kernels: %s): handwritten digits 8x8, %d images x %d pixels, K = %d,\n"
              "k-means++ initial centroids (seed %llu)\n",
              FLASHKMEANS_VERSION, cpu_isa(), n, d, k, static_cast<unsigned long long>(seed));
  KMeansResult r;
  double best_ms = INFINITY;
  for (int rep = 0; rep < repeats; ++rep) {
    const auto t0 = Clock::now();
    r = fit(TensorView::matrix(x.data(), n, d), opt);
    best_ms = std::min(best_ms, ms_since(t0));
  }
  const std::vector<int> labels(r.labels.begin(), r.labels.end());
  std::printf("flashkmeans:  %8.2f ms (best of %d), %d iterations, inertia %.1f\n", best_ms, repeats, r.n_iter[0],
              r.inertia[0]);
  std::printf("agreement with the true digits: ARI %.3f, NMI %.3f\n", adjusted_rand_index(labels, truth, k, k),
              normalized_mutual_information(labels, truth, k, k));

  if (a.has("no-compare")) {
    std::printf("scikit-learn: not run (--no-compare)\n");
  } else {
    // The Python package's `flashkmeans` command names its own interpreter here, so that the
    // comparison uses the scikit-learn installed beside it.
    const std::string python = peer_python(a);
    if (std::system((python + " -c \"import sklearn\" >/dev/null 2>&1").c_str()) != 0) {
      std::printf("scikit-learn: not installed (%s -c \"import sklearn\" failed), comparison skipped\n",
                  python.c_str());
    } else {
      const PeerRun s = run_sklearn(python, x, init, n, d, k, repeats);
      if (!s.ok) {
        std::printf("scikit-learn: the comparison run failed, skipped\n");
      } else {
        std::printf("scikit-learn: %8.2f ms (best of %d), %d iterations, inertia %.1f (version %s, same data and "
                    "initial centroids)\n",
                    s.ms, repeats, s.n_iter, s.inertia, s.version.c_str());
        std::printf("flashkmeans is %.1fx %s; its labels against scikit-learn's: ARI %.3f\n",
                    s.ms >= best_ms ? s.ms / best_ms : best_ms / s.ms, s.ms >= best_ms ? "faster" : "slower",
                    adjusted_rand_index(labels, s.labels, k, k));
      }
    }
  }

  const std::vector<double> p = pca_2d(x, n, d);
  const std::vector<int> to_label = match_clusters(labels, truth, k);
  std::vector<int> cluster_colour(n);
  for (int i = 0; i < n; ++i) cluster_colour[i] = to_label[labels[i]];
  const PaletteImage img = draw_panels(p, cluster_colour, truth);
  const std::vector<std::uint8_t> png = encode_png(img);
  io::write_file_atomic(out, png.data(), png.size());
  std::printf("wrote %s (%d x %d): the images on their first two principal components, coloured by cluster\n"
              "(left; each cluster in the colour of the digit it overlaps most) and by true digit (right)\n",
              out.c_str(), img.width, img.height);
  return exit_ok;
}

}  // namespace flashkmeans::cli
