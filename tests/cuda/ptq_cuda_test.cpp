// Post-training quantization with the model on the CUDA backend (mx ptq --device cuda): the
// layer-wise passes run on the GPU, the Hessians and the error diffusion on the host. Skips
// where no GPU is present.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mx/core/quantize_ref.h"
#include "mx/kernels/cuda/quantize_cuda.h"
#include "mx/nn/cpu/cpu_backend.h"
#include "mx/nn/cuda/cuda_backend.h"
#include "mx/nn/model.h"
#include "mx/ptq/model_ptq.h"

namespace mx::ptq {
namespace {

// Head size 32, the smallest the GPU's attention takes; two layers.
nn::ModelConfig two_layers(nn::Arch arch) {
  nn::ModelConfig c;
  c.arch = arch;
  c.vocab = 256, c.n_layers = 2, c.seq_len = 64;
  c.n_heads = 4, c.n_kv_heads = arch == nn::Arch::kLlama ? 2 : 4, c.dim = 128;
  c.hidden = arch == nn::Arch::kLlama ? 352 : 512;
  c.tied = arch == nn::Arch::kGpt2;
  return c;
}

std::vector<uint32_t> calibration(int64_t n) {
  std::vector<uint32_t> tokens;
  uint64_t s = 777;
  for (int64_t i = 0; i < n; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    tokens.push_back(uint32_t((s >> 33) % 256));
  }
  return tokens;
}

std::map<std::string, MxTensor> quantize_on(std::unique_ptr<nn::Backend> backend, nn::Arch arch,
                                            const ModelPtqOptions& options) {
  nn::Model model(two_layers(arch), std::move(backend));
  model.params().init(5);
  model.upload_params();
  const int64_t sequences = 8, t = 64;
  std::map<std::string, MxTensor> out;
  EXPECT_EQ(quantize_model(model, calibration(sequences * t), sequences, t, options, {}, &out), "");
  return out;
}

std::unique_ptr<nn::Backend> gpu_backend() {
  nn::CudaBackendOptions options;
  options.act_type = nn::BufType::kF32;
  std::string error;
  std::unique_ptr<nn::Backend> device = nn::make_cuda_backend(options, &error);
  EXPECT_NE(device, nullptr) << error;
  return device;
}

// A two-layer GPT-2 with the same weights on the CPU (gpu false) or the GPU; null, with a
// failure, where the GPU backend cannot start.
std::unique_ptr<nn::Model> gpt2_on(bool gpu) {
  std::unique_ptr<nn::Backend> backend =
      gpu ? gpu_backend() : std::unique_ptr<nn::Backend>(std::make_unique<nn::CpuBackend>(0));
  if (backend == nullptr) return nullptr;
  auto model = std::make_unique<nn::Model>(two_layers(nn::Arch::kGpt2), std::move(backend));
  model->params().init(5);
  model->upload_params();
  return model;
}

// got equals want within float32 rounding of sums over 128 rows: 1e-5 of want's largest entry.
void expect_within_float32_sums(const std::vector<float>& want, const std::vector<float>& got) {
  ASSERT_EQ(got.size(), want.size());
  float largest = 0, worst = 0;
  for (size_t e = 0; e < want.size(); ++e) {
    largest = std::max(largest, std::fabs(want[e]));
    worst = std::max(worst, std::fabs(got[e] - want[e]));
  }
  EXPECT_GT(largest, 0.0f);
  EXPECT_LE(worst, 1e-5f * largest) << worst << " of " << largest;
}

// The Gram matrix of a layer's cast inputs: the same cast bits on both backends, float32 sums in
// cuBLAS's order on the GPU, so equal within float32 rounding of the sums (1e-5 of the largest
// entry over 128 rows), and exactly symmetric.
TEST(CudaPtq, GramMatrixMatchesTheCpuWithinFloat32Sums) {
  std::string why;
  if (!cuda::cuda_device_available(&why)) GTEST_SKIP() << "no CUDA device: " << why;
  const int64_t b = 2, t = 64;
  const std::vector<uint32_t> tokens = calibration(b * t);
  const nn::OperandCast cast = nn::recipe_preset("mxfp4")->act_fwd;
  std::vector<float> grams[2];
  for (int i = 0; i < 2; ++i) {
    std::unique_ptr<nn::Model> model = gpt2_on(i == 1);
    ASSERT_NE(model, nullptr);
    const int64_t dim = model->config().dim, hidden = model->config().hidden;
    std::vector<float> x(size_t(b * t * dim)), side(size_t(b * t * hidden));
    ASSERT_EQ(model->embed(tokens.data(), b, t, x.data()), "");
    for (nn::BlockStep step : {nn::BlockStep::kNorm1, nn::BlockStep::kAttention,
                               nn::BlockStep::kAttnResidual, nn::BlockStep::kMlp}) {
      ASSERT_EQ(model->forward_block_step(0, step, x.data(), side.data(), b, t), "");
    }
    ASSERT_EQ(model->linear_input_gram(0, nn::LinearSite::kProj, cast, 5, &grams[i]), "");
  }
  expect_within_float32_sums(grams[0], grams[1]);
  const std::vector<float>& got = grams[1];
  const int64_t k = two_layers(nn::Arch::kGpt2).hidden;
  for (int64_t r = 0; r < k; ++r) {
    for (int64_t c = 0; c < r; ++c) ASSERT_EQ(got[size_t(r * k + c)], got[size_t(c * k + r)]);
  }
}

// The product of the caller's rows with a layer's input (FP32 targets' ΔXᵀX) on the GPU: the
// CPU's float32 sums within their rounding (1e-5 of the largest entry over 128 rows).
TEST(CudaPtq, InputProductMatchesTheCpuWithinFloat32Sums) {
  std::string why;
  if (!cuda::cuda_device_available(&why)) GTEST_SKIP() << "no CUDA device: " << why;
  const int64_t b = 2, t = 64;
  const std::vector<uint32_t> tokens = calibration(b * t);
  std::vector<float> products[2];
  for (int i = 0; i < 2; ++i) {
    std::unique_ptr<nn::Model> model = gpt2_on(i == 1);
    ASSERT_NE(model, nullptr);
    const int64_t dim = model->config().dim;
    std::vector<float> x(size_t(b * t * dim)), side(size_t(b * t * model->config().hidden)), rows;
    ASSERT_EQ(model->embed(tokens.data(), b, t, x.data()), "");
    ASSERT_EQ(model->forward_block_step(0, nn::BlockStep::kNorm1, x.data(), side.data(), b, t), "");
    rows.resize(size_t(b * t * dim));
    for (size_t e = 0; e < rows.size(); ++e) rows[e] = float(int64_t(e % 11) - 5) * 0.125f;
    ASSERT_EQ(model->linear_input_product(0, nn::LinearSite::kQ, rows, &products[i]), "");
  }
  expect_within_float32_sums(products[0], products[1]);
}

// The GPU's forward pass sums in another order than the CPU's, so the Hessians differ in their
// last bits. An element's code changes only where its updated value lies that close to a
// rounding boundary, and then passes a quantum's error on to the columns after it; such flips
// must stay rare (under 1% of codes), and every weight's scales must agree.
TEST(CudaPtq, QuantizesAsTheCpuDoesButForRareRoundingFlips) {
  std::string why;
  if (!cuda::cuda_device_available(&why)) GTEST_SKIP() << "no CUDA device: " << why;
  for (nn::Arch arch : {nn::Arch::kGpt2, nn::Arch::kLlama}) {
    for (const char* recipe : {"fp32", "mxfp4"}) {
      ModelPtqOptions options;
      options.spec.format = ElementFormat::kE2M1;
      options.recipe = *nn::recipe_preset(recipe);
      options.batch = 3;
      std::unique_ptr<nn::Backend> device = gpu_backend();
      ASSERT_NE(device, nullptr);
      const auto want = quantize_on(std::make_unique<nn::CpuBackend>(0), arch, options);
      const auto got = quantize_on(std::move(device), arch, options);
      ASSERT_EQ(got.size(), want.size());
      int64_t flips = 0, total = 0, scale_flips = 0;
      for (const auto& [name, w] : want) {
        const MxTensor& g = got.at(name);
        ASSERT_EQ(g.shape, w.shape) << name;
        const std::vector<float> a = dequantize_ref(g), b = dequantize_ref(w);
        for (size_t i = 0; i < a.size(); ++i) flips += a[i] != b[i];
        for (size_t i = 0; i < w.scales.size(); ++i) scale_flips += g.scales[i] != w.scales[i];
        total += int64_t(a.size());
      }
      const char* arch_name = arch == nn::Arch::kLlama ? "llama" : "gpt2";
      EXPECT_LT(double(flips), 0.01 * double(total))
          << arch_name << " " << recipe << ": " << flips << " of " << total << " values differ";
      EXPECT_EQ(scale_flips, 0) << arch_name << " " << recipe;
      RecordProperty(std::string(arch_name) + "_" + recipe + "_differing_values",
                     std::to_string(flips) + "/" + std::to_string(total));
    }
  }
}

}  // namespace
}  // namespace mx::ptq
