// Writes a few small valid files per fuzz target into DIR/<target>/, so that the fuzzers start
// from inputs that get past the magic and header checks. Built from the library's own writers
// rather than committed as binaries.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "mx/core/layout_gpt_oss.h"
#include "mx/core/mx_tensor.h"
#include "mx/io/atomic_file.h"
#include "mx/io/gguf.h"
#include "mx/io/gguf_values.h"
#include "mx/io/mx_safetensors.h"
#include "mx/io/npy.h"
#include "mx/io/safetensors.h"
#include "mx/nn/adamw.h"
#include "mx/nn/gguf_model.h"
#include "mx/nn/model_file.h"
#include "mx/nn/params.h"
#include "mx/nn/recipe.h"
#include "mx/train/checkpoint.h"

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

namespace {

Bytes random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Bytes b(n);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return b;
}

void check(const std::string& e, const char* what) {
  if (!e.empty()) {
    std::fprintf(stderr, "make_seeds: %s: %s\n", what, e.c_str());
    std::exit(1);
  }
}

void save(const fs::path& path, const Bytes& bytes) {
  check(mx::io::write_file_atomically(path.string(), std::span<const uint8_t>(bytes)), "write");
}

// An MxTensor of `shape` and `spec` with random codes and scales (and offsets).
mx::MxTensor random_mx(const std::vector<int64_t>& shape, const mx::QuantSpec& spec,
                       uint64_t seed) {
  std::string err;
  mx::MxTensor t = mx::make_mx_tensor(shape, spec, &err);
  check(err, "make_mx_tensor");
  const Bytes r = random_bytes(t.elements.size() + t.scales.size(), seed);
  std::copy(r.begin(), r.begin() + static_cast<long>(t.elements.size()), t.elements.begin());
  std::copy(r.begin() + static_cast<long>(t.elements.size()), r.end(), t.scales.begin());
  for (auto& o : t.offsets) o = 0x3f80;  // bfloat16 1.0
  return t;
}

void safetensors_seeds(const fs::path& dir) {
  const Bytes f32 = random_bytes(2 * 3 * 4, 1), bf16 = random_bytes(4 * 2, 2);
  {
    const std::vector<mx::io::TensorToWrite> plain = {{"a", "F32", {2, 3}, f32},
                                                      {"b", "BF16", {4}, bf16}};
    Bytes out;
    check(mx::io::encode_safetensors(plain, {{"format", "pt"}}, &out), "plain safetensors");
    save(dir / "plain.safetensors", out);
  }
  // MX tensors: gpt-oss MXFP4, an asymmetric 1-D spec and a tiled one, so that every branch of
  // load_mx_tensor has a seed.
  mx::QuantSpec asym;
  asym.format = mx::ElementFormat::kE4M3;
  asym.block_size = 16;
  asym.asymmetric = true;
  mx::QuantSpec tiled;
  tiled.format = mx::ElementFormat::kE3M2;
  tiled.tile_rows = 4;
  tiled.tile_cols = 8;
  const mx::MxTensor fp4 = random_mx({2, 64}, mx::mxfp4_rowwise_spec(), 3);
  const mx::MxTensor a = random_mx({3, 20}, asym, 4);
  const mx::MxTensor t = random_mx({5, 9}, tiled, 5);
  std::vector<mx::io::TensorToWrite> list = {{"bias", "F32", {2, 3}, f32}};
  std::map<std::string, std::string> meta = {{"format", "pt"}};
  check(mx::io::add_mx_tensor("w.fp4", fp4, &list, &meta), "add fp4");
  check(mx::io::add_mx_tensor("w.asym", a, &list, &meta), "add asym");
  check(mx::io::add_mx_tensor("w.tiled", t, &list, &meta), "add tiled");
  Bytes out;
  check(mx::io::encode_safetensors(list, meta, &out), "mx safetensors");
  save(dir / "mx.safetensors", out);
  check(mx::io::encode_safetensors({}, {}, &out), "empty safetensors");
  save(dir / "empty.safetensors", out);
}

mx::io::GgufValue val(mx::io::GgufValue::Variant v) {
  return mx::io::GgufValue{std::move(v)};
}

void gguf_seeds(const fs::path& dir) {
  using mx::io::GgufArray;
  using mx::io::GgufType;
  const GgufArray ints{GgufType::kI32, {val(int32_t{-1}), val(int32_t{7})}};
  const std::vector<mx::io::GgufKv> kvs = {
      {"general.architecture", val(std::string("llama"))},
      {"general.alignment", val(uint32_t{64})},
      {"u8", val(uint8_t{1})},
      {"f32", val(1.5f)},
      {"flag", val(true)},
      {"u64", val(uint64_t{1} << 40)},
      {"f64", val(-2.0)},
      {"tokens", val(GgufArray{GgufType::kString, {val(std::string("a")), val(std::string(""))}})},
      {"nested", val(GgufArray{GgufType::kArray, {val(ints)}})},
  };
  const Bytes f32 = random_bytes(5 * 3 * 4, 6), f16 = random_bytes(7 * 2, 7);
  const mx::MxTensor fp4 = random_mx({3, 64}, mx::mxfp4_rowwise_spec(), 8);
  Bytes storage;
  mx::io::GgufTensorToWrite fp4_tensor;
  check(mx::io::gguf_mxfp4_tensor("blk.0.ffn_up.weight", fp4, &storage, &fp4_tensor), "mxfp4");
  const std::vector<mx::io::GgufTensorToWrite> tensors = {
      {"f32", {5, 3}, mx::io::kGgmlF32, f32},
      {"f16", {7}, mx::io::kGgmlF16, f16},
      fp4_tensor,
  };
  Bytes out;
  check(mx::io::encode_gguf(kvs, tensors, &out), "gguf");
  save(dir / "mixed.gguf", out);
  check(mx::io::encode_gguf({}, std::span(tensors).subspan(2), &out), "gguf mxfp4");
  save(dir / "mxfp4.gguf", out);
}

