// A small, portable random generator (splitmix64): the same seed gives the same init everywhere,
// unlike std:: distributions, whose output differs between standard libraries.
#pragma once

#include <cstdint>

namespace flashkmeans::detail {

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, n).
  std::int64_t below(std::int64_t n) {
    return static_cast<std::int64_t>((static_cast<unsigned __int128>(next()) * static_cast<std::uint64_t>(n)) >> 64);
  }
  /// Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  std::uint64_t state_;
};

/// The generator for batch b of a fit seeded with seed: batches draw independent streams.
inline Rng batch_rng(std::uint64_t seed, std::int64_t b) {
  Rng mix(seed ^ (0x6a09e667f3bcc909ull * static_cast<std::uint64_t>(b + 1)));
  return Rng(mix.next());
}

}  // namespace flashkmeans::detail
