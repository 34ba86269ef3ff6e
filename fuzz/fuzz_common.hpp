// What every fuzz target of the data-file readers checks: a read either throws
// flashkmeans::io::FileError or returns a view whose every element can be read. The input is an
// exact-size heap copy (io::Input::copy), so AddressSanitizer reports a read even one byte past its
// end; UndefinedBehaviorSanitizer reports overflowing shape arithmetic. Any other exception escapes
// LLVMFuzzerTestOneInput, which libFuzzer reports as a crash.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "io/io.hpp"

namespace fk_fuzz {

using namespace flashkmeans;

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "fuzz check failed: %s\n", what);
  std::abort();
}

// Reads every byte of every element of the view through its strides (the reads are what the
// sanitizers check) and checks that the shape is one a caller can use.
inline void touch(const io::Dataset& ds) {
  const TensorView& v = ds.view;
  if (v.batch < 0 || v.rows < 0 || v.cols < 0) fail("negative dimension");
  if (v.batch_stride < 0 || v.row_stride < 0 || v.col_stride < 0) fail("negative stride");
  if (v.device.type != DeviceType::cpu) fail("a file read into device memory");
  std::int64_t count = 0;
  if (__builtin_mul_overflow(v.batch, v.rows, &count) || __builtin_mul_overflow(count, v.cols, &count))
    fail("the element count overflows");
  if (count == 0) return;
  if (v.data == nullptr) fail("null data for a non-empty view");
  if (!ds.storage) fail("nothing keeps the data alive");
  const std::size_t item = v.dtype == DType::float32 ? 4 : 2;
  const auto* base = static_cast<const unsigned char*>(v.data);
  unsigned sum = 0;
  for (std::int64_t b = 0; b < v.batch; ++b)
    for (std::int64_t i = 0; i < v.rows; ++i)
      for (std::int64_t j = 0; j < v.cols; ++j) {
        const unsigned char* p = base + (b * v.batch_stride + i * v.row_stride + j * v.col_stride) * item;
        for (std::size_t k = 0; k < item; ++k) sum += p[k];
      }
  volatile unsigned sink = sum;  // keeps the reads
  (void)sink;
}

// Runs a read: a FileError is a rejected file (fine); a result must pass touch().
template <typename Read>
void read_or_reject(Read&& read) {
  try {
    touch(read());
  } catch (const io::FileError&) {
  }
}

}  // namespace fk_fuzz
