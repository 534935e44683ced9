#include "mx/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <memory>
#include <set>

#include "mx/data/batch_prefetch.h"
#include "mx/data/batch_sampler.h"
#include "mx/data/corpus.h"
#include "mx/data/llmc_shards.h"
#include "mx/data/token_shard.h"
#include "mx/data/token_shard_folder.h"
#include "mx/data/tokenizer.h"
#include "mx/io/atomic_file.h"
#include "mx/io/cat.h"
#include "mx/io/memory_budget.h"
#include "mx/nn/adamw.h"
#include "mx/nn/devices/devices.h"
#include "mx/nn/model.h"
#include "mx/nn/model_file.h"
#include "mx/nn/sharded_adamw.h"
#include "mx/train/checkpoint.h"
#include "mx/train/evaluate.h"
#include "mx/train/run_folder.h"
#include "mx/train/run_summary.h"

namespace mx::train {
namespace {

namespace fs = std::filesystem;
using io::cat;
using Clock = std::chrono::steady_clock;

nn::DeviceOptions device_options(const TrainOptions& o) {
  return {o.device, o.threads, false, o.gpu, o.packed_products, o.product_algorithms};
}

std::string path_in(const std::string& dir, const char* name) {
  return (fs::path(dir) / name).string();
}

void say(const TrainCallbacks& c, const std::string& line) {
  if (c.on_message) c.on_message(line);
}

// Everything a run needs, opened and checked before its first step.
struct OpenRun {
  RunFolderLock lock;
  std::unique_ptr<nn::Backend> backend;  // until the model takes it
  TrainConfig config;
  RunState state;
  data::TokenShard train_shard, val_shard;
  std::unique_ptr<nn::Model> model;
  std::unique_ptr<nn::Model> teacher;    // a distilling run's (--distill)
  std::unique_ptr<nn::AdamW> optimizer;  // one rank
  // Data-parallel: the ranks, this rank's optimizer and its rows of each global batch.
  nn::Communicator* comm = nullptr;
  std::unique_ptr<nn::Communicator> owned_comm;  // made here, on the backend; goes before it
  std::unique_ptr<nn::ShardedAdamW> sharded;
  nn::BatchSlice slice;
  int rank_ = 0, world_ = 1;
  bool leader() const { return rank_ == 0; }
  int world() const { return world_; }
  int rank() const { return rank_; }
  // Sequences per forward and backward pass of this rank, and its passes per step.
  int64_t pass_rows = 0, passes = 1;
  std::vector<LogRow> inherited;  // the log rows a resumed run keeps
  RunLog log;
};

// The rows of a resumed run's log up to its checkpoint's step, which must be all of steps 1..step
// in order: a damaged log is refused rather than shortened. A missing log starts afresh.
std::string inherited_rows(const std::string& log_path, int64_t step, const TrainCallbacks& c,
                           std::vector<LogRow>* kept) {
  std::error_code ec;
  if (!fs::exists(log_path, ec)) {
    say(c, cat(log_path, " is missing: the resumed log starts at step ", step + 1));
    return "";
  }
  std::vector<LogRow> rows;
  if (std::string e = read_log(log_path, &rows); !e.empty()) {
    return cat(e, "; resuming would drop the log's earlier rows (repair or delete ", log_path,
               " to resume)");
  }
  for (const LogRow& r : rows) {
    if (r.step > step) break;
    if (r.step != int64_t(kept->size()) + 1) {
      return cat(log_path, ": step ", r.step, " follows step ", kept->size(),
                 "; resuming would drop rows (repair or delete the log to resume)");
    }
    kept->push_back(r);
  }
  if (int64_t(kept->size()) != step) {
    return cat(log_path, " ends at step ", kept->size(), " but the checkpoint is at step ", step,
               " (repair or delete the log to resume)");
  }
  return "";
}

// On the CPU the whole run lives in host memory; on a GPU the host keeps the weights, gradients
// and moments' copies, and the model checks the device's memory for its activations itself.
std::string check_memory_for(const TrainConfig& c, const std::string& device) {
  const bool cpu = device == "cpu";
  const double params = double(nn::Params(c.model_config, false).count());
  double bytes = cpu ? nn::Model::training_bytes(c.model_config, pass_rows(c), c.seq_len)
                     : 4.0 * sizeof(float) * params;
  if (c.distill) {
    // The teacher: its weights and gradient buffers (a Model holds both), and on the CPU its
    // activations.
    bytes += 2.0 * sizeof(float) * params +
             (cpu ? nn::Model::activation_bytes(c.model_config, pass_rows(c), c.seq_len) : 0.0);
  }
  const char* pass = c.micro_batch > 0 ? " with micro-batches of " : " with batches of ";
  return io::check_memory(
      bytes, cat("training ", c.model, pass, pass_rows(c), " x ", c.seq_len, " tokens"));
}

// What a new run checks before its folder is made: its settings, the output, the memory it
// needs, and that its corpus and tokenizer can be found.
std::string check_new_run(const TrainConfig& c, const std::string& run_dir,
                          const TrainOptions& options, std::unique_ptr<nn::Backend>* backend) {
  if (std::string e = validate(c); !e.empty()) return e;
  if (std::string e = io::check_output_folder(run_dir); !e.empty()) return e;
  if (std::string e = check_memory_for(c, options.device); !e.empty()) return e;
  if (std::string e = nn::make_backend(device_options(options), c.recipe, backend); !e.empty()) {
    return e;
  }
  const data::DataPaths& paths = options.paths;
  if (data::is_token_shard_folder(c.data)) {
    std::unique_ptr<data::Tokenizer> tokenizer;
    if (std::string e = data::load_tokenizer(c.tokenizer, paths, &tokenizer); !e.empty()) return e;
    data::TokenShard train, validation;
    return data::open_token_shard_folder(c.data, uint32_t(tokenizer->vocab_size()), &train,
                                         &validation);
  }
  if (data::is_llmc_shard_folder(c.data)) {
    data::LlmcShards shards;
    if (std::string e = data::find_llmc_shards(c.data, &shards); !e.empty()) return e;
    for (const auto* split : {&shards.train, &shards.validation}) {
      for (const fs::path& shard : *split) {
        int64_t count = 0;
        if (std::string e = data::llmc_shard_token_count(shard, &count); !e.empty()) return e;
      }
    }
  } else {
    data::Corpus corpus;
    if (std::string e = data::resolve_corpus(c.data, paths, &corpus); !e.empty()) return e;
  }
  std::unique_ptr<data::Tokenizer> tokenizer;
  return data::load_tokenizer(c.tokenizer, paths, &tokenizer);
}

// Locks the folder, then reads the checkpoint (resume) or checks that there is none (new run).
std::string open_settings(TrainConfig* config, bool steps_given, const std::string& run_dir,
                          const TrainOptions& options, OpenRun* run, Checkpoint* checkpoint) {
  std::error_code ec;
  if (options.resume && !fs::is_directory(run_dir, ec)) {
    return cat("--resume: no checkpoint in ", run_dir);
  }
  if (!run->leader()) {
    // Rank 0 checks the settings and holds the folder; the others read what it holds.
    if (!options.resume) {
      run->config = *config;
      return validate(*config);
    }
    if (std::string e = checkpoint->open(path_in(run_dir, kCheckpointFile)); !e.empty()) return e;
    *config = checkpoint->config();
    run->config = *config;
    run->state = checkpoint->state();
    return "";
  }
  if (!options.resume) {
    if (std::string e = check_new_run(*config, run_dir, options, &run->backend); !e.empty()) {
      return e;
    }
  }
  if (std::string e = run->lock.acquire(run_dir); !e.empty()) return e;
  io::remove_stale_temporaries(run_dir);
  io::remove_stale_temporaries(path_in(run_dir, "data"));
  const std::string ckpt_path = path_in(run_dir, kCheckpointFile);
  const bool have_checkpoint = fs::exists(ckpt_path, ec);
  if (!options.resume) {
    if (have_checkpoint) {
      return cat(run_dir,
                 " already holds a run; pass --resume to continue it or choose another "
                 "--out");
    }
    // A final model or summary without a checkpoint belongs to no run that can continue here.
    fs::remove(path_in(run_dir, "model.safetensors"), ec);
    fs::remove(path_in(run_dir, kRunSummaryFile), ec);
    run->config = *config;
    return "";
  }
  if (!have_checkpoint) return cat("--resume: no checkpoint in ", run_dir);
  if (std::string e = checkpoint->open(ckpt_path); !e.empty()) return e;
  if (steps_given && config->steps != checkpoint->config().steps) {
    return cat("--resume: the run in ", run_dir, " was started with --steps ",
               checkpoint->config().steps, " (the schedule depends on it)");
  }
  *config = checkpoint->config();
  run->config = *config;
  run->state = checkpoint->state();
  if (run->state.step > config->steps) {
    return cat(ckpt_path, ": its step ", run->state.step, " is past the run's ", config->steps);
  }
  return check_memory_for(*config, options.device);
}

// The weights of the model file c.init, whose shape must be the run's.
std::string load_initial_weights(const TrainConfig& c, nn::Params* params) {
  nn::LoadedModel loaded;
  if (std::string e = nn::load_model_file(c.init, &loaded, 1); !e.empty()) return "--init: " + e;
  const nn::Params& from = loaded.model->params();
  if (nn::model_config_to_json(loaded.model->config()) !=
          nn::model_config_to_json(c.model_config) ||
      from.count() != params->count()) {
    return cat("--init: ", c.init, " holds a ", nn::describe(loaded.model->config()),
               ", not the run's ", nn::describe(c.model_config));
  }
  std::copy(from.data(), from.data() + from.count(), params->data());
  return "";
}

// AdamW's second moments and update count from the training checkpoint of c.init (a run folder
// or the checkpoint itself), whose moments must have one value per parameter of the run's
// model; the first moments zero.
std::string load_initial_moments(const TrainConfig& c, OpenRun* run) {
  const fs::path init(c.init);
  std::error_code ec;
  const std::string path = fs::is_directory(init, ec) ? (init / kCheckpointFile).string() : c.init;
  Checkpoint checkpoint;
  if (std::string e = checkpoint.open(path); !e.empty()) return "--init-moments: " + e;
  // The moments as the optimizers hold them: one per element of the parameter buffer, whose
  // tail past the parameters (if any) stays zero.
  const nn::Params& params = run->model->params();
  std::vector<float> v(size_t(params.size()));
  if (std::string e = checkpoint.load_moments(params.count(), nullptr, v.data()); !e.empty()) {
    return "--init-moments: " + e;
  }
  const int64_t steps = checkpoint.state().adam_steps;
  if (run->sharded != nullptr) {
    return run->sharded->load_moments(std::vector<float>(v.size()), v, steps);
  }
  std::copy(v.begin(), v.end(), run->optimizer->v().begin());
  std::fill(run->optimizer->m().begin(), run->optimizer->m().end(), 0.0f);
  run->optimizer->set_steps(steps);
  run->optimizer->upload();
  return "";
}

// The model a distilling run learns from: --init's weights on a backend of its own on the same
// device, with the student's activation type (so that their logits compare) and no casts: the
// `fp32` recipe, or `bf16` where the activations are bfloat16.
std::string open_teacher(const TrainConfig& c, const TrainOptions& options, OpenRun* run) {
  std::unique_ptr<nn::Backend> backend;
  if (std::string e = nn::make_backend(device_options(options), c.recipe, &backend); !e.empty()) {
    return e;
  }
  nn::Recipe plain;
  const bool bf16 = backend->act_type() == nn::BufType::kBF16;
  if (std::string e = nn::recipe_from_spec(bf16 ? "bf16" : "fp32", &plain); !e.empty()) return e;
  run->teacher = std::make_unique<nn::Model>(c.model_config, std::move(backend));
  run->teacher->set_recipe(plain);
  if (std::string e = load_initial_weights(c, &run->teacher->params()); !e.empty()) return e;
  run->teacher->upload_params();
  return run->teacher->reserve(run->pass_rows, c.seq_len);
}

// Every rank waits here until all have arrived (rank 0 with the run's data ready).
std::string barrier(nn::Communicator* comm) {
  if (comm == nullptr) return "";
  double arrived = 1;
  comm->all_reduce_sum(&arrived, 1);
  return comm->take_error();
}

std::string open_run(TrainConfig* config, bool steps_given, const std::string& run_dir,
                     const TrainOptions& options, const TrainCallbacks& callbacks, OpenRun* run) {
  run->comm = options.comm;
  run->rank_ = options.comm != nullptr ? options.comm->rank() : options.rank;
  run->world_ = options.comm != nullptr ? options.comm->size() : options.world;
  if (run->world_ < 1 || run->rank_ < 0 || run->rank_ >= run->world_) {
    return cat("rank ", run->rank_, " is not among the ", run->world_, " ranks");
  }
  if (run->comm == nullptr && run->world_ > 1 && !options.make_comm) {
    return "a run of several ranks needs a communicator";
  }
  Checkpoint checkpoint;
  if (std::string e = open_settings(config, steps_given, run_dir, options, run, &checkpoint);
      !e.empty()) {
    return e;
  }
  const TrainConfig& c = run->config;
  if (run->backend == nullptr) {
    if (std::string e = nn::make_backend(device_options(options), c.recipe, &run->backend);
        !e.empty()) {
      return e;
    }
  }
  if (run->comm == nullptr && options.make_comm) {
    if (std::string e = options.make_comm(*run->backend, &run->owned_comm); !e.empty()) return e;
    run->comm = run->owned_comm.get();
  }
  if (run->leader()) {
    if (std::string e =
            prepare_run_data(c, run_dir, options.resume, options.paths, callbacks.on_message);
        !e.empty()) {
      return e;
    }
  }
  if (std::string e = barrier(run->comm); !e.empty()) return e;
  if (std::string e =
          nn::batch_slice(c.batch, c.micro_batch, run->world(), run->rank(), &run->slice);
      !e.empty()) {
    return e;
  }
  run->pass_rows = c.micro_batch > 0 ? c.micro_batch : run->slice.rows;
  run->passes = run->slice.rows / run->pass_rows;
  const fs::path data_dir = fs::path(run_dir) / "data";
  if (std::string e = data::open_shard(data_dir / "train.bin", &run->train_shard); !e.empty()) {
    return e;
  }
  if (std::string e = data::open_shard(data_dir / "val.bin", &run->val_shard); !e.empty()) {
    return e;
  }
  if (run->train_shard.header().vocab_size > c.model_config.vocab) {
    return cat("the data's vocabulary (", run->train_shard.header().vocab_size,
               ") is larger than the model's (", c.model_config.vocab, ")");
  }
  if (int64_t(run->train_shard.tokens().size()) < c.seq_len + 1) {
    return cat("the training split has ", run->train_shard.tokens().size(),
               " tokens, fewer than --seq-len + 1");
  }
  run->model = std::make_unique<nn::Model>(c.model_config, std::move(run->backend));
  run->model->set_recipe(c.recipe);
  if (std::string e = run->model->reserve(run->pass_rows, c.seq_len); !e.empty()) return e;
  if (c.distill) {
    if (std::string e = open_teacher(c, options, run); !e.empty()) return "--distill: " + e;
  }
  if (run->comm != nullptr) {
    if (std::string e = nn::ShardedAdamW::create(*run->model, *run->comm, c.adamw, &run->sharded);
        !e.empty()) {
      return e;
    }
  } else {
    run->optimizer = std::make_unique<nn::AdamW>(*run->model, c.adamw);
  }
  const std::string log_path = path_in(run_dir, kLogFile);
  if (options.resume) {
    if (run->sharded != nullptr) {
      const size_t n = size_t(run->model->params().size());
      std::vector<float> m(n), v(n);
      if (std::string e = checkpoint.load(&run->model->params(), m.data(), v.data()); !e.empty()) {
        return e;
      }
      if (std::string e = run->sharded->load_moments(m, v, run->state.adam_steps); !e.empty()) {
        return e;
      }
    } else {
      if (std::string e = checkpoint.load(&run->model->params(), run->optimizer.get());
          !e.empty()) {
        return e;
      }
      run->optimizer->upload();
    }
    run->model->upload_params();
    if (!run->leader()) return "";
    if (std::string e = inherited_rows(log_path, run->state.step, callbacks, &run->inherited);
        !e.empty()) {
      return e;
    }
    say(callbacks, cat("resuming ", run_dir, " at step ", run->state.step, " of ", c.steps));
  } else {
    run->state.sampler.seed = c.seed;
    if (c.init.empty()) {
      run->model->params().init(c.seed);
    } else if (std::string e = load_initial_weights(c, &run->model->params()); !e.empty()) {
      return e;
    }
    if (c.init_moments) {
      if (std::string e = load_initial_moments(c, run); !e.empty()) return e;
    }
    run->model->upload_params();
    if (run->leader()) {
      say(callbacks, cat(nn::describe(c.model_config), ", ", run->model->params().count(),
                         " parameters, recipe ", c.recipe.name,
                         c.distill ? cat(", learning the distribution of ", c.init) : "",
                         run->world() > 1 ? cat(", ", run->world(), " ranks") : ""));
    }
  }
  return run->leader() ? run->log.open(log_path, run->inherited) : "";
}

// One optimizer step on the next batch; fills the row's step, lr, loss and gradient norm.
std::string train_step(OpenRun& run, const nn::LrSchedule& schedule, data::BatchPrefetcher& batches,
                       data::Batch* batch, LogRow* row) {
  const TrainConfig& c = run.config;
  nn::Model& model = *run.model;
  const int64_t step = run.state.step;  // 0-based index of the step being taken
  if (std::string e = batches.next(batch, &run.state.sampler); !e.empty()) return e;
  // This rank's rows of the batch in passes of pass_rows sequences, whose gradients add up
  // (over the passes and the ranks) to the batch mean's. Each pass keys its stochastic rounding
  // apart, as the same pass of a one-rank run with those micro-batches would; one pass per step
  // keeps the step's keys.
  const int64_t passes = run.passes, rows = run.pass_rows;
  const int64_t all_passes = passes * run.world();
  model.zero_grad();
  nn::PassOptions training;
  training.training = true;
  training.grad_scale = 1.0f / float(all_passes);
  double loss_sum = 0;
  for (int64_t pass = 0; pass < passes; ++pass) {
    model.set_step(uint64_t(step * all_passes + run.rank() * passes + pass));
    const size_t first = size_t((run.slice.first_row + pass * rows) * batch->seq_len);
    float pass_loss = 0;
    if (run.teacher != nullptr) {
      if (std::string e =
              run.teacher->forward(batch->inputs.data() + first, nullptr, rows, batch->seq_len);
          !e.empty()) {
        return "--distill: " + e;
      }
      training.teacher_logits = run.teacher->device_logits();
    }
    if (std::string e = model.forward(batch->inputs.data() + first, batch->targets.data() + first,
                                      rows, batch->seq_len, &pass_loss, training);
        !e.empty()) {
      return e;
    }
    if (!std::isfinite(pass_loss)) return cat("the loss is not finite at step ", step + 1);
    // A data-parallel rank reduces the gradients as the step's last backward finishes them,
    // beside the rest of that backward.
    nn::Model::GradsReady ready;
    if (run.sharded != nullptr && pass == passes - 1) {
      ready = [&](int64_t first, int64_t count) { run.sharded->reduce_ready(model, first, count); };
    }
    if (std::string e = model.backward(ready); !e.empty()) return e;
    loss_sum += pass_loss;
  }
  double loss = loss_sum / double(passes);
  row->lr = schedule.at(step);
  if (run.sharded != nullptr) {
    loss /= run.world();
    run.comm->all_reduce_sum(&loss, 1);  // the mean over the ranks' equal slices
    if (std::string e = run.sharded->step(model, row->lr, c.grad_clip, &row->grad_norm);
        !e.empty()) {
      return e;
    }
    run.state.adam_steps = run.sharded->steps();
  } else {
    row->grad_norm = nn::global_grad_norm(model);
    run.optimizer->step(model, row->lr, nn::clip_scale(row->grad_norm, c.grad_clip));
    run.state.adam_steps = run.optimizer->steps();
  }
  run.state.step = step + 1;
  row->step = run.state.step;
  row->train_loss = float(loss);
  return "";
}

// The validation loss over `window`'s batches; with several ranks, each runs every world-th
// batch and the sums meet in an all-reduce (in rank order, so every rank gets the same bits).
std::string validation_loss(OpenRun& run, const EvalWindow& window, double* loss) {
  const data::TokenView tokens = run.val_shard.tokens();
  if (run.comm == nullptr) return evaluate_loss(*run.model, tokens, window, loss);
  double sums[2] = {0, 0};  // loss x tokens, tokens
  if (std::string e = add_loss_sums(*run.model, tokens, window, run.rank(), run.world(), sums);
      !e.empty()) {
    return e;
  }
  run.comm->all_reduce_sum(sums, 2);
  if (std::string e = run.comm->take_error(); !e.empty()) return e;
  *loss = loss_of_sums(sums);
  return "";
}

// The whole state of the checkpoint: with sharded moments, gathered from every rank (so every
// rank calls this), written by rank 0, followed by the run's summary (run_summary.h).
std::string save_run_checkpoint(OpenRun& run, const std::string& run_dir) {
  const std::string path = path_in(run_dir, kCheckpointFile);
  run.model->download_params();
  // A step can overflow the weights while its loss, taken before the update, was finite; such
  // weights would make every later resume and evaluation NaN.
  const nn::Params& params = run.model->params();
  if (!std::all_of(params.data(), params.data() + params.size(),
                   [](float p) { return std::isfinite(p); })) {
    return cat("the weights are not finite after step ", run.state.step,
               "; no checkpoint was written for it");
  }
  std::string e;
  if (run.sharded != nullptr) {
    std::vector<float> m, v;
    if (e = run.sharded->gather_moments(&m, &v); !e.empty()) return e;
    if (!run.leader()) return "";
    e = save_checkpoint(path, run.config, run.model->params(), m, v, run.state);
  } else {
    run.optimizer->download();
    e = save_checkpoint(path, run.config, run.model->params(), *run.optimizer, run.state);
  }
  if (!e.empty()) return e;
  return write_run_summary(
      path_in(run_dir, kRunSummaryFile),
      {run.config, run.state.step, int64_t(run.train_shard.header().token_count)});
}

std::string train(TrainConfig* config, bool steps_given, const std::string& run_dir,
                  const TrainOptions& options, const TrainCallbacks& callbacks, OpenRun& run,
                  TrainResult* result) {
  if (std::string e = open_run(config, steps_given, run_dir, options, callbacks, &run);
      !e.empty()) {
    return e;
  }
  const TrainConfig& c = run.config;
  const nn::LrSchedule schedule = schedule_of(c);
  const int64_t last = std::min(c.steps, options.stop_at.value_or(c.steps));
  // The same validation windows whatever the passes and ranks: batches of this rank's pass
  // rows, as many as hold eval_batches global batches.
  const EvalWindow window{run.pass_rows, c.seq_len, c.eval_batches * c.batch / run.pass_rows};
  const double elapsed_before = run.inherited.empty() ? 0.0 : run.inherited.back().elapsed_s;
  TrainResult r;
  r.val_loss = std::numeric_limits<double>::quiet_NaN();
  for (auto it = run.inherited.rbegin(); it != run.inherited.rend(); ++it) {
    if (it->val_loss) {
      r.val_loss = *it->val_loss;
      break;
    }
  }
  const auto start = Clock::now();
  int64_t tokens_seen = 0;
  std::vector<float> recent;
  data::Batch batch;
  data::BatchPrefetcher batches(run.train_shard.tokens(), c.batch, c.seq_len, run.state.sampler);
  while (run.state.step < last) {
    LogRow row;
    if (std::string e = train_step(run, schedule, batches, &batch, &row); !e.empty()) return e;
    tokens_seen += batch.rows * batch.seq_len;
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (row.step % c.eval_every == 0 || row.step == c.steps) {
      run.model->set_step(0);
      double val = 0;
      if (std::string e = validation_loss(run, window, &val); !e.empty()) return e;
      if (!std::isfinite(val)) {
        return cat("the validation loss is not finite after step ", row.step);
      }
      row.val_loss = r.val_loss = val;
    }
    row.tokens_per_s = seconds > 0 ? double(tokens_seen) / seconds : 0.0;
    row.elapsed_s = elapsed_before + std::chrono::duration<double>(Clock::now() - start).count();
    if (run.leader()) {
      if (std::string e = run.log.append(row); !e.empty()) return e;
      if (callbacks.on_step) callbacks.on_step(row, c.steps);
    }
    recent.push_back(row.train_loss);
    if (recent.size() > 10) recent.erase(recent.begin());
    if (row.step % c.checkpoint_every == 0 || row.step == last) {
      if (std::string e = save_run_checkpoint(run, run_dir); !e.empty()) return e;
    }
  }
  r.steps_done = run.state.step;
  r.finished = run.state.step == c.steps;
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.tokens_per_s = r.seconds > 0 ? double(tokens_seen) / r.seconds : 0.0;
  float sum = 0;
  for (float l : recent) sum += l;
  r.train_loss = !recent.empty()         ? sum / float(recent.size())
                 : run.inherited.empty() ? std::numeric_limits<float>::quiet_NaN()
                                         : run.inherited.back().train_loss;
  if (r.finished && run.leader()) {
    run.model->download_params();
    if (std::string e = nn::save_model_file(path_in(run_dir, "model.safetensors"), c.model_config,
                                            run.model->params(), c.tokenizer);
        !e.empty()) {
      return e;
    }
  }
  *result = r;
  return "";
}

// The entries of `dir` (none when it does not exist).
std::set<std::string> entries_of(const std::string& dir) {
  std::set<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) names.insert(e.path().filename());
  return names;
}

// A new run that fails before its first checkpoint has nothing to resume from: what it added
// to its folder (the lock, the shards, the log), and the folder if it made it, are removed.
void remove_what_a_failed_run_added(const std::string& run_dir, bool existed,
                                    const std::set<std::string>& before) {
  std::error_code ec;
  if (fs::exists(path_in(run_dir, kCheckpointFile), ec)) return;
  for (const std::string& name : entries_of(run_dir)) {
    if (!before.contains(name)) fs::remove_all(fs::path(run_dir) / name, ec);
  }
  if (!existed && fs::is_empty(run_dir, ec)) fs::remove(run_dir, ec);
}

}  // namespace

std::string run_training(TrainConfig* config, bool steps_given, const std::string& run_dir,
                         const TrainOptions& options, const TrainCallbacks& callbacks,
                         TrainResult* result) {
  std::error_code ec;
  const bool existed = fs::exists(run_dir, ec);
  const std::set<std::string> before = entries_of(run_dir);
  OpenRun run;
  std::string e = train(config, steps_given, run_dir, options, callbacks, run, result);
  // A rank that stops releases the others, whose collectives would wait for it forever.
  nn::Communicator* comm = run.comm != nullptr ? run.comm : options.comm;
  if (!e.empty() && comm != nullptr) comm->abort(e);
  // Only the process that holds the folder's lock cleans it: another run may be using it.
  if (!e.empty() && !options.resume && run.lock.held()) {
    remove_what_a_failed_run_added(run_dir, existed, before);
  }
  return e;
}

}  // namespace mx::train
