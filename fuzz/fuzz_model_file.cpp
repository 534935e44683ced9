// libFuzzer target: a model file (safetensors with "mxkit.model" or "llama2c.*" metadata) loaded
// as `mx eval`, `mx generate` and `mx export` load it, then one forward pass. The input is tried
// as it is (its checksum, when it has one, must hold) and sealed with a matching checksum, so
// that every config the mutations reach gets past it. A loaded model's sizes are bounded by the
// file (check_file_holds), so the whole run stays within libFuzzer's memory limits.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "fuzz/fuzz_model.h"
#include "fuzz/fuzz_seal.h"
#include "fuzz/fuzz_util.h"
#include "mx/nn/cpu/cpu_backend.h"
#include "mx/nn/model_file.h"

namespace {

void load_and_run(std::span<const uint8_t> bytes) {
  mx::io::SafetensorsFile file;
  if (!mx::io::parse_safetensors(bytes, &file).empty()) return;
  mx::nn::LoadedModel loaded;
  const std::string e =
      mx::nn::load_model_safetensors(file, &loaded, std::make_unique<mx::nn::CpuBackend>(1));
  mx::fuzz::check_error(e);
  if (!e.empty()) return;
  mx::fuzz::check_loaded_model(loaded);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> input(data, size);
  load_and_run(input);
  mx::io::SafetensorsFile file;
  std::vector<uint8_t> sealed;
  if (mx::io::parse_safetensors(input, &file).empty() && mx::fuzz::seal(file, &sealed)) {
    load_and_run(sealed);
  }
  return 0;
}
