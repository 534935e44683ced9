#include "mx/train/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>

#include "mx/data/batch_sampler.h"
#include "mx/data/corpus.h"
#include "mx/data/token_dataset.h"
#include "mx/data/tokenizer.h"
#include "mx/io/cat.h"
#include "mx/nn/adamw.h"
#include "mx/nn/cpu/cpu_backend.h"
#include "mx/nn/model.h"
#include "mx/nn/model_file.h"
#include "mx/train/checkpoint.h"
#include "mx/train/evaluate.h"

namespace mx::train {
namespace {

namespace fs = std::filesystem;
using io::cat;
using Clock = std::chrono::steady_clock;

std::string path_in(const std::string& dir, const char* name) {
  return (fs::path(dir) / name).string();
}

void say(const TrainCallbacks& c, const std::string& line) {
  if (c.on_message) c.on_message(line);
}

// Keeps the log rows a resumed run inherits: those up to the checkpoint's step.
std::vector<LogRow> inherited_rows(const std::string& log_path, int64_t step) {
  std::vector<LogRow> rows, kept;
  if (!read_log(log_path, &rows).empty()) return kept;
  for (const LogRow& r : rows) {
    if (r.step <= step) kept.push_back(r);
  }
  return kept;
}

}  // namespace

std::string prepare_run_data(const TrainConfig& config, const std::string& run_dir,
                             const data::DataPaths& paths,
                             const std::function<void(const std::string&)>& on_message) {
  const fs::path dir = fs::path(run_dir) / "data";
  std::error_code ec;
  if (fs::exists(dir / "train.bin", ec) && fs::exists(dir / "val.bin", ec)) return "";
  data::Corpus corpus;
  if (std::string e = data::resolve_corpus(config.data, paths, &corpus); !e.empty()) return e;
  std::unique_ptr<data::Tokenizer> tokenizer;
  if (std::string e = data::load_tokenizer(config.tokenizer, paths, &tokenizer); !e.empty()) {
    return e;
  }
  if (on_message) {
    on_message(cat("tokenizing ", config.data, " with ", config.tokenizer, " into ", dir.string()));
  }
  data::TokenDatasetSummary summary;
  return data::write_token_dataset(corpus, *tokenizer, dir, &summary);
}

std::string run_training(TrainConfig* config, bool steps_given, const std::string& run_dir,
                         const TrainOptions& options, const TrainCallbacks& callbacks,
                         TrainResult* result) {
  std::error_code ec;
  const std::string ckpt_path = path_in(run_dir, kCheckpointFile);
  const bool have_checkpoint = fs::exists(ckpt_path, ec);
  if (options.resume) {
    if (!have_checkpoint) return cat("--resume: no checkpoint in ", run_dir);
    const int64_t steps_asked = config->steps;
    if (std::string e = read_checkpoint_config(ckpt_path, config); !e.empty()) return e;
    if (steps_given && steps_asked != config->steps) {
      return cat("--resume: the run in ", run_dir, " was started with --steps ", config->steps,
                 " (the schedule depends on it)");
    }
  } else if (have_checkpoint) {
    return cat(run_dir,
               " already holds a run; pass --resume to continue it or choose another "
               "--out");
  }
  if (std::string e = validate(*config); !e.empty()) return e;
  // The run folder appears only once the corpus and tokenizer are found (with the data).
  if (std::string e = prepare_run_data(*config, run_dir, options.paths, callbacks.on_message);
      !e.empty()) {
    return e;
  }
  data::TokenShard train_shard, val_shard;
  const fs::path data_dir = fs::path(run_dir) / "data";
  if (std::string e = data::open_shard(data_dir / "train.bin", &train_shard); !e.empty()) return e;
  if (std::string e = data::open_shard(data_dir / "val.bin", &val_shard); !e.empty()) return e;
  if (train_shard.header().vocab_size > config->model_config.vocab) {
    return cat("the data's vocabulary (", train_shard.header().vocab_size,
               ") is larger than the model's (", config->model_config.vocab, ")");
  }
  const data::TokenView train_tokens = train_shard.tokens();
  const data::TokenView val_tokens = val_shard.tokens();
  if (int64_t(train_tokens.size()) < config->seq_len + 1) {
    return cat("the training split has ", train_tokens.size(), " tokens, fewer than --seq-len + 1");
  }

  nn::Model model(config->model_config, std::make_unique<nn::CpuBackend>(options.threads));
  model.set_recipe(config->recipe);
  nn::AdamW optimizer(model.params(), config->adamw);
  RunState state;
  state.sampler.seed = config->seed;
  if (options.resume) {
    if (std::string e = load_checkpoint(ckpt_path, *config, &model.params(), &optimizer, &state);
        !e.empty()) {
      return e;
    }
    say(callbacks, cat("resuming ", run_dir, " at step ", state.step, " of ", config->steps));
  } else {
    model.params().init(config->seed);
    say(callbacks, cat(nn::describe(config->model_config), ", ", model.params().count(),
                       " parameters, recipe ", config->recipe.name));
  }

  const std::string log_path = path_in(run_dir, kLogFile);
  RunLog log;
  const std::vector<LogRow> kept =
      options.resume ? inherited_rows(log_path, state.step) : std::vector<LogRow>{};
  if (std::string e = log.open(log_path, kept); !e.empty()) return e;
  const double elapsed_before = kept.empty() ? 0.0 : kept.back().elapsed_s;

  const nn::LrSchedule schedule = schedule_of(*config);
  const int64_t last = std::min(config->steps, options.stop_at.value_or(config->steps));
  const EvalWindow window{config->batch, config->seq_len, config->eval_batches};
  TrainResult r;
  r.val_loss = std::numeric_limits<double>::quiet_NaN();
  for (auto it = kept.rbegin(); it != kept.rend(); ++it) {
    if (it->val_loss) {
      r.val_loss = *it->val_loss;
      break;
    }
  }
  const auto start = Clock::now();
  int64_t tokens_seen = 0;
  std::vector<float> recent;
  data::Batch batch;
  while (state.step < last) {
    const int64_t step = state.step;  // 0-based index of the step being taken
    if (std::string e = data::sample_batch(train_tokens, config->batch, config->seq_len,
                                           &state.sampler, &batch);
        !e.empty()) {
      return e;
    }
    model.set_step(uint64_t(step));
    model.zero_grad();
    const float loss =
        model.forward(batch.inputs.data(), batch.targets.data(), batch.rows, batch.seq_len);
    if (!std::isfinite(loss)) return cat("the loss is not finite at step ", step + 1);
    model.backward();
    const double norm = config->grad_clip > 0
                            ? nn::clip_grad_norm(model.params(), config->grad_clip)
                            : nn::global_grad_norm(model.params());
    const float lr = schedule.at(step);
    optimizer.step(model.params(), lr);
    state.step = step + 1;
    state.adam_steps = optimizer.steps();
    tokens_seen += batch.rows * batch.seq_len;

    LogRow row;
    row.step = state.step;
    row.lr = lr;
    row.train_loss = loss;
    row.grad_norm = norm;
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (state.step % config->eval_every == 0 || state.step == config->steps) {
      model.set_step(0);
      row.val_loss = evaluate_loss(model, val_tokens, window);
      r.val_loss = *row.val_loss;
    }
    row.tokens_per_s = seconds > 0 ? double(tokens_seen) / seconds : 0.0;
    row.elapsed_s = elapsed_before + std::chrono::duration<double>(Clock::now() - start).count();
    if (std::string e = log.append(row); !e.empty()) return e;
    recent.push_back(loss);
    if (recent.size() > 10) recent.erase(recent.begin());
    if (callbacks.on_step) callbacks.on_step(row, config->steps);
    if (state.step % config->checkpoint_every == 0 || state.step == last) {
      if (std::string e = save_checkpoint(ckpt_path, *config, model.params(), optimizer, state);
          !e.empty()) {
        return e;
      }
    }
  }
  r.steps_done = state.step;
  r.finished = state.step == config->steps;
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.tokens_per_s = r.seconds > 0 ? double(tokens_seen) / r.seconds : 0.0;
  float sum = 0;
  for (float l : recent) sum += l;
  r.train_loss = !recent.empty() ? sum / float(recent.size())
                 : kept.empty()  ? std::numeric_limits<float>::quiet_NaN()
                                 : kept.back().train_loss;
  if (r.finished) {
    if (std::string e =
            nn::save_model_file(path_in(run_dir, "model.safetensors"), config->model_config,
                                model.params(), config->tokenizer);
        !e.empty()) {
      return e;
    }
  }
  *result = r;
  return "";
}

}  // namespace mx::train
