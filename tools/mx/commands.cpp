#include "tools/mx/commands.h"

namespace mx::tools {
namespace {
int g_exit_code = 0;
std::vector<std::string> g_command_line;
}  // namespace

void set_command_line(int argc, char** argv) {
  g_command_line.assign(argv, argv + argc);
}
const std::vector<std::string>& command_line() {
  return g_command_line;
}

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
  register_corpus(app);
  register_cast(app);
  register_train(app);
  register_eval(app);
  register_generate(app);
  register_plot(app);
  register_study(app);
  register_export(app);
  register_quantize(app);
  register_ptq(app);
  register_dequantize(app);
  register_inspect(app);
  register_bench(app);
}

}  // namespace mx::tools
