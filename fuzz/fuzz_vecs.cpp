// libFuzzer target of the .fvecs, .bvecs and .ivecs reader (one record layout, three value types)
// and of read_ivecs, on the same bytes.
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace fk_fuzz;
  const io::Input in = io::Input::copy("fuzz.vecs", data, size);
  for (const io::Format f : {io::Format::fvecs, io::Format::bvecs, io::Format::ivecs})
    read_or_reject([&] {
      io::Dataset ds = io::read_dataset(in, f);
      // Every byte belongs to a record of the first record's dimension.
      const std::uint64_t item = f == io::Format::bvecs ? 1 : 4;
      if (static_cast<std::uint64_t>(ds.view.rows) * (4 + item * static_cast<std::uint64_t>(ds.view.cols)) != size)
        fail("the records do not cover the file");
      return ds;
    });
  try {
    const io::IntMatrix m = io::read_ivecs(in);
    if (m.values.size() != static_cast<std::size_t>(m.rows * m.cols)) fail("read_ivecs: values do not match the shape");
  } catch (const io::FileError&) {
  }
  return 0;
}
