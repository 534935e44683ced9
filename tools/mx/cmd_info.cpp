// `mx info`: which code paths this build and this machine use.
#include <fmt/format.h>

#include "mx/kernels/cpu/simd_target.h"
#include "tools/mx/commands.h"

namespace mx::tools {
namespace {

void print_info() {
  fmt::print("mxkit {}\n", MX_VERSION);
  std::string supported;
  for (cpu::SimdTarget t : cpu::supported_targets()) {
    supported += (supported.empty() ? "" : ", ") + std::string(cpu::target_name(t));
  }
  fmt::print("CPU targets supported: {}\n", supported);
  fmt::print("CPU target selected:   {} (MX_CPU_TARGET forces a lower one)\n",
             cpu::target_name(cpu::best_target()));
#ifdef MX_HAVE_CUDA
  fmt::print("CUDA kernels:          built\n");
#else
  fmt::print("CUDA kernels:          not in this build\n");
#endif
}

}  // namespace

void register_info(CLI::App& app) {
  app.add_subcommand("info", "Show the CPU and GPU code paths in use")->callback([] {
    print_info();
  });
}

}  // namespace mx::tools
