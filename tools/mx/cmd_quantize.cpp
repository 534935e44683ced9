// `mx quantize IN -o OUT`: quantizes the weight matrices of a safetensors (or llama2.c)
// checkpoint to MX, writing MX safetensors, or, when OUT ends in .gguf, a model GGUF that
// llama.cpp runs (mx/train/model_gguf.h) or with --plain-gguf a plain GGUF container of the
// input's tensors (mx/convert/quantize_checkpoint.h). This file parses flags and prints.
#include <fmt/format.h>

#include <map>
#include <new>
#include <optional>
#include <string>

#include "mx/convert/quantize_checkpoint.h"
#include "mx/core/dtype.h"
#include "mx/io/atomic_file.h"
#include "mx/io/container.h"
#include "mx/nn/model_file.h"
#include "mx/train/model_gguf.h"
#include "tools/mx/commands.h"
#include "tools/mx/gguf_model_flags.h"
#include "tools/mx/progress.h"
#include "tools/mx/run_command.h"
#include "tools/mx/spec_flags.h"

namespace mx::tools {
namespace {

struct QuantizeCommandOptions {
  std::string input, output, tokenizer, dtype = "f32";
  bool quiet = false, plain_gguf = false;
  convert::SelectionRules selection;
  SpecFlags spec;
};

std::string megabytes(uint64_t bytes) {
  return fmt::format("{:.2f} MB", double(bytes) / 1e6);
}

void print_summary(const convert::ConvertReport& r, const QuantSpec& spec,
                   const std::string& output) {
  std::map<std::string, int> kept;
  for (const convert::TensorOutcome& t : r.tensors) {
    if (t.action == convert::TensorAction::kKept) ++kept[t.reason];
  }
  std::string kept_text;
  for (const auto& [reason, n] : kept) {
    kept_text += fmt::format("{}{} {}", kept_text.empty() ? "" : ", ", n, reason);
  }
  fmt::print("quantized {} of {} tensors to {}\n", r.count(convert::TensorAction::kConverted),
             r.tensors.size(), describe(spec));
  if (!kept_text.empty()) fmt::print("kept as they are: {}\n", kept_text);
  if (const int64_t copied = r.count(convert::TensorAction::kCopied); copied > 0) {
    fmt::print("copied {} non-float tensor{}\n", copied, copied == 1 ? "" : "s");
  }
  const double ratio = r.bytes_out() > 0 ? double(r.bytes_in()) / double(r.bytes_out()) : 0.0;
  fmt::print("tensor data {} -> {} ({:.2f}x smaller); wrote {}\n", megabytes(r.bytes_in()),
             megabytes(r.bytes_out()), ratio, output);
}

// A model mxkit loads, as llama.cpp's model GGUF.
std::string write_llama_cpp_model(const QuantizeCommandOptions& o,
                                  const convert::QuantizeOptions& q, DType float_type,
                                  const convert::ProgressCallback& on_progress,
                                  convert::ConvertReport* report) {
  train::ModelGgufOptions options;
  options.spec = q.spec;
  options.cpu = q.cpu;
  options.selection = q.selection;
  options.tokenizer = o.tokenizer;
  options.float_type = float_type;
  if (std::string e = convert::check_gguf_spec(q.spec); !e.empty()) return e;
  nn::LoadedModel loaded;
  if (std::string e = nn::load_model_file(o.input, &loaded, q.cpu.threads); !e.empty()) {
    return e + " (--plain-gguf writes the tensors as they are, without llama.cpp's metadata)";
  }
  return train::write_model_gguf(loaded, o.input, o.output, options, on_progress, report);
}

std::string run_quantize(const QuantizeCommandOptions& o) {
  if (std::string e = io::check_output_file(o.output); !e.empty()) return e;
  convert::QuantizeOptions options;
  if (std::string e = build_spec(o.spec, &options.spec); !e.empty()) return e;
  if (std::string e = build_cpu_options(o.spec, &options.cpu); !e.empty()) return e;
  options.selection = o.selection;
  const bool gguf = io::has_gguf_extension(o.output);
  if (o.plain_gguf && !gguf) return "--plain-gguf applies to a .gguf output only";
  const bool model_gguf = gguf && !o.plain_gguf;
  DType float_type = DType::kF32;
  if (std::string e = gguf_model_float_type(o.dtype, o.tokenizer, model_gguf, &float_type);
      !e.empty()) {
    return e;
  }
  std::optional<Progress> progress;  // started once the input is checked and the total known
  auto on_progress = [&](int64_t done, int64_t total, std::string_view name) {
    if (!progress) progress.emplace("tensors", total, !o.quiet);
    progress->update(done, name);
  };
  convert::ConvertReport report;
  std::string e =
      model_gguf ? write_llama_cpp_model(o, options, float_type, on_progress, &report)
                 : convert::quantize_checkpoint(o.input, o.output, options, on_progress, &report);
  if (progress) progress->finish();
  if (!e.empty()) return e;
  if (!o.quiet) print_summary(report, options.spec, o.output);
  return "";
}

}  // namespace

void register_quantize(CLI::App& app) {
  static QuantizeCommandOptions options;
  options.spec.format = "mxfp4_e2m1";  // before add_spec_flags, so that --help shows it
  CLI::App* cmd = app.add_subcommand(
      "quantize", "Quantize a safetensors checkpoint to MX safetensors or GGUF (MXFP4)");
  cmd->footer(
      "Which float tensors (F32, F16, BF16) are quantized:\n"
      "  embeddings and the output head (names with embed, wte, wpe, tok_embeddings, token_embd,\n"
      "  lm_head; output.weight), norms (names with norm, rms_, ln_) and tensors of fewer than\n"
      "  2 dimensions are kept unless --include-embeddings/--include-norms/--include-vectors;\n"
      "  --only REGEX quantizes exactly the tensors it matches, overriding those defaults;\n"
      "  --skip REGEX keeps what it matches, whatever else is asked.\n"
      "Kept and non-float tensors are copied unchanged. An OUT ending in .gguf gets ggml MXFP4\n"
      "tensors (--format mxfp4_e2m1, blocks of 32 along the last axis); there, tensors whose\n"
      "last dimension is not a multiple of 32 stay as they are. A .gguf of a model mx runs\n"
      "(llama2.c .bin, a run folder, a model .safetensors) is a llama.cpp model: llama.cpp's\n"
      "tensor names, hyperparameters and tokenizer, kept matrices and embeddings as --dtype,\n"
      "norms and biases F32. --plain-gguf writes the input's tensors as a plain container.");
  cmd->add_option("input", options.input,
                  "Input checkpoint: safetensors, a llama2.c .bin, or (to GGUF) a run folder")
      ->type_name("IN")
      ->required();
  cmd->add_option("-o,--output", options.output,
                  "Output: MX safetensors, or GGUF if it ends in .gguf (replaced atomically)")
      ->type_name("OUT")
      ->required();
  cmd->add_option("--only", options.selection.only, "Quantize only tensors matching this regex")
      ->type_name("REGEX");
  cmd->add_option("--skip", options.selection.skip, "Never quantize tensors matching this regex")
      ->type_name("REGEX");
  cmd->add_flag("--include-embeddings", options.selection.include_embeddings,
                "Quantize embeddings and the output head too");
  cmd->add_flag("--include-norms", options.selection.include_norms, "Quantize norm weights too");
  cmd->add_flag("--include-vectors", options.selection.include_vectors,
                "Quantize tensors of fewer than 2 dimensions (biases, gains) too");
  CLI::Option* plain_gguf = cmd->add_flag(
      "--plain-gguf", options.plain_gguf,
      "GGUF: the input's tensors under their own names, without llama.cpp's metadata");
  cmd->add_option("--dtype", options.dtype,
                  "GGUF model: type of the matrices and embeddings left unquantized (f32, f16, "
                  "bf16)")
      ->capture_default_str()
      ->excludes(plain_gguf);
  cmd->add_option("--tokenizer", options.tokenizer,
                  "GGUF model: the tokenizer to embed (default: the one the model names)")
      ->excludes(plain_gguf);
  cmd->add_flag("-q,--quiet", options.quiet, "No progress bar and no summary");
  add_spec_flags(cmd, &options.spec);
  cmd->callback([] { run_command("quantize", [] { return run_quantize(options); }); });
}

}  // namespace mx::tools
