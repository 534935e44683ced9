// `mx sweep FILE`: the design-space study on a real checkpoint. Every floating-point tensor of a
// safetensors file (or those selected) is quantized under every cell of the grid (format x
// scale rule x rounding x block size x organisation); writes CSV, JSON and two PNG plots and
// prints the best configuration per bit budget.
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "mx/convert/tensor_selection.h"
#include "mx/core/block_grid.h"
#include "mx/core/dtype.h"
#include "mx/io/atomic_file.h"
#include "mx/io/llama2c.h"
#include "mx/io/mx_safetensors.h"
#include "mx/io/safetensors.h"
#include "mx/study/sweep.h"
#include "mx/study/sweep_report.h"
#include "tools/mx/commands.h"
#include "tools/mx/flag_checks.h"
#include "tools/mx/progress.h"
#include "tools/mx/run_command.h"

namespace mx::tools {
namespace {

struct SweepOptions {
  std::string input;
  std::string out_dir = "sweep_out";
  std::string only, skip;
  int64_t sample = 1 << 18;
  int threads = 0;
  bool json = false;
};

// The tensor as a matrix (leading axes flattened into rows), keeping at most `sample` values:
// groups of 64 whole rows spread evenly over the tensor, so that column blocks and tiles of up
// to 64 rows stay intact. sample <= 0 keeps everything.
study::SweepTensor to_sweep_tensor(const io::SafetensorsTensor& t, DType dtype, int64_t sample) {
  study::SweepTensor out;
  out.name = t.name;
  out.cols = t.shape.empty() ? 1 : t.shape.back();
  out.rows = out.cols == 0 ? 0 : element_count(t.shape) / out.cols;
  constexpr int64_t kGroup = 64;
  const int64_t groups = (out.rows + kGroup - 1) / kGroup;
  int64_t keep_groups = groups;
  if (sample > 0 && out.rows * out.cols > sample) {
    keep_groups = std::max<int64_t>(1, sample / (kGroup * std::max<int64_t>(out.cols, 1)));
  }
  std::vector<int64_t> rows;
  for (int64_t g = 0; g < keep_groups; ++g) {
    const int64_t first = (g * groups / keep_groups) * kGroup;
    for (int64_t r = first; r < std::min(first + kGroup, out.rows); ++r) rows.push_back(r);
  }
  out.values.reserve(rows.size() * out.cols);
  for (int64_t r : rows) {
    for (int64_t c = 0; c < out.cols; ++c) {
      out.values.push_back(load_as_float(t.bytes.data(), dtype, r * out.cols + c));
    }
  }
  out.rows = static_cast<int64_t>(rows.size());
  return out;
}

std::string run_sweep_command(const SweepOptions& o) {
  if (std::string e = io::check_output_folder(o.out_dir); !e.empty()) return e;
  // A llama2.c checkpoint (*.bin) is swept under its Llama tensor names.
  io::SafetensorsFile file;
  io::Llama2cCheckpoint llama2c;
  std::vector<io::SafetensorsTensor> inputs;
  if (std::filesystem::path(o.input).extension() == ".bin") {
    if (std::string e = io::read_llama2c(o.input, &llama2c); !e.empty()) return e;
    std::vector<io::TensorToWrite> named;
    std::map<std::string, std::string> meta;
    if (std::string e = io::llama2c_named_tensors(llama2c, &named, &meta); !e.empty()) return e;
    for (const io::TensorToWrite& t : named) inputs.push_back({t.name, t.dtype, t.shape, t.bytes});
  } else {
    if (std::string e = io::open_safetensors(o.input, &file); !e.empty()) return e;
    // Its MX tensors are not swept, but a damaged one makes the file one to refuse, as every
    // other reader does.
    if (std::string e = io::check_mx_tensors(file); !e.empty()) return o.input + ": " + e;
    inputs = file.tensors();
  }
  // Every float tensor but those --only and --skip leave out: embeddings, norms and vectors too.
  convert::TensorSelector selector;
  if (std::string e = convert::make_selector({.only = o.only,
                                              .skip = o.skip,
                                              .include_embeddings = true,
                                              .include_norms = true,
                                              .include_vectors = true},
                                             &selector);
      !e.empty()) {
    return e;
  }
  std::vector<std::string> names;
  for (const io::SafetensorsTensor& t : inputs) names.push_back(t.name);
  if (std::string e = selector.check_matches(names, o.input); !e.empty()) return e;
  std::vector<study::SweepTensor> tensors;
  int64_t parameters = 0, swept = 0;
  for (const io::SafetensorsTensor& t : inputs) {
    const std::optional<DType> dtype = io::safetensors_float_dtype(t.dtype);
    if (!dtype || !selector.reason_to_keep(t.name, t.shape).empty()) continue;
    parameters += element_count(t.shape);
    tensors.push_back(to_sweep_tensor(t, *dtype, o.sample));
    swept += static_cast<int64_t>(tensors.back().values.size());
  }
  if (tensors.empty()) return o.input + ": no float32, float16 or bfloat16 tensor selected";
  fmt::print(stderr, "sweeping {} tensors ({} parameters, {} values sampled)\n", tensors.size(),
             parameters, swept);
  const auto start = std::chrono::steady_clock::now();
  std::optional<Progress> bar;  // made at the first cell, when the total is known
  auto progress = [&](int64_t done, int64_t total) {
    if (!bar) bar.emplace("cells", total);
    bar->update(done);
  };
  const std::vector<study::SweepCell> cells =
      study::run_sweep(tensors, study::default_sweep_grid(), o.threads, progress);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (bar) bar->finish();
  if (std::string e = study::write_sweep_report(cells, o.out_dir); !e.empty()) return e;
  if (o.json) {
    fmt::print(
        "{{\"tensors\":{},\"parameters\":{},\"values\":{},\"cells\":{},\"seconds\":{:.3f},"
        "\"out\":{},\"best\":{}}}\n",
        tensors.size(), parameters, swept, cells.size(), seconds, nlohmann::json(o.out_dir).dump(),
        study::sweep_json(study::best_per_bit_budget(cells)));
    return "";
  }
  fmt::print("Best configuration per bit budget ({} cells, {:.1f} s):\n{}", cells.size(), seconds,
             study::sweep_summary(cells));
  fmt::print(
      "Wrote {0}/sweep.csv, {0}/sweep.json, {0}/error_vs_bits.png, "
      "{0}/format_scale_heatmap.png\n",
      o.out_dir);
  return "";
}

}  // namespace

void register_sweep(CLI::App& app) {
  static SweepOptions options;
  CLI::App* cmd = app.add_subcommand(
      "sweep", "Design-space study: every format x scale rule x rounding x block on a checkpoint");
  cmd->add_option("file", options.input, "safetensors or llama2.c (.bin) checkpoint")->required();
  cmd->add_option("-o,--out", options.out_dir, "Output folder")->capture_default_str();
  cmd->add_option("--only", options.only, "Only tensors whose name matches this regex");
  cmd->add_option("--skip", options.skip, "Skip tensors whose name matches this regex");
  cmd->add_option("--sample", options.sample,
                  "Values kept per tensor, as groups of 64 whole rows (0: all)")
      ->check(integer_in(0))
      ->capture_default_str();
  cmd->add_option("--threads", options.threads, "Threads (0: all)")->check(thread_count());
  cmd->add_flag("--json", options.json,
                "Print the timing and the best cell per bit budget as one JSON object");
  cmd->callback([] { run_command("sweep", [] { return run_sweep_command(options); }); });
}

}  // namespace mx::tools