// A llama2.c checkpoint: the 7-int32 header, then the float arrays it implies.
Bytes llama2c_file(int32_t dim, int32_t hidden, int32_t layers, int32_t heads, int32_t kv_heads,
                   int32_t vocab, int32_t seq) {
  const int64_t head = dim / heads, kv = head * kv_heads, v = vocab < 0 ? -vocab : vocab;
  const int64_t floats = v * dim +
                         layers * (2 * dim + 2 * dim * dim + 2 * kv * dim + 3 * hidden * dim) +
                         dim + seq * head + (vocab < 0 ? v * dim : 0);
  Bytes b(28);
  const int32_t h[7] = {dim, hidden, layers, heads, kv_heads, vocab, seq};
  std::memcpy(b.data(), h, sizeof h);
  const Bytes data = random_bytes(static_cast<size_t>(floats) * 4, static_cast<uint64_t>(dim));
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

void llama2c_seeds(const fs::path& dir) {
  save(dir / "shared.bin", llama2c_file(8, 16, 2, 2, 1, 10, 4));
  save(dir / "unshared.bin", llama2c_file(4, 8, 1, 1, 1, -6, 2));
}

void npy_seeds(const fs::path& dir) {
  mx::io::NpyArray a;
  a.dtype = mx::io::NpyDType::kFloat32;
  a.shape = {2, 3};
  a.data = random_bytes(2 * 3 * 4, 9);
  Bytes out;
  check(mx::io::encode_npy(a, &out), "npy f32");
  save(dir / "f32.npy", out);
  a.dtype = mx::io::NpyDType::kBFloat16;
  a.shape = {};
  a.data = random_bytes(2, 10);
  check(mx::io::encode_npy(a, &out), "npy bf16");
  save(dir / "bf16_scalar.npy", out);
  a.dtype = mx::io::NpyDType::kUInt8;
  a.shape = {0, 4};
  a.data = {};
  check(mx::io::encode_npy(a, &out), "npy u8");
  save(dir / "u8_empty.npy", out);
}

// A model small enough for libFuzzer's input limit: a few thousand parameters.
mx::nn::ModelConfig small_model(mx::nn::Arch arch) {
  mx::nn::ModelConfig c;
  c.arch = arch;
  c.vocab = 16, c.dim = 8, c.n_layers = 1, c.n_heads = 2, c.hidden = 16, c.seq_len = 8;
  c.n_kv_heads = arch == mx::nn::Arch::kGpt2 ? 2 : 1;
  return c;
}

// Model files as training writes them, without the checksum (as other programs write them, so
// that mutations of the config are read rather than stopped by a checksum mismatch), and one
// with its checksum.
void model_file_seeds(const fs::path& dir) {
  for (const mx::nn::Arch arch : {mx::nn::Arch::kGpt2, mx::nn::Arch::kLlama}) {
    const mx::nn::ModelConfig c = small_model(arch);
    mx::nn::Params params(c);
    params.init(1);
    std::vector<mx::io::TensorToWrite> tensors;
    std::map<std::string, std::string> meta;
    mx::nn::model_file_contents(c, params, "bytes", &tensors, &meta);
    Bytes out;
    check(mx::io::encode_safetensors(tensors, meta, &out), "model file");
    save(dir / (std::string(mx::nn::arch_name(arch)) + ".safetensors"), out);
    if (arch == mx::nn::Arch::kLlama) {
      check(mx::nn::save_model_file((dir / "llama_checksum.safetensors").string(), c, params,
                                    "bytes"),
            "model file with checksum");
    }
  }
}

// Model GGUFs in llama.cpp's layout (nn/gguf_model.h), of both architectures, F32; the Llama
// one with a small SentencePiece vocabulary under tokenizer.ggml.* (ids 0-2 are <unk>, <s> and
// </s>, as the reader requires).
void model_gguf_seeds(const fs::path& dir) {
  for (const mx::nn::Arch arch : {mx::nn::Arch::kGpt2, mx::nn::Arch::kLlama}) {
    const mx::nn::ModelConfig c = small_model(arch);
    mx::nn::Params params(c);
    params.init(3);
    std::vector<mx::io::GgufKv> kvs = mx::nn::gguf_model_kvs(c);
    if (arch == mx::nn::Arch::kLlama) {
      std::vector<std::string> pieces = {"<unk>", "<s>", "</s>"};
      std::vector<float> scores = {0.0f, 0.0f, 0.0f};
      std::vector<int32_t> types = {2, 3, 3};  // unknown, control, control
      for (const char* piece :
           {"\xe2\x96\x81", "O", "n", "c", "e", "u", "p", "o", "a", "t", "i", "m",
            "\xe2\x96\x81"
            "a"}) {
        pieces.push_back(piece);
        scores.push_back(-float(pieces.size()));
        types.push_back(1);  // normal
      }
      const std::string prefix = "tokenizer.ggml.";
      kvs.push_back(mx::io::gguf_kv(prefix + "model", std::string("llama")));
      kvs.push_back({prefix + "tokens", mx::io::gguf_string_array(pieces)});
      kvs.push_back({prefix + "scores", mx::io::gguf_f32_array(scores)});
      kvs.push_back({prefix + "token_type", mx::io::gguf_i32_array(types)});
      kvs.push_back(mx::io::gguf_kv(prefix + "bos_token_id", uint32_t{1}));
      kvs.push_back(mx::io::gguf_kv(prefix + "eos_token_id", uint32_t{2}));
    }
    const std::vector<mx::nn::GgufModelTensor> layout = mx::nn::gguf_model_tensors(c);
    std::vector<std::vector<float>> values;
    values.reserve(layout.size());
    std::vector<mx::io::GgufTensorToWrite> tensors;
    for (const mx::nn::GgufModelTensor& t : layout) {
      values.push_back(mx::nn::gather_gguf_tensor(params, t));
      const std::vector<float>& v = values.back();
      tensors.push_back(
          {t.name, std::vector<int64_t>(t.shape.rbegin(), t.shape.rend()), mx::io::kGgmlF32,
           std::span(reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(float))});
    }
    Bytes out;
    check(mx::io::encode_gguf(kvs, tensors, &out), "model gguf");
    save(dir / (std::string(mx::nn::arch_name(arch)) + ".gguf"), out);
  }
}

void checkpoint_seeds(const fs::path& dir) {
  mx::train::TrainConfig c;
  c.model = "small";
  c.model_config = small_model(mx::nn::Arch::kGpt2);
  c.recipe = *mx::nn::recipe_preset("mxfp6");
  c.data = "no-such-corpus.txt";  // a resume in a test must stop at the data, not train
  c.tokenizer = "bytes";
  c.steps = 10, c.batch = 2, c.seq_len = 8, c.warmup = 1;
  mx::nn::Model model(c.model_config);
  mx::nn::Params& params = model.params();
  params.init(2);
  mx::nn::AdamW optimizer(model, c.adamw);
  mx::train::RunState state;
  state.step = state.adam_steps = 3;
  check(mx::train::save_checkpoint((dir / "checkpoint.safetensors").string(), c, params, optimizer,
                                   state),
        "checkpoint");
}

// Recipes as mx writes them (every preset, with its forward casts alone) and as people write
// them: a default role, block rotations, asymmetric blocks, the bfloat16 switches.
void recipe_seeds(const fs::path& dir) {
  auto text = [](std::string_view s) { return Bytes(s.begin(), s.end()); };
  for (std::string_view name : mx::nn::recipe_preset_names()) {
    const mx::nn::Recipe r = *mx::nn::recipe_preset(name);
    save(dir / (std::string(name) + ".json"), text(mx::nn::recipe_to_json(r)));
    save(dir / (std::string(name) + "-forward.json"),
         text(mx::nn::recipe_to_json(mx::nn::forward_only(r))));
  }
  save(dir / "default-role.json",
       text(R"({"name": "d", "default": "mxfp6_e3m2", "grad_out_dx": {"format": "mxfp6_e3m2", )"
            R"("round": "stochastic", "seed": 7}, "bf16_classifier": true})"));
  save(dir / "rotated.json",
       text(R"({"weight_fwd": {"format": "mxfp4_e2m1", "rotate": "hadamard", "block": 32}, )"
            R"("act_fwd": {"format": "mxint4", "scale": "even", "asym": true}, )"
            R"("bf16_attention": true, "bf16_vector_ops": true})"));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr,
                 "usage: %s DIR  (writes DIR/{safetensors,gguf,llama2c,npy,model_file,model_gguf,"
                 "checkpoint,recipe}/)\n",
                 argv[0]);
    return 2;
  }
  const fs::path root = argv[1];
  for (const char* sub : {"safetensors", "gguf", "llama2c", "npy", "model_file", "model_gguf",
                          "checkpoint", "recipe"}) {
    fs::create_directories(root / sub);
  }
  safetensors_seeds(root / "safetensors");
  gguf_seeds(root / "gguf");
  llama2c_seeds(root / "llama2c");
  npy_seeds(root / "npy");
  model_file_seeds(root / "model_file");
  model_gguf_seeds(root / "model_gguf");
  checkpoint_seeds(root / "checkpoint");
  recipe_seeds(root / "recipe");
  return 0;
}
