// The `mx` command: one file per subcommand; this file only wires them together.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "tools/mx/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"mx: OCP Microscaling (MX) formats toolkit"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  mx::tools::register_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "mx: error: %s (see mx --help)\n", e.what());
    return 2;
  }
  return mx::tools::exit_code();
}
