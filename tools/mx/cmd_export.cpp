// `mx export RUN -o model.safetensors`: the weights of a training run's latest checkpoint (or
// of any model file `mx eval` reads, e.g. a llama2.c .bin) as a plain F32 safetensors file with
// Hugging Face tensor names, the model config and the tokenizer in its metadata. An output
// ending in .gguf is a model GGUF that llama.cpp runs (mx/train/model_gguf.h), unquantized.
#include <fmt/format.h>

#include "mx/core/dtype.h"
#include "mx/io/atomic_file.h"
#include "mx/io/container.h"
#include "mx/nn/model_file.h"
#include "mx/train/model_gguf.h"
#include "tools/mx/commands.h"
#include "tools/mx/run_command.h"

namespace mx::tools {
namespace {

struct ExportFlags {
  std::string model, out, tokenizer, dtype = "f32";
};

std::string run_export(const ExportFlags& f) {
  if (std::string e = io::check_output_file(f.out); !e.empty()) return e;
  const bool gguf = io::has_gguf_extension(f.out);
  const std::optional<DType> dtype = parse_dtype(f.dtype);
  if (!dtype) return fmt::format("--dtype {}: expected f32, f16 or bf16", f.dtype);
  if (!gguf && (*dtype != DType::kF32 || !f.tokenizer.empty())) {
    return "--dtype and --tokenizer apply to a .gguf output only";
  }
  nn::LoadedModel loaded;
  if (std::string e = nn::load_model_file(f.model, &loaded); !e.empty()) return e;
  const nn::Model& m = *loaded.model;
  if (gguf) {
    train::ModelGgufOptions options;
    options.quantize = false;
    options.float_type = *dtype;
    options.tokenizer = f.tokenizer;
    convert::ConvertReport report;
    if (std::string e = train::write_model_gguf(loaded, f.model, f.out, options, {}, &report);
        !e.empty()) {
      return e;
    }
  } else if (std::string e = nn::save_model_file(f.out, m.config(), m.params(), loaded.tokenizer);
             !e.empty()) {
    return e;
  }
  fmt::print("wrote {}: {}, {} parameters{}\n", f.out, nn::describe(m.config()), m.params().count(),
             gguf ? fmt::format(", a llama.cpp model with {} matrices", dtype_name(*dtype)) : "");
  return "";
}

}  // namespace

void register_export(CLI::App& app) {
  static ExportFlags f;
  CLI::App* cmd = app.add_subcommand(
      "export", "Write a run's (or a model file's) weights as safetensors, or GGUF for llama.cpp");
  cmd->add_option("model", f.model,
                  "A training run folder, a checkpoint, a model .safetensors or a llama2.c .bin")
      ->required();
  cmd->add_option("-o,--out", f.out,
                  "safetensors file to write, or a .gguf: a model llama.cpp runs")
      ->required();
  cmd->add_option("--dtype", f.dtype, "GGUF: type of matrices and embeddings (f32, f16, bf16)")
      ->capture_default_str();
  cmd->add_option("--tokenizer", f.tokenizer,
                  "GGUF: the tokenizer to embed (default: the one the model names)");
  cmd->callback([] { run_command("export", [] { return run_export(f); }); });
}

}  // namespace mx::tools
