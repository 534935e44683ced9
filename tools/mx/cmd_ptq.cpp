// `mx ptq MODEL --format F --calib DATA -o OUT`: post-training quantization by error diffusion
// (mx/ptq/model_ptq.h). Every linear weight of the model's blocks is quantized against the
// Hessian of its inputs on calibration sequences, with the layers before it already quantized,
// and the model is written as MX safetensors (the format `mx quantize` writes), or, for an
// output ending in .gguf, as a model GGUF that llama.cpp runs, its MXFP4 matrices the PTQ blocks.
#include <fmt/format.h>

#include <chrono>
#include <optional>

#include "mx/convert/quantize_checkpoint.h"
#include "mx/io/atomic_file.h"
#include "mx/io/container.h"
#include "mx/nn/model_file.h"
#include "mx/ptq/model_ptq.h"
#include "mx/ptq/refine.h"
#include "mx/train/eval_data.h"
#include "mx/train/model_gguf.h"
#include "tools/mx/commands.h"
#include "tools/mx/flag_checks.h"
#include "tools/mx/model_source.h"
#include "tools/mx/progress.h"
#include "tools/mx/run_command.h"
#include "tools/mx/spec_flags.h"

namespace mx::tools {
namespace {

struct PtqFlags {
  std::string model, out, calib, tokenizer, recipe, order, device = "cpu";
  int64_t samples = 128, seq_len = 0, batch = 8;
  double damp = 0.01, fp32_targets = 0;
  int refine = 0;
  bool act_order = false, scale_search = false, scale_lookahead = false, quiet = false;
  SpecFlags spec;
};

std::string column_order_from(const PtqFlags& f, ptq::ColumnOrder* out) {
  *out = f.act_order ? ptq::ColumnOrder::kActBlocks : ptq::ColumnOrder::kNatural;
  if (f.order.empty()) return "";
  const std::optional<ptq::ColumnOrder> o = ptq::parse_column_order(f.order);
  if (!o)
    return fmt::format("--order must be natural, act-blocks or act-columns, not '{}'", f.order);
  if (f.act_order && *o != ptq::ColumnOrder::kActBlocks) {
    return fmt::format("--act-order contradicts --order {}", f.order);
  }
  *out = *o;
  return "";
}

std::string run_ptq(const PtqFlags& f) {
  const auto start = std::chrono::steady_clock::now();
  if (std::string e = io::check_output_file(f.out); !e.empty()) return e;
  ptq::ModelPtqOptions options;
  if (std::string e = build_spec(f.spec, &options.spec); !e.empty()) return e;
  const bool gguf = io::has_gguf_extension(f.out);
  if (gguf) {
    if (std::string e = convert::check_gguf_spec(options.spec); !e.empty()) return e;
  }
  cpu::Options cpu_options;
  if (std::string e = build_cpu_options(f.spec, &cpu_options); !e.empty()) return e;
  if (std::string e = column_order_from(f, &options.gptq.order); !e.empty()) return e;
  options.gptq.damp = f.damp;
  options.gptq.scale = f.scale_lookahead ? ptq::ScaleChoice::kLookahead
                       : f.scale_search  ? ptq::ScaleChoice::kNeighbors
                                         : ptq::ScaleChoice::kRule;
  options.gptq.refine_passes = f.refine;
  if (f.refine > 0 && !ptq::refinement_keeps(options.spec.rounding)) {
    return fmt::format("--refine keeps nearest roundings only, not --round {}",
                       rounding_name(options.spec.rounding));
  }
  options.gptq.threads = cpu_options.threads;
  options.batch = f.batch;
  options.recipe = *nn::recipe_preset("fp32");
  if (!f.recipe.empty()) {
    if (std::string e = nn::recipe_from_spec(f.recipe, &options.recipe); !e.empty()) return e;
  }
  // The layer-wise passes need float32 activations, which a GPU keeps for fp32 recipes alone;
  // the activation casts of --recipe apply to them all the same.
  ModelSource source;
  if (std::string e = open_model_source(f.model, f.tokenizer, {f.device, cpu_options.threads},
                                        *nn::recipe_preset("fp32"), &source);
      !e.empty()) {
    return e;
  }
  nn::Model& model = *source.loaded.model;
  // The unquantized copy that --fp32-targets fits each layer to: the same file, opened again.
  ModelSource fp32_source;
  if (f.fp32_targets > 0) {
    if (std::string e = open_model_source(f.model, f.tokenizer, {f.device, cpu_options.threads},
                                          *nn::recipe_preset("fp32"), &fp32_source);
        !e.empty()) {
      return e;
    }
    options.fp32_model = fp32_source.loaded.model.get();
    options.fp32_target_weight = f.fp32_targets;
  }
  const int64_t ctx = model.config().seq_len;
  const int64_t seq_len = f.seq_len > 0 ? f.seq_len : std::min<int64_t>(ctx, 1024);
  if (seq_len > ctx) {
    return fmt::format("--seq-len {} is longer than the model's context {}", seq_len, ctx);
  }
  std::vector<uint32_t> tokens;
  if (std::string e =
          train::load_eval_tokens(f.calib, *source.tokenizer, data::data_paths_from_environment(),
                                  train::EvalSplit::kAll, &tokens);
      !e.empty()) {
    return e;
  }
  // The first samples x seq_len tokens of the data, as consecutive sequences.
  const int64_t needed = f.samples * seq_len;
  if (int64_t(tokens.size()) < needed) {
    return fmt::format("{} holds {} tokens, fewer than the {} x {} calibration tokens asked for",
                       f.calib, tokens.size(), f.samples, seq_len);
  }
  tokens.resize(size_t(needed));
  std::optional<Progress> progress;
  auto on_progress = [&](int64_t done, int64_t total, std::string_view name) {
    if (!progress) progress.emplace("weights", total, !f.quiet);
    progress->update(done, name);
  };
  std::map<std::string, MxTensor> quantized;
  std::string e =
      ptq::quantize_model(model, tokens, f.samples, seq_len, options, on_progress, &quantized);
  if (progress) progress->finish();
  if (!e.empty()) return e;
  if (gguf) {
    train::ModelGgufOptions gguf_options;
    gguf_options.stored = &quantized;
    gguf_options.tokenizer = f.tokenizer;
    convert::ConvertReport report;
    e = train::write_model_gguf(source.loaded, f.model, f.out, gguf_options, {}, &report);
  } else {
    e = nn::save_model_file_mx(f.out, model.config(), model.params(), source.loaded.tokenizer,
                               quantized);
  }
  if (!e.empty()) return e;
  if (!f.quiet) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    fmt::print(
        "quantized {} linear weights to {} by error diffusion (order {}, dampening {}{}{}{}) on "
        "{} x {} calibration tokens of {}{} on {} in {:.1f} s; wrote {}\n",
        quantized.size(), describe(options.spec), ptq::column_order_name(options.gptq.order),
        f.damp,
        f.scale_lookahead ? ", scale look-ahead"
        : f.scale_search  ? ", scale search"
                          : "",
        f.fp32_targets > 0 ? fmt::format(", FP32 targets {}", f.fp32_targets) : "",
        f.refine > 0 ? fmt::format(", {} refinement passes", f.refine) : "", f.samples, seq_len,
        f.calib, f.recipe.empty() ? "" : fmt::format(" under recipe {}", f.recipe), f.device,
        seconds, f.out);
  }
  return "";
}

}  // namespace

