// `mx train --model tiny --recipe mxfp6 --data sotu --steps N --out RUN_DIR`: trains a model
// with MX-quantized matmuls (mx/train/trainer.h), showing step, loss, tokens/s and ETA, with
// checkpoints and a CSV log in RUN_DIR. --stop-at K ends after step K as an interruption
// would; --resume continues the run in RUN_DIR.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "mx/data/paths.h"
#include "mx/nn/devices/devices.h"
#include "mx/nn/model_config.h"
#include "mx/nn/recipe.h"
#include "mx/train/rank_processes.h"
#include "mx/train/trainer.h"
#include "tools/mx/commands.h"
#include "tools/mx/flag_checks.h"
#include "tools/mx/model_source.h"
#include "tools/mx/progress.h"
#include "tools/mx/run_command.h"

namespace mx::tools {
namespace {

struct TrainFlags {
  std::string model = "tiny";
  std::string arch = "gpt2";
  std::string recipe = "fp32";
  std::string data = "sotu";
  std::string tokenizer;  // default: bytes, or gpt2 for the gpt2-* presets
  std::string out;
  std::string init;                              // a model file to start from
  int64_t steps = 300, batch = 16, seq_len = 0;  // seq_len, warmup: given only if counted
  int64_t micro_batch = 0;                       // 0: the whole batch
  uint64_t seed = 1;
  float lr = 3e-3f, min_lr = 3e-4f, weight_decay = 0.1f;
  int64_t warmup = 0;
  double grad_clip = 1.0;
  int64_t eval_every = 50, eval_batches = 8, checkpoint_every = 100;
  int64_t stop_at = 0;
  bool resume = false, json = false, quiet = false;
  bool forward_casts_only = false;  // the recipe's backward casts left out
  bool distill = false;             // learn --init's distribution
  bool init_moments = false;        // continue --init's AdamW second moments
  bool packed_products = false;     // MX products on packed operands (GPU)
  std::string product_algorithms;   // cuBLASLt's algorithms from a file (GPU)
  int threads = 0;
  std::string device = "cpu";
  int gpus = 1;
  int rank = -1;        // set in the processes that --gpus starts: this one's rank
  std::string rank_id;  // and the NCCL id they join by
  CLI::Option* steps_option = nullptr;
  CLI::Option* stop_at_option = nullptr;
  CLI::Option* seq_len_option = nullptr;
  CLI::Option* warmup_option = nullptr;
  // The options that set the run (shape, data, recipe, optimizer, schedule), which a resumed run
  // takes from its checkpoint instead.
  std::vector<const CLI::Option*> run_settings;
};

// Options that say how to run, not what the run is: a resumed run takes these.
bool sets_how_to_run(const CLI::Option& option) {
  static const std::set<std::string> how = {
      "out",  "steps", "stop-at", "resume", "threads", "device", "packed-products",
      "json", "quiet", "gpus",    "rank",   "rank-id", "help",   "product-algorithms"};
  return !option.get_lnames().empty() && how.contains(option.get_lnames().front());
}

// The run's settings from the flags (a resumed run takes them from its checkpoint instead).
std::string build_config(const TrainFlags& f, const data::DataPaths& paths, train::TrainConfig* c) {
  const std::optional<nn::Arch> arch = nn::parse_arch(f.arch);
  if (!arch) return "--arch must be gpt2 or llama";
  if (std::string e =
          f.init.empty()
              ? train::make_train_config(f.model, *arch, f.recipe, f.tokenizer, f.steps, paths, c)
              : train::make_finetune_config(f.init, f.recipe, f.tokenizer, f.steps, paths, c);
      !e.empty()) {
    return e;
  }
  if (f.forward_casts_only) {
    c->recipe = nn::forward_casts_for_training(
        c->recipe, f.device == "cuda" && !nn::recipe_wants_f32_activations(c->recipe));
  }
  c->distill = f.distill;
  c->init_moments = f.init_moments;
  c->data = f.data;
  c->batch = f.batch;
  c->micro_batch = f.micro_batch;
  if (f.seq_len_option->count() > 0) c->seq_len = f.seq_len;
  c->seed = f.seed;
  c->adamw.weight_decay = f.weight_decay;
  c->max_lr = f.lr;
  c->min_lr = f.min_lr;
  if (f.warmup_option->count() > 0) c->warmup = f.warmup;
  c->grad_clip = f.grad_clip;
  c->eval_every = f.eval_every;
  c->eval_batches = f.eval_batches;
  c->checkpoint_every = f.checkpoint_every;
  return train::validate(*c);
}

// `--gpus N`: this process starts N copies of its own command line, one per GPU, each told its
// rank and the communicator's id, and waits for them. A rank that fails has printed its own
// error; the others are stopped.
std::string launch_ranks(const TrainFlags& f) {
  if (f.device != "cuda") return fmt::format("--gpus {} needs --device cuda", f.gpus);
  std::string why;
  const int count = nn::gpu_count(&why);
  if (count == 0) return "--device cuda: " + why;
  if (count < f.gpus) {
    return fmt::format("--gpus {}: this machine has {} GPU{}", f.gpus, count,
                       count == 1 ? "" : "s");
  }
  std::string id;
  if (std::string e = nn::make_rank_id(&id); !e.empty()) return e;
  std::vector<std::vector<std::string>> argv;
  for (int r = 0; r < f.gpus; ++r) {
    std::vector<std::string> args = command_line();
    if (args.empty()) return "the command line is not known";
    args[0] = "/proc/self/exe";
    args.insert(args.end(), {"--rank", std::to_string(r), "--rank-id", id});
    argv.push_back(std::move(args));
  }
  train::RankExit failure;
  std::string e = train::run_rank_processes(argv, std::chrono::seconds(10), &failure);
  if (!e.empty() && failure.status == 2) {
    set_exit_code(2);  // the rank has printed its error line
    return "";
  }
  return e;
}

std::string run_train(const TrainFlags& f) {
  if (f.gpus > 1 && f.rank < 0) return launch_ranks(f);
  train::TrainOptions options;
  options.paths = data::data_paths_from_environment();
  options.resume = f.resume;
  options.threads = f.threads;
  options.device = f.device;
  options.packed_products = f.packed_products;
  options.product_algorithms = f.product_algorithms;
  if (f.rank >= 0) {
    if (f.rank >= f.gpus || f.rank_id.empty()) return "--rank is for the processes --gpus starts";
    options.rank = f.rank, options.world = f.gpus, options.gpu = f.rank;
    options.make_comm = [&f](nn::Backend& backend, std::unique_ptr<nn::Communicator>* out) {
      return nn::make_rank_communicator(backend, f.rank_id, f.rank, f.gpus, out);
    };
  }
  // Rank 0 alone reports: the others run quietly.
  const bool quiet = f.quiet || f.rank > 0, json = f.json && f.rank <= 0;
  if (f.stop_at_option->count() > 0) options.stop_at = f.stop_at;
  if (f.resume) {
    for (const CLI::Option* o : f.run_settings) {
      if (o->count() > 0) {
        return fmt::format("--{}: a resumed run keeps the settings of its checkpoint",
                           o->get_lnames().front());
      }
    }
  }
  train::TrainConfig config;
  if (!f.resume) {
    if (std::string e = build_config(f, options.paths, &config); !e.empty()) return e;
  } else {
    config.steps = f.steps;
  }
  std::unique_ptr<Progress> progress;
  train::TrainCallbacks callbacks;
  callbacks.on_message = [&](const std::string& line) {
    if (!quiet) fmt::print(stderr, "{}\n", line);
  };
  callbacks.on_step = [&](const train::LogRow& row, int64_t total) {
    if (quiet) return;
    if (!progress) progress = std::make_unique<Progress>("steps", total);
    std::string detail = fmt::format("loss {:.4f}", row.train_loss);
    if (row.val_loss) detail += fmt::format(" val {:.4f}", *row.val_loss);
    detail += fmt::format(" {:.0f} tok/s", row.tokens_per_s);
    progress->update(row.step, detail);
  };
  train::TrainResult r;
  if (std::string e =
          train::run_training(&config, f.steps_option->count() > 0, f.out, options, callbacks, &r);
      !e.empty()) {
    return f.rank >= 0 ? fmt::format("rank {}: {}", f.rank, e) : e;
  }
  if (progress) progress->finish();
  if (json) {
    nlohmann::json j = nlohmann::json::object();
    j["run_dir"] = f.out;
    j["model"] = config.model;
    j["recipe"] = config.recipe.name;
    j["steps"] = r.steps_done;
    j["finished"] = r.finished;
    j["train_loss"] = r.train_loss;
    j["val_loss"] = std::isnan(r.val_loss) ? nlohmann::json() : nlohmann::json(r.val_loss);
    j["tokens_per_s"] = r.tokens_per_s;
    j["seconds"] = r.seconds;
    fmt::print("{}\n", j.dump());
  } else if (!quiet) {
    // A run stopped before its first validation pass has no validation loss to show.
    const std::string val = std::isnan(r.val_loss) ? std::string("no validation pass yet")
                                                   : fmt::format("val loss {:.4f}", r.val_loss);
    fmt::print("{} {} steps {}/{}: train loss {:.4f}, {}, {:.0f} tokens/s\n", config.recipe.name,
               r.finished ? "finished" : "stopped", r.steps_done, config.steps, r.train_loss, val,
               r.tokens_per_s);
    fmt::print("run folder: {} (log.csv, checkpoint.safetensors{})\n", f.out,
               r.finished ? ", model.safetensors" : "");
  }
  return "";
}

}  // namespace

void register_train(CLI::App& app) {
  static TrainFlags f;
  CLI::App* cmd = app.add_subcommand("train", "Train a language model with an MX recipe");
  CLI::Option* model =
      cmd->add_option("--model", f.model, "Model preset: " + nn::model_preset_list())
          ->capture_default_str();
  CLI::Option* arch = cmd->add_option("--arch", f.arch, "gpt2 or llama")->capture_default_str();
  CLI::Option* init =
      cmd->add_option("--init", f.init,
                      "Start from this model's weights (a model file or a run folder): finetuning; "
                      "the model's shape is the file's")
          ->excludes(model)
          ->excludes(arch);
  cmd->add_option("--recipe", f.recipe,
                  "fp32, tf32 (GPU), bf16, mxint8, mxfp8, mxfp6, mxfp4w-mxfp6a, mxfp4, JSON text "
                  "or a JSON file")
      ->capture_default_str();
  cmd->add_option("--data", f.data,
                  "sotu, study, tinyshakespeare, wikitext2, a .txt file, a folder, or one that mx "
                  "corpus build or mx tokenizer shards wrote")
      ->capture_default_str();
  cmd->add_option("--tokenizer", f.tokenizer,
                  "bytes, gpt2, a SentencePiece .model or a llama2.c .bin (default: bytes; "
                  "gpt2 for the gpt2-* presets)");
  cmd->add_option("-o,--out", f.out, "Run folder (checkpoints, log.csv)")->required();
  f.steps_option = cmd->add_option("--steps", f.steps, "Total steps of the run")
                       ->check(integer_in(1))
                       ->capture_default_str();
  cmd->add_option("--batch", f.batch, "Sequences per step")
      ->check(integer_in(1))
      ->capture_default_str();
  cmd->add_option("--micro-batch", f.micro_batch,
                  "Sequences per forward and backward pass; a step accumulates the gradients of "
                  "batch / micro-batch passes (default: the whole batch)")
      ->check(integer_in(1));
  f.seq_len_option =
      cmd->add_option("--seq-len", f.seq_len, "Tokens per sequence (default: the model's context)")
          ->check(integer_in(1));
  cmd->add_option("--seed", f.seed, "Seed of the initialization and the batches")
      ->check(unsigned_integer())
      ->capture_default_str();
  cmd->add_option("--lr", f.lr, "Peak learning rate")->check(finite_in(0))->capture_default_str();
  cmd->add_option("--min-lr", f.min_lr, "Final learning rate of the cosine")
      ->check(finite_in(0))
      ->capture_default_str();
  f.warmup_option =
      cmd->add_option("--warmup", f.warmup, "Warm-up steps (default: steps/10, at most 100)")
          ->check(integer_in(0));
  cmd->add_option("--weight-decay", f.weight_decay, "AdamW weight decay")
      ->check(finite_in(0))
      ->capture_default_str();
  cmd->add_option("--grad-clip", f.grad_clip, "Global gradient-norm clip (0: none)")
      ->check(finite_in(0))
      ->capture_default_str();
  cmd->add_option("--eval-every", f.eval_every, "Steps between validation passes")
      ->check(integer_in(1))
      ->capture_default_str();
  cmd->add_option("--eval-batches", f.eval_batches, "Batches per validation pass")
      ->check(integer_in(1))
      ->capture_default_str();
  cmd->add_option("--checkpoint-every", f.checkpoint_every, "Steps between checkpoints")
      ->check(integer_in(1))
      ->capture_default_str();
  f.stop_at_option =
      cmd->add_option("--stop-at", f.stop_at, "Stop after this step, leaving a checkpoint")
          ->check(integer_in(1));
  cmd->add_flag("--resume", f.resume, "Continue the run in --out")->excludes(init);
  cmd->add_option("--threads", f.threads, "Threads (0: all)")->check(thread_count());
  cmd->add_option("--device", f.device,
                  "cpu, or cuda (bfloat16 activations; float32 for the fp32 and tf32 recipes)")
      ->capture_default_str();
  add_packed_products_flag(cmd, &f.packed_products);
  add_product_algorithms_option(cmd, &f.product_algorithms);
  cmd->add_flag("--forward-casts-only", f.forward_casts_only,
                "Cast only the forward products' operands, the gradients' products staying in "
                "FP32: quantization-aware finetuning (recipe name gets -forward)");
  cmd->add_flag(
         "--distill", f.distill,
         "Learn --init's next-token distribution: the training loss is the KL divergence "
         "from its logits (its FP32 weights, no casts) instead of the cross-entropy with the "
         "next token; validation stays cross-entropy")
      ->needs(init);
  cmd->add_flag("--init-moments", f.init_moments,
                "Continue --init's AdamW second moments (and update count) from its training "
                "checkpoint, the first moments from zero: --init must be a run folder or its "
                "checkpoint.safetensors")
      ->needs(init);
  cmd->add_option("--gpus", f.gpus,
                  "GPUs to train on, one process each (data-parallel, with --device cuda)")
      ->check(integer_in(1, 1024))
      ->capture_default_str();
  // Set by --gpus in the processes it starts; not for users.
  cmd->add_option("--rank", f.rank)->group("")->check(integer_in(0, 1023));
  cmd->add_option("--rank-id", f.rank_id)->group("");
  cmd->add_flag("--json", f.json, "Print the final figures as one JSON object");
  cmd->add_flag("-q,--quiet", f.quiet, "No progress display");
  for (const CLI::Option* o : cmd->get_options()) {
    if (!sets_how_to_run(*o)) f.run_settings.push_back(o);
  }
  cmd->callback([] { run_command("train", [] { return run_train(f); }); });
}

}  // namespace mx::tools
