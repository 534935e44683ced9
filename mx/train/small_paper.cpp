#include "mx/train/small_paper.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "mx/data/token_shard.h"
#include "mx/io/atomic_file.h"
#include "mx/io/cat.h"
#include "mx/nn/model_file.h"
#include "mx/train/loss_plot.h"
#include "mx/train/trainer.h"

namespace mx::train {
namespace {

namespace fs = std::filesystem;
using io::cat;

std::string build_config(const SmallPaperOptions& o, const std::string& recipe_name,
                         TrainConfig* c) {
  if (std::string e =
          make_train_config(o.model, nn::Arch::kGpt2, recipe_name, "bytes", o.steps, o.paths, c);
      !e.empty()) {
    return e;
  }
  c->data = o.data;
  c->batch = o.batch;
  c->seed = o.seed;
  c->eval_every = std::max<int64_t>(1, o.steps / 6);
  c->eval_batches = o.eval_batches;
  c->checkpoint_every = o.steps;
  return validate(*c);
}

// Every run reads the same shards: hard links to the first run's (a copy where links fail).
std::string share_data(const fs::path& from_run, const fs::path& to_run) {
  std::error_code ec;
  fs::create_directories(to_run / "data", ec);
  for (const char* name : kRunDataFiles) {
    fs::create_hard_link(from_run / "data" / name, to_run / "data" / name, ec);
    if (ec) fs::copy_file(from_run / "data" / name, to_run / "data" / name, ec);
    if (ec) return cat("cannot share ", name, " with ", to_run.string(), ": ", ec.message());
  }
  return "";
}

std::string write_results_json(const SmallPaperOptions& o, const SmallPaperResult& r) {
  nlohmann::json j = nlohmann::json::object();
  j["data"] = o.data;
  j["model"] = o.model;
  j["parameters"] = r.parameters;
  j["steps"] = o.steps;
  j["batch"] = o.batch;
  j["train"] = nlohmann::json::array();
  for (const TrainedRecipe& t : r.trained) {
    j["train"].push_back({{"recipe", t.recipe},
                          {"train_loss", t.train_loss},
                          {"val_loss", t.val_loss},
                          {"tokens_per_s", t.tokens_per_s},
                          {"seconds", t.seconds}});
  }
  j["direct_cast"] = nlohmann::json::array();
  for (const CastRecipe& c : r.cast) {
    j["direct_cast"].push_back({{"recipe", c.recipe},
                                {"loss", c.result.loss},
                                {"ppl", c.result.ppl},
                                {"kl", c.result.kl},
                                {"top1", c.result.top1},
                                {"fp32_loss", c.result.reference_loss},
                                {"tokens", c.result.tokens}});
  }
  const std::string text = j.dump(2) + "\n";
  return io::write_text_atomically(r.json_path, text);
}

}  // namespace

std::string run_small_paper(const SmallPaperOptions& o, const SmallPaperCallbacks& callbacks,
                            SmallPaperResult* result) {
  if (o.train_recipes.empty()) return "no recipe to train";
  auto say = [&](const std::string& line) {
    if (callbacks.on_message) callbacks.on_message(line);
  };
  const fs::path runs = fs::path(o.out_dir) / "runs";
  std::error_code ec;
  SmallPaperResult r;
  std::vector<RunCurve> curves;
  for (size_t i = 0; i < o.train_recipes.size(); ++i) {
    const std::string& name = o.train_recipes[i];
    TrainConfig config;
    if (std::string e = build_config(o, name, &config); !e.empty()) {
      return e;
    }
    const fs::path run_dir = runs / name;
    fs::remove_all(run_dir, ec);
    if (ec) return cat("cannot replace ", run_dir.string(), ": ", ec.message());
    if (i > 0) {
      if (std::string e = share_data(runs / o.train_recipes[0], run_dir); !e.empty()) return e;
    }
    say(cat("training ", o.model, " with ", name, " for ", o.steps, " steps"));
    TrainOptions options;
    options.threads = o.threads;
    options.paths = o.paths;
    TrainCallbacks tc;
    tc.on_message = callbacks.on_message;
    tc.on_step = [&](const LogRow& row, int64_t total) {
      if (callbacks.on_step) callbacks.on_step(name, row.step, total, row.train_loss);
    };
    TrainResult tr;
    if (std::string e = run_training(&config, true, run_dir.string(), options, tc, &tr);
        !e.empty()) {
      return e;
    }
    r.trained.push_back({name, tr.train_loss, tr.val_loss, tr.tokens_per_s, tr.seconds});
    curves.push_back({name, run_dir.string()});
  }

  // The direct cast starts from the first run's model (fp32 by default).
  const fs::path reference_run = runs / o.train_recipes[0];
  nn::LoadedModel loaded;
  if (std::string e =
          nn::load_model_file((reference_run / "model.safetensors").string(), &loaded, o.threads);
      !e.empty()) {
    return e;
  }
  r.parameters = loaded.model->params().count();
  data::TokenShard val;
  if (std::string e = data::open_shard(reference_run / "data" / "val.bin", &val); !e.empty()) {
    return e;
  }
  const EvalWindow window{o.batch, loaded.model->config().seq_len, o.eval_batches, o.threads};
  for (const std::string& name : o.cast_recipes) {
    nn::Recipe recipe;
    if (std::string e = nn::recipe_from_spec(name, &recipe); !e.empty()) return e;
    say(cat("casting the ", o.train_recipes[0], " model to ", name));
    DirectCastResult cast;
    if (std::string e = direct_cast_eval(*loaded.model, recipe, val.tokens(), window, &cast);
        !e.empty()) {
      return e;
    }
    r.cast.push_back({name, cast});
  }

  r.plot_path = (fs::path(o.out_dir) / "loss.png").string();
  r.json_path = (fs::path(o.out_dir) / "results.json").string();
  if (std::string e =
          plot_loss_curves(curves, r.plot_path,
                           {.title = cat("Tiny GPT on ", o.data, ": training loss per recipe")});
      !e.empty()) {
    return e;
  }
  if (std::string e = write_results_json(o, r); !e.empty()) return e;
  *result = std::move(r);
  return "";
}

}  // namespace mx::train
