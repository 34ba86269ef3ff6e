// A minimal PNG writer: 8-bit palette images, zlib stream of stored (uncompressed) deflate blocks,
// CRC-32 per chunk and Adler-32 over the pixels. No dependency; files are larger than compressed
// ones, which suits the small pictures of the demo.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace flashkmeans::cli {

/// A width x height image of palette indices (row-major), with up to 256 RGB colours.
struct PaletteImage {
  int width = 0, height = 0;
  std::vector<std::uint8_t> pixels;                   ///< width * height indices into palette
  std::vector<std::array<std::uint8_t, 3>> palette;  ///< RGB
};

/// CRC-32 (ISO-HDLC, the one PNG and zlib use) of size bytes, continuing from crc (0 to start).
std::uint32_t crc32(const std::uint8_t* data, std::size_t size, std::uint32_t crc = 0);
/// Adler-32 of size bytes, continuing from adler (1 to start).
std::uint32_t adler32(const std::uint8_t* data, std::size_t size, std::uint32_t adler = 1);

/// The bytes of a PNG file holding image.
std::vector<std::uint8_t> encode_png(const PaletteImage& image);

}  // namespace flashkmeans::cli
