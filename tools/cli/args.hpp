// Command-line parsing for the flashkmeans tool: options declared per command, parsed once.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace flashkmeans::cli {

/// Exit codes (docs/formats.md lists them).
enum Exit : int {
  exit_ok = 0,
  exit_failure = 1,     ///< the computation failed (bad parameters for the data, a backend error)
  exit_usage = 2,       ///< unknown command or option, missing or malformed value
  exit_bad_input = 3,   ///< an input file is missing, truncated, malformed or of the wrong type
  exit_bad_output = 4,  ///< an output file or directory could not be written
};

/// A command line that does not follow the usage: printed with a hint, exit code 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct OptionSpec {
  std::string name;        ///< long name without dashes, e.g. "iters"
  char short_name = 0;     ///< e.g. 'k', or 0
  bool takes_value = true;
};

/// The parsed arguments of one command.
class Args {
 public:
  Args(const std::vector<std::string>& argv, const std::vector<OptionSpec>& specs);

  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::string str(const std::string& name, const std::string& fallback) const;
  std::string required(const std::string& name) const;
  std::int64_t integer(const std::string& name, std::int64_t fallback, std::int64_t min, std::int64_t max) const;
  double number(const std::string& name, double fallback, double min) const;
  /// One of choices, or fallback when absent.
  std::string choice(const std::string& name, const std::string& fallback, const std::vector<std::string>& choices) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

}  // namespace flashkmeans::cli
