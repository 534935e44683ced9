// The MX paper's two experiments, in small (Rouhani et al. 2023, "Microscaling Data Formats
// for Deep Learning", sections 4.2 and 4.3):
//   1. training from scratch: the same tiny GPT trained with the same schedule and seed under
//      several recipes (fp32, mxfp8, mxfp6, mxfp4w-mxfp6a by default), compared by their
//      final validation loss;
//   2. direct cast: the FP32-trained model's weights and activations cast to MXINT8, MXFP8,
//      MXFP6 and MXFP4 without retraining, compared by loss, perplexity, KL and top-1
//      agreement against FP32.
// Outputs go to out_dir: runs/<recipe>/ (trainer.h), loss.png and results.json.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "mx/data/paths.h"
#include "mx/train/evaluate.h"
#include "mx/train/train_config.h"

namespace mx::train {

struct SmallPaperOptions {
  std::string out_dir = "demo_out";
  std::string data = "sotu";
  std::string model = "tiny";
  std::vector<std::string> train_recipes = {"fp32", "mxfp8", "mxfp6", "mxfp4w-mxfp6a"};
  std::vector<std::string> cast_recipes = {"mxint8", "mxfp8", "mxfp6", "mxfp4"};
  int64_t steps = 600;
  int64_t batch = 8;
  int64_t eval_batches = 32;  // validation batches, for training and for the direct cast
  uint64_t seed = 1;
  int threads = 0;
  data::DataPaths paths;
};

struct TrainedRecipe {
  std::string recipe;
  float train_loss = 0;
  double val_loss = 0;
  double tokens_per_s = 0;
  double seconds = 0;
};

struct CastRecipe {
  std::string recipe;
  DirectCastResult result;
};

struct SmallPaperResult {
  std::vector<TrainedRecipe> trained;
  std::vector<CastRecipe> cast;
  std::string plot_path, json_path;
  int64_t parameters = 0;
};

struct SmallPaperCallbacks {
  std::function<void(const std::string&)> on_message;
  // Called for each step of each run: the recipe, the step (from 1) and the total.
  std::function<void(const std::string&, int64_t, int64_t, float)> on_step;
};

// Runs both experiments. Folders out_dir/runs/<recipe> are replaced.
std::string run_small_paper(const SmallPaperOptions& options, const SmallPaperCallbacks& callbacks,
                            SmallPaperResult* result);

}  // namespace mx::train
