// Everything that defines a training run. It is written into every checkpoint, so that
// `mx train --resume` continues with exactly the settings the run started with.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "mx/data/paths.h"
#include "mx/nn/adamw.h"
#include "mx/nn/model_config.h"
#include "mx/nn/recipe.h"

namespace mx::train {

struct TrainConfig {
  std::string model = "tiny";  // a preset name (model_config.h), recorded for the logs
  std::string init;            // a model file whose weights start the run ("": random, seeded)
  // Learn init's next-token distribution rather than the next token: the training loss is the
  // KL divergence from init's logits (FP32 weights, no casts) to the model's (needs init).
  bool distill = false;
  // Start AdamW's second moments and update count from init's training checkpoint (a run folder
  // or its checkpoint.safetensors), the first moments from zero: the finetune's first steps are
  // then scaled by the gradient sizes that training saw, not by their own (needs init).
  bool init_moments = false;
  nn::ModelConfig model_config;
  nn::Recipe recipe;
  std::string data = "sotu";        // a corpus name, a .txt file or a folder (corpus.h)
  std::string tokenizer = "bytes";  // load_tokenizer's spec
  int64_t steps = 300;              // the run's total; the schedule depends on it
  int64_t batch = 16;               // sequences per step
  int64_t micro_batch = 0;          // sequences per pass (0: the whole batch); divides batch
  int64_t seq_len = 64;             // tokens per sequence (<= model_config.seq_len)
  uint64_t seed = 1;                // parameter init and batch sampling
  nn::AdamWConfig adamw;
  float max_lr = 3e-3f, min_lr = 3e-4f;
  int64_t warmup = 30;
  double grad_clip = 1.0;          // global-norm clip; <= 0: none
  int64_t eval_every = 50;         // steps between validation passes (and the last step)
  int64_t eval_batches = 8;        // validation batches per pass
  int64_t checkpoint_every = 100;  // steps between checkpoints (and the last step)
};

// The config as JSON (every field) and back; parsing refuses missing or unknown fields, except
// "micro_batch", "init", "distill" and "init_moments", which runs made before they existed lack
// (such runs passed the whole batch at once, started from random weights with fresh moments and
// learnt the next token).
std::string train_config_to_json(const TrainConfig& config);
std::string parse_train_config_json(std::string_view json, TrainConfig* out);

// "" when the run can start: sizes positive, seq_len within the model's context, ...
std::string validate(const TrainConfig& config);

// A run that starts from the weights of the model file `init` (finetuning): the model's shape
// and context are the file's, the tokenizer `tokenizer` or else the one the file names (its
// vocabulary must fit the model's); the rest as make_train_config. Not validated.
std::string make_finetune_config(const std::string& init, std::string_view recipe,
                                 std::string_view tokenizer, int64_t steps,
                                 const data::DataPaths& paths, TrainConfig* out);

nn::LrSchedule schedule_of(const TrainConfig& config);

// Sequences per forward and backward pass, and passes per step (gradient accumulation).
int64_t pass_rows(const TrainConfig& config);
int64_t passes_per_step(const TrainConfig& config);

// A run of the preset `model` (model_config.h) of `arch`, with `recipe` (a preset name or a
// JSON file) and `tokenizer` (load_tokenizer's spec; "" picks "bytes", or "gpt2" for presets
// whose vocabulary is larger than 256). The model's vocabulary becomes the tokenizer's,
// seq_len its full context, warmup a tenth of the steps (at most 100); everything else keeps the
// defaults above. Not validated: the caller sets the rest first.
std::string make_train_config(std::string_view model, nn::Arch arch, std::string_view recipe,
                              std::string_view tokenizer, int64_t steps,
                              const data::DataPaths& paths, TrainConfig* out);

}  // namespace mx::train
