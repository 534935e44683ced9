// The `mx` command: one file per subcommand; this file only wires them together.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

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

// The options of the commands that ran, the top level's included.
void parsed_options(const CLI::App& command, std::vector<const CLI::Option*>* out) {
  for (const CLI::Option* option : command.get_options()) out->push_back(option);
  for (const CLI::App* sub : command.get_subcommands()) parsed_options(*sub, out);
}

// CLI11's message, or a clearer one where CLI11's misleads: a repeated option is "At Most 1
// required but received 2".
std::string parse_error_message(const CLI::App& app, const CLI::ParseError& e) {
  if (dynamic_cast<const CLI::ArgumentMismatch*>(&e) != nullptr) {
    std::vector<const CLI::Option*> options;
    parsed_options(app, &options);
    for (const CLI::Option* option : options) {
      const auto most = static_cast<size_t>(std::max(option->get_items_expected_max(), 1));
      if (option->count() > most && !option->get_lnames().empty()) {
        return mx::io::cat("--", option->get_lnames().front(), " given more than once");
      }
    }
  }
  return e.what();
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
    std::fprintf(stderr, "mx: error: %s (see mx --help)\n",
                 mx::io::one_line(parse_error_message(app, e)).c_str());
    return 2;
  }
  return mx::tools::exit_code();
}
