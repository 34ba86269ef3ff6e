// libFuzzer target of the raw float32 reader. Raw files carry no shape, so the first 8 bytes of an
// input are the shape the caller gives (rows and columns, int32 little-endian) and the rest is the
// file: shapes that do not match the size, overflow, or are not positive must all be rejected.
#include <cstring>

#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace fk_fuzz;
  if (size < 8) return 0;
  std::int32_t shape[2];
  std::memcpy(shape, data, 8);
  io::ReadOptions o;
  o.raw_rows = shape[0], o.raw_cols = shape[1];
  const io::Input in = io::Input::copy("fuzz.f32", data + 8, size - 8);
  if (o.raw_rows <= 0 || o.raw_cols <= 0) {
    try {
      io::read_dataset(in, io::Format::raw, o);
    } catch (const flashkmeans::Error&) {
      return 0;  // a usage error: the shape is missing
    }
    fail("a raw read accepted a shape that is not positive");
  }
  read_or_reject([&] { return io::read_dataset(in, io::Format::raw, o); });
  // A 64-bit shape whose byte count overflows is rejected, not wrapped around to the file's size.
  o.raw_rows = (std::int64_t{1} << 62) + shape[0], o.raw_cols = 4;
  read_or_reject([&] { return io::read_dataset(in, io::Format::raw, o); });
  return 0;
}
