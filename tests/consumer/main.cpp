// Clusters two well-separated groups and checks that they come back apart.
#include <cstdio>
#include <vector>

#include <flashkmeans/flashkmeans.hpp>

int main() {
  std::vector<float> x;
  for (int i = 0; i < 100; ++i) x.insert(x.end(), {static_cast<float>(i % 2 ? 10 : 0), 0.001f * i});
  flashkmeans::KMeansOptions opt;
  opt.n_clusters = 2;
  opt.init = flashkmeans::Init::kmeans_plus_plus;
  const auto r = flashkmeans::fit(flashkmeans::TensorView::matrix(x.data(), 100, 2), opt);
  for (int i = 2; i < 100; ++i)
    if (r.labels[i] != r.labels[i % 2]) {
      std::printf("consumer: point %d is in the wrong cluster\n", i);
      return 1;
    }
  std::printf("consumer: flashkmeans %s from find_package works (%s kernels)\n", FLASHKMEANS_VERSION,
              flashkmeans::cpu_isa());
  return 0;
}
