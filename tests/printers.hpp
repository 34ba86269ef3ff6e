// Readable GoogleTest parameter values (found by argument-dependent lookup) instead of byte dumps.
#pragma once

#include <ostream>

#include <flashkmeans/flashkmeans.hpp>

namespace flashkmeans {
inline void PrintTo(Metric v, std::ostream* os) { *os << to_string(v); }
inline void PrintTo(Algorithm v, std::ostream* os) { *os << to_string(v); }
inline void PrintTo(DType v, std::ostream* os) { *os << to_string(v); }
inline void PrintTo(Init v, std::ostream* os) { *os << to_string(v); }
}  // namespace flashkmeans
