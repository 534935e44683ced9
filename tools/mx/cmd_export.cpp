// `mx export RUN -o model.safetensors`: the weights of a training run's latest checkpoint (or
// of any model file `mx eval` reads, e.g. a llama2.c .bin) as a plain F32 safetensors file with
// Hugging Face tensor names, the model config and the tokenizer in its metadata.
#include <fmt/format.h>

#include "mx/io/atomic_file.h"
#include "mx/nn/model_file.h"
#include "tools/mx/commands.h"
#include "tools/mx/run_command.h"

namespace mx::tools {
namespace {

struct ExportFlags {
  std::string model, out;
};

std::string run_export(const ExportFlags& f) {
  if (std::string e = io::check_output_file(f.out); !e.empty()) return e;
  nn::LoadedModel loaded;
  if (std::string e = nn::load_model_file(f.model, &loaded); !e.empty()) return e;
  const nn::Model& m = *loaded.model;
  if (std::string e = nn::save_model_file(f.out, m.config(), m.params(), loaded.tokenizer);
      !e.empty()) {
    return e;
  }
  fmt::print("wrote {}: {}, {} parameters\n", f.out, nn::describe(m.config()), m.params().count());
  return "";
}

}  // namespace

void register_export(CLI::App& app) {
  static ExportFlags f;
  CLI::App* cmd =
      app.add_subcommand("export", "Write a run's (or a model file's) weights as safetensors");
  cmd->add_option("model", f.model,
                  "A training run folder, a checkpoint, a model .safetensors or a llama2.c .bin")
      ->required();
  cmd->add_option("-o,--out", f.out, "safetensors file to write")->required();
  cmd->callback([] { run_command("export", [] { return run_export(f); }); });
}

}  // namespace mx::tools
