// Registration of the `mx` subcommands. Each subcommand lives in its own cmd_*.cpp file and
// records its exit status through set_exit_code.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace mx::tools {

void register_commands(CLI::App& app);

void register_formats(CLI::App& app);
void register_demo(CLI::App& app);
void register_info(CLI::App& app);
void register_sweep(CLI::App& app);
void register_tokenizer(CLI::App& app);
void register_corpus(CLI::App& app);
void register_cast(CLI::App& app);
void register_train(CLI::App& app);
void register_eval(CLI::App& app);
void register_generate(CLI::App& app);
void register_plot(CLI::App& app);
void register_study(CLI::App& app);
void register_export(CLI::App& app);
void register_ptq(CLI::App& app);
void register_quantize(CLI::App& app);
void register_dequantize(CLI::App& app);
void register_inspect(CLI::App& app);
void register_bench(CLI::App& app);

// The element-format trait table, as `mx formats` prints it.
void print_formats_table();

// Exit status of the command that ran (0 unless set).
int exit_code();
void set_exit_code(int code);

// The command line as main received it, for a command that starts copies of itself (the ranks
// of `mx train --gpus N`).
void set_command_line(int argc, char** argv);
const std::vector<std::string>& command_line();

}  // namespace mx::tools
