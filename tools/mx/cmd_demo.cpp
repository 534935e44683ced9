// `mx demo`: the main job (filled in by the study module).
#include "tools/mx/commands.h"

namespace mx::tools {
void register_demo(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("demo", "A short tour of the formats");
  cmd->callback([] {});
}
}  // namespace mx::tools
