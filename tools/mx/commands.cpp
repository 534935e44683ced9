#include "tools/mx/commands.h"

namespace mx::tools {
namespace {
int g_exit_code = 0;
}  // namespace

int exit_code() {
  return g_exit_code;
}
void set_exit_code(int code) {
  g_exit_code = code;
}

void register_commands(CLI::App& app) {
  register_formats(app);
  register_demo(app);
  register_info(app);
  register_sweep(app);
  register_tokenizer(app);
  register_cast(app);
}

}  // namespace mx::tools
