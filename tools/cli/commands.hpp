// The commands of the flashkmeans tool. Each takes the arguments after its name and returns an
// exit code; failures are thrown (UsageError, io::FileError, io::WriteError, flashkmeans::Error)
// and mapped to exit codes by main().
#pragma once

#include <string>
#include <vector>

namespace flashkmeans::cli {

int run_fit(const std::vector<std::string>& args);
int run_predict(const std::vector<std::string>& args);
int run_bench(const std::vector<std::string>& args);
int run_demo(const std::vector<std::string>& args);

extern const char* const kFitHelp;
extern const char* const kPredictHelp;
extern const char* const kBenchHelp;
extern const char* const kDemoHelp;

}  // namespace flashkmeans::cli
