// `mx export RUN -o model.safetensors`: the weights of a training run's latest checkpoint (or
// of any model file `mx eval` reads, e.g. a llama2.c .bin) as a plain F32 safetensors file with
// Hugging Face tensor names, the model config and the tokenizer in its metadata. With --format,
// the linear weights of the blocks are cast directly to MX and stored as MX tensors (the
// format `mx quantize` writes). An output ending in .gguf is a model GGUF that llama.cpp runs
// (mx/train/model_gguf.h): unquantized, or with ggml MXFP4 matrices under --format mxfp4_e2m1.
// With --hf the output is a folder that transformers' from_pretrained reads (mx/nn/hf_model.h):
// model.safetensors and config.json, the weights F32 (under --format, the values their MX
// blocks decode to).
#include <fmt/format.h>

#include <optional>

#include "mx/core/dtype.h"
#include "mx/io/atomic_file.h"
#include "mx/io/container.h"
#include "mx/io/output_folder.h"
#include "mx/io/safetensors.h"
#include "mx/kernels/cpu/quantize.h"
#include "mx/nn/hf_model.h"
#include "mx/nn/model_file.h"
#include "mx/train/model_gguf.h"
#include "tools/mx/commands.h"
#include "tools/mx/gguf_model_flags.h"
#include "tools/mx/run_command.h"
#include "tools/mx/spec_flags.h"