void register_ptq(CLI::App& app) {
  static PtqFlags f;
  f.spec.format = "mxfp4_e2m1";  // before add_spec_flags, so that --help shows it
  CLI::App* cmd = app.add_subcommand(
      "ptq", "Post-training quantization by error diffusion (GPTQ) into MX safetensors or GGUF");
  cmd->add_option("model", f.model,
                  "A training run folder, a model .safetensors, or a llama2.c .bin")
      ->required();
  cmd->add_option("-o,--out", f.out,
                  "MX safetensors file to write, or a .gguf (MXFP4): a model llama.cpp runs "
                  "(replaced atomically)")
      ->required();
  cmd->add_option("--calib", f.calib,
                  "Calibration text: sotu, study, tinyshakespeare, wikitext2, a .txt file or a "
                  "folder; its first samples x seq-len tokens are used")
      ->required();
  cmd->add_option("--samples", f.samples, "Calibration sequences")
      ->check(integer_in(1, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--seq-len", f.seq_len, "Tokens per sequence (default: context, at most 1024)")
      ->check(integer_in(1));
  cmd->add_option("--tokenizer", f.tokenizer, "Tokenizer (default: the one the model names)");
  cmd->add_flag("--act-order", f.act_order,
                "Activation order: blocks of input features by descending Hessian diagonal");
  cmd->add_option("--order", f.order,
                  "Column order: natural, act-blocks (= --act-order) or act-columns");
  CLI::Option* lookahead = cmd->add_flag(
      "--scale-lookahead", f.scale_lookahead,
      "Per block, of the same three scales as --scale-search, the one whose block adds the least "
      "to GPTQ's objective with its errors passed on inside the block");
  cmd->add_flag("--scale-search", f.scale_search,
                "Per block, the rule's scale or the power of two below or above it, whichever "
                "leaves the block the least error weighted by diag(H)")
      ->excludes(lookahead);
  cmd->add_option("--damp", f.damp, "Dampening: this fraction of mean(diag H) added to H")
      ->check(finite_in(0, 1e6))
      ->capture_default_str();
  cmd->add_option("--fp32-targets", f.fp32_targets,
                  "Fit each layer to the FP32 model's output on its own inputs, this share of "
                  "the way (0: off, as GPTQ; 1: whole); weights only")
      ->check(finite_in(0, 1))
      ->capture_default_str();
  cmd->add_option("--refine", f.refine,
                  "Sweeps of coordinate descent over the codes after GPTQ, each element moved "
                  "to the grid value that most lowers GPTQ's objective (0: none)")
      ->check(integer_in(0, 100))
      ->capture_default_str();
  cmd->add_option("--recipe", f.recipe,
                  "Collect the Hessians under this recipe's activation casts (as mx eval runs "
                  "it); its weight cast is not used");
  cmd->add_option("--batch", f.batch, "Calibration sequences per pass")
      ->check(integer_in(1, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--device", f.device,
                  "cpu, or cuda: the forward passes on the GPU; Hessians and error diffusion on "
                  "the CPU's threads")
      ->capture_default_str();
  cmd->add_flag("-q,--quiet", f.quiet, "No progress bar and no summary");
  add_spec_flags(cmd, &f.spec);
  cmd->callback([] { run_command("ptq", [] { return run_ptq(f); }); });
}

}  // namespace mx::tools
