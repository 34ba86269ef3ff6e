// libFuzzer target of the .npy reader: the header parser, the size checks, the strides of C and
// Fortran order, and the converting and copying paths (float64, unaligned data).
#include "fuzz_common.hpp"
#include "io/internal.hpp"  // descr_item_size

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace fk_fuzz;
  const io::Input in = io::Input::copy("fuzz.npy", data, size);
  for (const bool batches : {false, true}) {
    io::ReadOptions o;
    o.allow_batch = batches;         // 3-D arrays
    o.uint16_is_bfloat16 = batches;  // '<u2' data
    read_or_reject([&] { return io::read_dataset(in, io::Format::npy, o); });
  }
  // read_npy loads any plain numeric type: the bytes must be exactly the shape's.
  try {
    const io::NpyArray a = io::read_npy(in);
    std::uint64_t count = 1;
    for (const std::int64_t d : a.shape) count *= static_cast<std::uint64_t>(d);
    if (count * io::descr_item_size(a.descr) != a.bytes.size()) fail("read_npy: bytes do not match the shape");
  } catch (const io::FileError&) {
  }
  return 0;
}
