// flashkmeans: exact k-means from the command line (docs/formats.md).
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <flashkmeans/flashkmeans.hpp>

#include "args.hpp"
#include "commands.hpp"
#include "io/io.hpp"

namespace {

const char* const kHelp =
    "usage: flashkmeans COMMAND [OPTIONS]\n"
    "\n"
    "Exact k-means on data files (.npy, .fvecs, .bvecs, .ivecs, .csv, raw float32).\n"
    "\n"
    "commands:\n"
    "  fit       cluster a data file; writes centroids.npy, labels.npy and summary.json\n"
    "  predict   label the points of a data file with the nearest of given centroids\n"
    "  bench     time fits on synthetic data\n"
    "  demo      cluster the embedded handwritten digits, compare with scikit-learn, draw a PNG\n"
    "\n"
    "  flashkmeans COMMAND --help   the options of a command\n"
    "  flashkmeans --version        the version and the CPU kernels in use\n"
    "\n"
    "exit codes: 0 ok, 1 the computation failed, 2 usage error, 3 bad input file,\n"
    "            4 an output could not be written\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace flashkmeans::cli;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::fputs(kHelp, stderr);
    return exit_usage;
  }
  const std::string command = args[0];
  if (command == "--help" || command == "-h" || command == "help") {
    std::fputs(kHelp, stdout);
    return exit_ok;
  }
  if (command == "--version") {
    std::printf("flashkmeans %s (CPU kernels: %s, CUDA: %s)\n", FLASHKMEANS_VERSION, flashkmeans::cpu_isa(),
                flashkmeans::cuda_available() ? "available" : "not available");
    return exit_ok;
  }
  args.erase(args.begin());
  struct Command {
    const char* name;
    int (*run)(const std::vector<std::string>&);
    const char* help;
  };
  const Command commands[] = {{"fit", run_fit, kFitHelp}, {"predict", run_predict, kPredictHelp},
                              {"bench", run_bench, kBenchHelp},
                              {"demo", run_demo, kDemoHelp}};
  for (const Command& c : commands) {
    if (command != c.name) continue;
    for (const std::string& a : args)
      if (a == "--help" || a == "-h") {
        std::fputs(c.help, stdout);
        return exit_ok;
      }
    try {
      return c.run(args);
    } catch (const UsageError& e) {
      std::fprintf(stderr, "flashkmeans %s: %s\n(flashkmeans %s --help lists the options)\n", c.name, e.what(),
                   c.name);
      return exit_usage;
    } catch (const flashkmeans::io::FileError& e) {
      std::fprintf(stderr, "flashkmeans %s: %s\n", c.name, e.what());
      return exit_bad_input;
    } catch (const flashkmeans::io::WriteError& e) {
      std::fprintf(stderr, "flashkmeans %s: %s\n", c.name, e.what());
      return exit_bad_output;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "flashkmeans %s: %s\n", c.name, e.what());
      return exit_failure;
    }
  }
  std::fprintf(stderr, "flashkmeans: unknown command '%s'\n\n%s", command.c_str(), kHelp);
  return exit_usage;
}
