// std::vector storage aligned to cache lines (64 bytes). Rows that kernels stream or scatter-read
// (packed centroid panels, centroid rows, partial sums) then start on a line: a 512-byte row
// touches 8 lines instead of 9, and no vector load or store straddles two.
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace flashkmeans::cpu {

template <class T>
struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlign{64};
  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), kAlign)); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, kAlign); }
  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const {
    return true;
  }
  template <class U>
  bool operator!=(const CacheLineAllocator<U>&) const {
    return false;
  }
};

template <class T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace flashkmeans::cpu
