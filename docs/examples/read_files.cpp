// doc:hide
// docs/formats.md, "From C++": a data file read with flashkmeans_io, clustered, labels written.
#include <cstdio>
#include <vector>

#include <flashkmeans/flashkmeans.hpp>
// doc:show
#include "io/io.hpp"  // target flashkmeans_io
// doc:hide

int main() {
  {  // a small base.fvecs in the working directory
    std::vector<float> v(500 * 8);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((i * 7919) % 101) / 10.0f;
    flashkmeans::io::write_fvecs("base.fvecs", v.data(), 500, 8);
  }
  flashkmeans::KMeansOptions options;
  options.n_clusters = 10;
// doc:show

flashkmeans::io::Dataset ds = flashkmeans::io::read_dataset("base.fvecs");
flashkmeans::KMeansResult r = flashkmeans::fit(ds.view, options);  // ds must outlive the fit
flashkmeans::io::write_npy("labels.npy", r.labels.data(), {r.n});
// doc:hide
  const flashkmeans::io::NpyArray back = flashkmeans::io::read_npy("labels.npy");
  if (back.descr != "<i4" || back.shape != std::vector<std::int64_t>{500} || !ds.mapped) return 1;
  std::printf("read_files: %lld points of base.fvecs (mapped), labels.npy written\n", static_cast<long long>(r.n));
  return 0;
}
