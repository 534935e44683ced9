// libFuzzer target: a training checkpoint opened as `mx train --resume` opens it (checksum,
// settings, run state, every tensor's shape), then the model and optimizer it describes built and
// loaded. The input is sealed with a matching checksum first, as a hostile writer could, so the
// mutations reach the settings; checks must bound every size before anything is allocated.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "fuzz/fuzz_seal.h"
#include "fuzz/fuzz_util.h"
#include "mx/nn/adamw.h"
#include "mx/nn/cpu/cpu_backend.h"
#include "mx/nn/model.h"
#include "mx/train/checkpoint.h"

namespace {

using mx::fuzz::fail;

void open_and_load(std::span<const uint8_t> bytes) {
  mx::train::Checkpoint checkpoint;
  const std::string e = checkpoint.parse(bytes);
  mx::fuzz::check_error(e);
  if (!e.empty()) return;
  const mx::train::TrainConfig& c = checkpoint.config();
  if (!mx::train::validate(c).empty()) fail("an opened checkpoint has invalid settings");
  if (checkpoint.state().step > c.steps) fail("an opened checkpoint is past its last step");
  mx::nn::Model model(c.model_config, std::make_unique<mx::nn::CpuBackend>(1));
  mx::nn::AdamW optimizer(model, c.adamw);
  mx::fuzz::check_error(checkpoint.load(&model.params(), &optimizer));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input(data, size);
  open_and_load(input);
  mx::io::SafetensorsFile file;
  std::vector<uint8_t> sealed;
  if (mx::io::parse_safetensors(input, &file).empty() && mx::fuzz::seal(file, &sealed)) {
    open_and_load(sealed);
  }
  return 0;
}
