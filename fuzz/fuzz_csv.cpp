// libFuzzer target of the CSV reader, with the header detected, required and refused.
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace fk_fuzz;
  const io::Input in = io::Input::copy("fuzz.csv", data, size);
  for (const int header : {-1, 0, 1}) {
    io::ReadOptions o;
    o.csv_header = header;
    read_or_reject([&] {
      io::Dataset ds = io::read_dataset(in, io::Format::csv, o);
      if (!ds.view.is_contiguous() || ds.view.rows <= 0 || ds.view.cols <= 0) fail("CSV data is not a C-order matrix");
      return ds;
    });
  }
  return 0;
}
