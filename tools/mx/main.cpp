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

// CLI11 answers a mistyped subcommand with "A subcommand is required", which hides the typo. The
// words naming commands (`mx bench train`) are checked here, down to a command without
// subcommands.
std::string unknown_subcommand(const CLI::App& app, int argc, char** argv) {
  const CLI::App* command = &app;
  std::string path = "mx";  // the command named so far: "mx bench"
  for (int i = 1; i < argc && argv[i][0] != '-'; ++i) {
    const std::vector<const CLI::App*> subs =
        command->get_subcommands([](const CLI::App*) { return true; });
    if (subs.empty()) return "";
    const std::string_view word = argv[i];
    const CLI::App* next = nullptr;
    std::string names;
    for (const CLI::App* sub : subs) {
      if (sub->get_name() == word) next = sub;
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    if (next == nullptr) {
      return mx::io::cat("unknown command '", path, " ", word, "' (commands of ", path, ": ", names,
                         ")");
    }
    path = mx::io::cat(path, " ", word);
    command = next;
  }
  return "";
}

// The options of the commands that ran, the top level's included.
void parsed_options(const CLI::App& command, std::vector<const CLI::Option*>* out) {
  for (const CLI::Option* option : command.get_options()) out->push_back(option);
  for (const CLI::App* sub : command.get_subcommands()) parsed_options(*sub, out);
}

// CLI11's message, or a clearer one where CLI11's misleads: a repeated option is "At Most 1
// required but received 2", and an unknown flag is hidden behind a missing required argument.
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
  if (dynamic_cast<const CLI::RequiredError*>(&e) != nullptr) {
    if (const std::vector<std::string> extras = app.remaining(true); !extras.empty()) {
      return CLI::ExtrasError(app.get_name(), extras).what();
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
