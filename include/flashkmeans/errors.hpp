// The one error type of the library: every failure is thrown as flashkmeans::Error.
#pragma once

#include <stdexcept>
#include <string>

namespace flashkmeans {

/// What kind of failure, so that bindings can map it (Python: ValueError, TypeError, MemoryError,
/// NotImplementedError, RuntimeError).
enum class ErrorKind {
  invalid_argument,  ///< a value, shape or size that is not allowed
  invalid_type,      ///< an element type or device that is not accepted here
  out_of_memory,     ///< a buffer could not be allocated
  unsupported,       ///< valid, but not available in this build (e.g. CUDA in a CPU-only build)
  internal,          ///< a failure inside a backend
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

}  // namespace flashkmeans