namespace mx::tools {
namespace {

struct ExportFlags {
  std::string model, out, tokenizer, dtype = "f32";
  bool hugging_face = false, quiet = false;
  SpecFlags spec;
};

// The blocks' linear weights cast directly with `spec`, by name.
std::string cast_linear_weights(const nn::Model& m, const QuantSpec& spec,
                                const cpu::Options& cpu_options,
                                std::map<std::string, MxTensor>* out) {
  const nn::Params& params = m.params();
  for (int64_t l = 0; l < m.config().n_layers; ++l) {
    for (const nn::LinearSite site : nn::kLinearSites) {
      const nn::ParamView* v = params.find_at(m.linear_weight(l, site));
      if (v == nullptr) continue;  // a site this architecture has not
      if (std::string e = cpu::quantize(params.data() + v->offset, DType::kF32, v->shape, spec,
                                        &(*out)[v->name], cpu_options);
          !e.empty()) {
        return fmt::format("{}: {}", v->name, e);
      }
    }
  }
  return "";
}

// The folder transformers reads: the parameters (the cast ones as their decoded values) in
// Hugging Face's layout, and config.json.
std::string write_hugging_face(const std::string& folder, const nn::Model& m,
                               const std::map<std::string, MxTensor>& cast) {
  // The cast weights decoded into a copy of the parameters; without casts, the model's own.
  std::optional<nn::Params> decoded;
  if (!cast.empty()) {
    decoded.emplace(m.config());
    std::copy(m.params().data(), m.params().data() + m.params().count(), decoded->data());
    for (const auto& [name, t] : cast) {
      if (std::string e = cpu::dequantize(t, DType::kF32, decoded->get(name)); !e.empty()) {
        return fmt::format("{}: {}", name, e);
      }
    }
  }
  std::vector<std::vector<float>> storage;
  std::vector<io::TensorToWrite> tensors;
  nn::hf_checkpoint_tensors(m.config(), decoded ? *decoded : m.params(), &storage, &tensors);
  io::OutputFolder out;
  if (std::string e = out.open(folder); !e.empty()) return e;
  // transformers refuses safetensors files without this metadata.
  if (std::string e =
          io::write_safetensors(out.file("model.safetensors"), tensors, {{"format", "pt"}});
      !e.empty()) {
    return out.named(e);
  }
  if (std::string e =
          io::write_text_atomically(out.file("config.json"), nn::hf_config_json(m.config()));
      !e.empty()) {
    return out.named(e);
  }
  return out.commit();
}

// Writes the file or folder; *wrote says what was written.
std::string write_export(const ExportFlags& f, std::string* wrote) {
  if (std::string e =
          f.hugging_face ? io::check_output_folder(f.out) : io::check_output_file(f.out);
      !e.empty()) {
    return e;
  }
  if (std::string e = check_spec_flags_need_format(f.spec); !e.empty()) return e;
  const bool mx = f.spec.format_option->count() > 0;
  QuantSpec spec;
  cpu::Options cpu_options;
  if (mx) {
    if (std::string e = build_spec(f.spec, &spec); !e.empty()) return e;
    if (std::string e = build_cpu_options(f.spec, &cpu_options); !e.empty()) return e;
  }
  const bool gguf = !f.hugging_face && io::has_gguf_extension(f.out);
  DType dtype = DType::kF32;
  if (std::string e = gguf_model_float_type(f.dtype, f.tokenizer, gguf, &dtype); !e.empty()) {
    return e;
  }
  nn::LoadedModel loaded;
  if (std::string e = nn::load_model_file(f.model, &loaded); !e.empty()) return e;
  const nn::Model& m = *loaded.model;
  if (gguf) {
    train::ModelGgufOptions options;
    options.quantize = mx;
    options.spec = spec;
    options.cpu = cpu_options;
    options.float_type = dtype;
    options.tokenizer = f.tokenizer;
    convert::ConvertReport report;
    if (std::string e = train::write_model_gguf(loaded, f.model, f.out, options, {}, &report);
        !e.empty()) {
      return e;
    }
    *wrote =
        fmt::format("wrote {}: {}, {} parameters, a llama.cpp model with {} matrices", f.out,
                    nn::describe(m.config()), m.params().count(), mx ? "MXFP4" : dtype_name(dtype));
    return "";
  }
  std::map<std::string, MxTensor> cast;
  if (mx) {
    if (std::string e = cast_linear_weights(m, spec, cpu_options, &cast); !e.empty()) return e;
  }
  if (f.hugging_face) {
    if (std::string e = write_hugging_face(f.out, m, cast); !e.empty()) return e;
    *wrote = fmt::format(
        "wrote {}/model.safetensors and config.json: {}, {} parameters{}, for transformers", f.out,
        nn::describe(m.config()), m.params().count(),
        mx ? fmt::format(", {} linear weights as {} (decoded)", cast.size(), describe(spec)) : "");
    return "";
  }
  if (std::string e = nn::save_model_file_mx(f.out, m.config(), m.params(), loaded.tokenizer, cast);
      !e.empty()) {
    return e;
  }
  *wrote = fmt::format(
      "wrote {}: {}, {} parameters{}", f.out, nn::describe(m.config()), m.params().count(),
      mx ? fmt::format(", {} linear weights as {}", cast.size(), describe(spec)) : "");
  return "";
}

std::string run_export(const ExportFlags& f) {
  std::string wrote;
  if (std::string e = write_export(f, &wrote); !e.empty()) return e;
  if (!f.quiet) fmt::print("{}\n", wrote);
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
                  "safetensors file to write, or a .gguf: a model llama.cpp runs (with --hf: "
                  "a folder)")
      ->required();
  cmd->add_flag("--hf", f.hugging_face,
                "Write a folder that transformers' from_pretrained reads (model.safetensors and "
                "config.json; GPT-2 and Llama)");
  cmd->add_option("--dtype", f.dtype, "GGUF: type of matrices and embeddings (f32, f16, bf16)")
      ->capture_default_str();
  cmd->add_option("--tokenizer", f.tokenizer,
                  "GGUF: the tokenizer to embed (default: the one the model names)");
  cmd->add_flag("-q,--quiet", f.quiet, "Print nothing on success");
  add_spec_flags(cmd, &f.spec);
  f.spec.format_option->description(
      "Cast the blocks' linear weights to this MX format (default: write FP32 only)");
  cmd->callback([] { run_command("export", [] { return run_export(f); }); });
}

}  // namespace mx::tools
