#include "png.hpp"

#include <algorithm>
#include <stdexcept>

namespace flashkmeans::cli {

std::uint32_t crc32(const std::uint8_t* data, std::size_t size, std::uint32_t crc) {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t n = 0; n < 256; ++n) {
      std::uint32_t c = n;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[n] = c;
    }
    return t;
  }();
  crc = ~crc;
  for (std::size_t i = 0; i < size; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

std::uint32_t adler32(const std::uint8_t* data, std::size_t size, std::uint32_t adler) {
  std::uint32_t a = adler & 0xFFFF, b = adler >> 16;
  for (std::size_t i = 0; i < size; ++i) {
    a = (a + data[i]) % 65521;
    b = (b + a) % 65521;
  }
  return (b << 16) | a;
}

namespace {

void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::uint8_t>(v >> s));
}

void put_chunk(std::vector<std::uint8_t>& out, const char type[4], const std::vector<std::uint8_t>& body) {
  put_u32(out, static_cast<std::uint32_t>(body.size()));
  const std::size_t start = out.size();
  out.insert(out.end(), type, type + 4);
  out.insert(out.end(), body.begin(), body.end());
  put_u32(out, crc32(out.data() + start, out.size() - start));
}

}  // namespace

std::vector<std::uint8_t> encode_png(const PaletteImage& image) {
  const std::size_t w = static_cast<std::size_t>(image.width), h = static_cast<std::size_t>(image.height);
  if (w == 0 || h == 0 || image.pixels.size() != w * h || image.palette.empty() || image.palette.size() > 256)
    throw std::invalid_argument("encode_png: inconsistent image");

  std::vector<std::uint8_t> out = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  std::vector<std::uint8_t> ihdr;
  put_u32(ihdr, static_cast<std::uint32_t>(w));
  put_u32(ihdr, static_cast<std::uint32_t>(h));
  ihdr.insert(ihdr.end(), {8, 3, 0, 0, 0});  // 8 bits, palette colour, deflate, adaptive filters, no interlace
  put_chunk(out, "IHDR", ihdr);

  std::vector<std::uint8_t> plte;
  for (const auto& rgb : image.palette) plte.insert(plte.end(), rgb.begin(), rgb.end());
  put_chunk(out, "PLTE", plte);

  // Scanlines, each led by filter type 0 (none).
  std::vector<std::uint8_t> raw;
  raw.reserve(h * (w + 1));
  for (std::size_t y = 0; y < h; ++y) {
    raw.push_back(0);
    raw.insert(raw.end(), image.pixels.begin() + y * w, image.pixels.begin() + (y + 1) * w);
  }
  // zlib: header (deflate, 32 KiB window, no dictionary; 0x7801 is divisible by 31), stored blocks
  // of at most 65535 bytes, Adler-32 of the uncompressed bytes.
  std::vector<std::uint8_t> z = {0x78, 0x01};
  for (std::size_t pos = 0; pos < raw.size() || raw.empty();) {
    const std::size_t len = std::min<std::size_t>(65535, raw.size() - pos);
    const bool last = pos + len == raw.size();
    z.push_back(last ? 1 : 0);  // BFINAL, BTYPE = 00 (stored)
    z.push_back(static_cast<std::uint8_t>(len));
    z.push_back(static_cast<std::uint8_t>(len >> 8));
    z.push_back(static_cast<std::uint8_t>(~len));
    z.push_back(static_cast<std::uint8_t>(~len >> 8));
    z.insert(z.end(), raw.begin() + pos, raw.begin() + pos + len);
    pos += len;
    if (last) break;
  }
  put_u32(z, adler32(raw.data(), raw.size()));
  put_chunk(out, "IDAT", z);
  put_chunk(out, "IEND", {});
  return out;
}

}  // namespace flashkmeans::cli
