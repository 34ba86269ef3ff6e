#include "args.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>

namespace flashkmeans::cli {

Args::Args(const std::vector<std::string>& argv, const std::vector<OptionSpec>& specs) {
  auto find = [&](const std::string& name, char short_name) -> const OptionSpec* {
    for (const OptionSpec& s : specs)
      if ((!name.empty() && s.name == name) || (short_name && s.short_name == short_name)) return &s;
    return nullptr;
  };
  bool only_positional = false;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (only_positional || a.size() < 2 || a[0] != '-' || (a[1] >= '0' && a[1] <= '9')) {
      positional_.push_back(a);
      continue;
    }
    if (a == "--") {
      only_positional = true;
      continue;
    }
    std::string name, value;
    bool inline_value = false;
    const OptionSpec* spec;
    if (a[1] == '-') {
      name = a.substr(2);
      const std::size_t eq = name.find('=');
      if (eq != std::string::npos) value = name.substr(eq + 1), name.resize(eq), inline_value = true;
      spec = find(name, 0);
      if (!spec) throw UsageError("unknown option --" + name);
    } else {
      if (a.size() > 2) value = a.substr(2), inline_value = true;
      spec = find("", a[1]);
      if (!spec) throw UsageError(std::string("unknown option -") + a[1]);
    }
    if (spec->takes_value) {
      if (!inline_value) {
        if (i + 1 >= argv.size()) throw UsageError("option --" + spec->name + " needs a value");
        value = argv[++i];
      }
    } else if (inline_value) {
      throw UsageError("option --" + spec->name + " takes no value");
    }
    if (values_.count(spec->name)) throw UsageError("option --" + spec->name + " is given twice");
    values_[spec->name] = value;
  }
}

std::string Args::str(const std::string& name, const std::string& fallback) const {
  const auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

std::string Args::required(const std::string& name) const {
  const auto it = values_.find(name);
  if (it == values_.end()) throw UsageError("option --" + name + " is required");
  return it->second;
}

std::int64_t Args::integer(const std::string& name, std::int64_t fallback, std::int64_t min, std::int64_t max) const {
  const auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  const char* s = it->second.c_str();
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s, &end, 10);
  if (it->second.empty() || *end != '\0' || errno == ERANGE)
    throw UsageError("--" + name + " expects an integer, got '" + it->second + "'");
  if (v < min || v > max)
    throw UsageError("--" + name + " = " + it->second + " is out of range: expected " + std::to_string(min) +
                     " to " + std::to_string(max));
  return v;
}

double Args::number(const std::string& name, double fallback, double min) const {
  const auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  char* end = nullptr;
  const double v = std::strtod(it->second.c_str(), &end);
  if (it->second.empty() || *end != '\0' || !std::isfinite(v))
    throw UsageError("--" + name + " expects a number, got '" + it->second + "'");
  if (v < min) throw UsageError("--" + name + " = " + it->second + " is below " + std::to_string(min));
  return v;
}

std::string Args::choice(const std::string& name, const std::string& fallback,
                         const std::vector<std::string>& choices) const {
  const auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  for (const std::string& c : choices)
    if (c == it->second) return c;
  std::string list;
  for (std::size_t i = 0; i < choices.size(); ++i) list += (i ? ", " : "") + choices[i];
  throw UsageError("--" + name + " = '" + it->second + "' is not one of: " + list);
}

}  // namespace flashkmeans::cli
