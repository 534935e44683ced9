// The `mx` command: one file per subcommand; this file only wires them together.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <string_view>

#include "mx/io/atomic_file.h"
#include "mx/io/cat.h"
#include "tools/mx/commands.h"

namespace {

// CLI11 answers a mistyped subcommand with "A subcommand is required", which hides the typo.
std::string unknown_subcommand(const CLI::App& app, int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') return "";
  const std::string_view word = argv[1];
  std::string names;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    if (sub->get_name() == word) return "";
    names += (names.empty() ? "" : ", ") + sub->get_name();
  }
  return mx::io::cat("unknown command '", word, "' (commands: ", names, ")");
}

}  // namespace

int main(int argc, char** argv) {
  mx::io::remove_temporaries_on_signals();
  mx::tools::set_command_line(argc, argv);
  CLI::App app{"mx: OCP Microscaling (MX) formats toolkit"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  mx::tools::register_commands(app);
  if (const std::string e = unknown_subcommand(app, argc, argv); !e.empty()) {
    std::fprintf(stderr, "mx: error: %s\n", mx::io::one_line(e).c_str());
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "mx: error: %s (see mx --help)\n", mx::io::one_line(e.what()).c_str());
    return 2;
  }
  return mx::tools::exit_code();
}
