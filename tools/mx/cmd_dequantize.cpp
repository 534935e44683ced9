// `mx dequantize IN -o OUT.safetensors`: MX safetensors or GGUF back to plain safetensors. The
// conversion is mx/convert/dequantize_checkpoint.h; this file parses flags and prints.
#include <fmt/format.h>

#include <new>
#include <optional>
#include <string>

#include "mx/convert/dequantize_checkpoint.h"
#include "mx/io/atomic_file.h"
#include "tools/mx/commands.h"
#include "tools/mx/progress.h"
#include "tools/mx/run_command.h"
#include "tools/mx/spec_flags.h"

namespace mx::tools {
namespace {

struct DequantizeCommandOptions {
  std::string input, output;
  std::string dtype = "f32";
  std::string threads = "0";
  bool quiet = false;
};

std::string run_dequantize(const DequantizeCommandOptions& o) {
  if (std::string e = io::check_output_file(o.output); !e.empty()) return e;
  convert::DequantizeOptions options;
  const std::optional<DType> dtype = parse_dtype(o.dtype);
  if (!dtype) return "unknown --dtype '" + o.dtype + "' (expected f32, bf16 or f16)";
  options.dtype = *dtype;
  SpecFlags threads_only;  // the same --threads rules as the quantizing commands
  threads_only.threads = o.threads;
  if (std::string e = build_cpu_options(threads_only, &options.cpu); !e.empty()) return e;
  std::optional<Progress> progress;
  auto on_progress = [&](int64_t done, int64_t total, std::string_view name) {
    if (!progress) progress.emplace("tensors", total, !o.quiet);
    progress->update(done, name);
  };
  convert::ConvertReport report;
  std::string e = convert::dequantize_checkpoint(o.input, o.output, options, on_progress, &report);
  if (progress) progress->finish();
  if (!e.empty()) return e;
  if (!o.quiet) {
    const int64_t decoded = report.count(convert::TensorAction::kConverted);
    fmt::print(
        "decoded {} MX tensor{} to {}, copied {}; tensor data {:.2f} MB -> {:.2f} MB; "
        "wrote {}\n",
        decoded, decoded == 1 ? "" : "s", dtype_name(*dtype),
        report.count(convert::TensorAction::kCopied), double(report.bytes_in()) / 1e6,
        double(report.bytes_out()) / 1e6, o.output);
  }
  return "";
}

}  // namespace

void register_dequantize(CLI::App& app) {
  static DequantizeCommandOptions options;
  CLI::App* cmd = app.add_subcommand(
      "dequantize", "Decode an MX safetensors or GGUF checkpoint to plain safetensors");
  cmd->footer(
      "MX tensors (MX safetensors, GGUF MXFP4) are decoded to --dtype; every other tensor\n"
      "(GGUF: F32, F16, BF16, integers) is copied unchanged. Decoding gives exactly the values\n"
      "the quantizer's spec rounds to.");
  cmd->add_option("input", options.input, "MX safetensors or GGUF checkpoint")
      ->type_name("IN")
      ->required();
  cmd->add_option("-o,--output", options.output, "Output safetensors (replaced atomically)")
      ->type_name("OUT")
      ->required();
  cmd->add_option("--dtype", options.dtype, "dtype of decoded tensors: f32, bf16 or f16")
      ->type_name("DTYPE")
      ->capture_default_str();
  cmd->add_option("--threads", options.threads, "CPU threads (0: all)")
      ->type_name("N")
      ->capture_default_str();
  cmd->add_flag("-q,--quiet", options.quiet, "No progress bar and no summary");
  cmd->callback([] { run_command("dequantize", [] { return run_dequantize(options); }); });
}

}  // namespace mx::tools
