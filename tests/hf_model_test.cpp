// Hugging Face GPT-2 checkpoints (mx/nn/hf_model.h): a model.safetensors laid out as transformers
// saves GPT-2 (Conv1D weights [in, out], q, k and v fused in c_attn, with or without the
// "transformer." prefix) and its config.json load into the engine's parameters exactly, and
// what the engine cannot run is refused in one line. The files are written here from a model
// with known parameters, by the layout's definition, independently of the reader.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "mx/io/safetensors.h"
#include "mx/nn/hf_model.h"
#include "mx/nn/model.h"
#include "mx/nn/model_file.h"

namespace mx::nn {
namespace {

namespace fs = std::filesystem;

ModelConfig small_gpt2() {
  ModelConfig c;
  c.arch = Arch::kGpt2;
  c.vocab = 96;
  c.dim = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 4;
  c.hidden = 128;
  c.seq_len = 24;
  c.tied = true;
  return c;
}

ModelConfig small_llama(bool tied) {
  ModelConfig c = small_gpt2();
  c.arch = Arch::kLlama;
  c.n_kv_heads = 2;
  c.hidden = 80;
  c.tied = tied;
  return c;
}

std::string llama_json(const ModelConfig& c, const std::string& extra = "") {
  return "{\"model_type\": \"llama\", \"num_hidden_layers\": " + std::to_string(c.n_layers) +
         ", \"hidden_size\": " + std::to_string(c.dim) +
         ", \"num_attention_heads\": " + std::to_string(c.n_heads) +
         ", \"num_key_value_heads\": " + std::to_string(c.n_kv_heads) +
         ", \"intermediate_size\": " + std::to_string(c.hidden) +
         ", \"vocab_size\": " + std::to_string(c.vocab) +
         ", \"max_position_embeddings\": " + std::to_string(c.seq_len) +
         ", \"hidden_act\": \"silu\", \"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, "
         "\"rope_scaling\": null, \"attention_bias\": false, \"tie_word_embeddings\": " +
         (c.tied ? "true" : "false") + extra + "}";
}

std::string config_json(const ModelConfig& c, const std::string& extra = "") {
  return "{\"model_type\": \"gpt2\", \"n_layer\": " + std::to_string(c.n_layers) +
         ", \"n_embd\": " + std::to_string(c.dim) + ", \"n_head\": " + std::to_string(c.n_heads) +
         ", \"vocab_size\": " + std::to_string(c.vocab) +
         ", \"n_positions\": " + std::to_string(c.seq_len) +
         ", \"n_inner\": null, \"activation_function\": \"gelu_new\", "
         "\"layer_norm_epsilon\": 1e-05" +
         extra + "}";
}

// The engine tensor `name` of `params`, [rows, cols] row-major.
std::vector<float> engine(const Params& params, const std::string& name) {
  const ParamView* v = params.find(name);
  EXPECT_NE(v, nullptr) << name;
  if (v == nullptr) return {};
  return std::vector<float>(params.data() + v->offset, params.data() + v->offset + v->size);
}

// Every parameter of `got` equals `want`'s, value for value (both with `want`'s views).
void expect_same_params(const Params& got, const Params& want) {
  ASSERT_EQ(got.count(), want.count());
  for (const ParamView& v : want.views()) {
    EXPECT_EQ(engine(got, v.name), engine(want, v.name)) << v.name;
  }
}

// A Hugging Face checkpoint being written: named F32 tensors and their shapes.
class HfFile {
 public:
  void keep(std::string name, std::vector<int64_t> shape, std::vector<float> values) {
    tensors_[std::move(name)] = {std::move(shape), std::move(values)};
  }
  // Writes the tensors as F32 safetensors, without metadata, with `config` beside them.
  void write(const fs::path& dir, const std::string& config) const {
    std::vector<io::TensorToWrite> tensors;
    for (const auto& [name, t] : tensors_) {
      const auto* bytes = reinterpret_cast<const uint8_t*>(t.second.data());
      tensors.push_back({name, "F32", t.first, {bytes, t.second.size() * sizeof(float)}});
    }
    ASSERT_EQ("", io::write_safetensors((dir / "model.safetensors").string(), tensors, {}));
    std::ofstream(dir / "config.json") << config;
  }

  // Writes the tensors as transformers shards them: `shards` files named
  // model-0000i-of-0000n.safetensors, each tensor in one, and the index that maps them.
  void write_shards(const fs::path& dir, const std::string& config, int shards) const {
    std::vector<std::vector<io::TensorToWrite>> parts(static_cast<size_t>(shards));
    std::string map;
    int i = 0;
    for (const auto& [name, t] : tensors_) {
      const int shard = i++ % shards;
      const auto* bytes = reinterpret_cast<const uint8_t*>(t.second.data());
      parts[size_t(shard)].push_back({name, "F32", t.first, {bytes, t.second.size() * 4}});
      map +=
          (map.empty() ? "" : ", ") + ("\"" + name + "\": \"" + shard_name(shard, shards) + "\"");
    }
    for (int k = 0; k < shards; ++k) {
      ASSERT_EQ("", io::write_safetensors((dir / shard_name(k, shards)).string(), parts[size_t(k)],
                                          {{"format", "pt"}}));
    }
    std::ofstream(dir / "model.safetensors.index.json")
        << "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {" << map << "}}";
    std::ofstream(dir / "config.json") << config;
  }
  static std::string shard_name(int k, int n) {
    return "model-0000" + std::to_string(k + 1) + "-of-0000" + std::to_string(n) + ".safetensors";
  }

  void replace(const std::string& name, std::vector<int64_t> shape) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    tensors_[name] = {std::move(shape), std::vector<float>(size_t(n), 0.5f)};
  }
  void drop(const std::string& name) { tensors_.erase(name); }

 private:
  std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> tensors_;
};

// GPT-2 as transformers saves it: each Conv1D weight W [out, in] stored as Wᵀ [in, out]
// (element [i][o] = W[o][i]), and c_attn's [in, 3 out] holding q's, k's and v's columns in turn.
HfFile gpt2_file(const Params& params, const ModelConfig& c, const std::string& prefix) {
  HfFile file;
  auto keep = [&](std::string name, std::vector<int64_t> shape, std::vector<float> values) {
    file.keep(std::move(name), std::move(shape), std::move(values));
  };
  const int64_t C = c.dim, H = c.hidden;
  keep(prefix + "wte.weight", {c.vocab, C}, engine(params, "transformer.wte.weight"));
  keep(prefix + "wpe.weight", {c.seq_len, C}, engine(params, "transformer.wpe.weight"));
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string hf = prefix + "h." + std::to_string(i) + ".";
    const std::string en = "transformer.h." + std::to_string(i) + ".";
    for (const char* name : {"ln_1.weight", "ln_1.bias", "ln_2.weight", "ln_2.bias"}) {
      keep(hf + name, {C}, engine(params, en + name));
    }
    std::vector<float> qkv(size_t(C * 3 * C)), qkv_bias;
    const char* parts[] = {"q", "k", "v"};
    for (int64_t p = 0; p < 3; ++p) {
      const std::vector<float> w = engine(params, en + "attn." + parts[p] + "_proj.weight");
      for (int64_t o = 0; o < C; ++o) {
        for (int64_t in = 0; in < C; ++in)
          qkv[size_t(in * 3 * C + p * C + o)] = w[size_t(o * C + in)];
      }
      const std::vector<float> b = engine(params, en + "attn." + parts[p] + "_proj.bias");
      qkv_bias.insert(qkv_bias.end(), b.begin(), b.end());
    }
    keep(hf + "attn.c_attn.weight", {C, 3 * C}, std::move(qkv));
    keep(hf + "attn.c_attn.bias", {3 * C}, std::move(qkv_bias));
    // An older file's causal mask, which the reader leaves alone.
    keep(hf + "attn.bias", {1, 1, c.seq_len, c.seq_len},
         std::vector<float>(size_t(c.seq_len * c.seq_len), 1.0f));
    for (auto [name, in, out] : {std::tuple{"attn.c_proj", C, C}, std::tuple{"mlp.c_fc", C, H},
                                 std::tuple{"mlp.c_proj", H, C}}) {
      const std::vector<float> w = engine(params, en + name + ".weight");
      std::vector<float> t(w.size());
      for (int64_t o = 0; o < out; ++o) {
        for (int64_t k = 0; k < in; ++k) t[size_t(k * out + o)] = w[size_t(o * in + k)];
      }
      keep(hf + name + ".weight", {in, out}, std::move(t));
      keep(hf + name + ".bias", {out}, engine(params, en + name + ".bias"));
    }
  }
  keep(prefix + "ln_f.weight", {C}, engine(params, "transformer.ln_f.weight"));
  keep(prefix + "ln_f.bias", {C}, engine(params, "transformer.ln_f.bias"));
  return file;
}

// Llama as transformers' conversion script saves it: the engine's names and [out, in] layout,
// but each head's q and k rows in rotate-half order, the engine's row 2i + j at j * hs/2 + i.
HfFile llama_file(const Params& params, const ModelConfig& c) {
  HfFile file;
  const int64_t hs = c.head_size();
  for (const ParamView& v : params.views()) {
    std::vector<float> w = engine(params, v.name);
    const bool q = v.name.find("q_proj") != std::string::npos;
    if (q || v.name.find("k_proj") != std::string::npos) {
      const int64_t heads = q ? c.n_heads : c.n_kv_heads, cols = c.dim;
      std::vector<float> halves(w.size());
      for (int64_t h = 0; h < heads; ++h) {
        for (int64_t i = 0; i < hs / 2; ++i) {
          for (int64_t j = 0; j < 2; ++j) {
            for (int64_t k = 0; k < cols; ++k) {
              halves[size_t((h * hs + j * (hs / 2) + i) * cols + k)] =
                  w[size_t((h * hs + 2 * i + j) * cols + k)];
            }
          }
        }
      }
      w = std::move(halves);
    }
    file.keep(v.name, v.shape, std::move(w));
  }
  return file;
}

class HfModel : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::path(::testing::TempDir()) / "mx_hf_model.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    model_ = std::make_unique<Model>(small_gpt2());
    model_->params().init(11);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string load(LoadedModel* out) const {
    return load_model_file((dir_ / "model.safetensors").string(), out, 1);
  }

  fs::path dir_;
  std::unique_ptr<Model> model_;
};

TEST_F(HfModel, Gpt2LoadsEveryParameterExactlyWithAndWithoutThePrefix) {
  for (const std::string prefix : {"transformer.", ""}) {
    SCOPED_TRACE("prefix '" + prefix + "'");
    gpt2_file(model_->params(), small_gpt2(), prefix).write(dir_, config_json(small_gpt2()));
    LoadedModel loaded;
    ASSERT_EQ("", load(&loaded));
    EXPECT_EQ(loaded.kind, "hf-gpt2");
    EXPECT_EQ(loaded.tokenizer, "");  // not GPT-2's 50257-token vocabulary
    expect_same_params(loaded.model->params(), model_->params());
  }
}

TEST_F(HfModel, Gpt2ReadsTheConfigAsTransformersWritesIt) {
  ModelConfig c;
  ASSERT_EQ(
      "", hf_config("{\"model_type\": \"gpt2\", \"n_layer\": 12, \"n_embd\": 768, \"n_head\": 12, "
                    "\"vocab_size\": 50257, \"n_ctx\": 1024, \"n_inner\": null}",
                    &c));
  EXPECT_EQ(c.arch, Arch::kGpt2);
  EXPECT_EQ(c.n_layers, 12);
  EXPECT_EQ(c.dim, 768);
  EXPECT_EQ(c.n_heads, 12);
  EXPECT_EQ(c.n_kv_heads, 12);
  EXPECT_EQ(c.hidden, 3072);
  EXPECT_EQ(c.seq_len, 1024);
  EXPECT_EQ(c.vocab, 50257);
  EXPECT_TRUE(c.tied);
}

TEST_F(HfModel, Gpt2RefusesConfigsTheEngineDoesNotRunInOneLine) {
  const ModelConfig c = small_gpt2();
  struct Case {
    std::string extra, names;
  };
  for (const Case& k : {Case{", \"model_type\": \"gpt_neo\"", "model_type 'gpt_neo'"},
                        Case{", \"activation_function\": \"gelu\"", "activation_function 'gelu'"},
                        Case{", \"layer_norm_epsilon\": 1e-06", "layer_norm_epsilon"},
                        Case{", \"add_cross_attention\": true", "cross-attention"},
                        Case{", \"scale_attn_weights\": false", "scaled other than"}}) {
    std::string json = config_json(c);
    json.insert(json.size() - 1, k.extra);  // a repeated key: the later value is read
    ModelConfig out;
    const std::string e = hf_config(json, &out);
    EXPECT_NE(e.find(k.names), std::string::npos) << k.extra << ": " << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  }
  ModelConfig out;
  EXPECT_EQ(hf_config("{\"model_type\": \"gpt2\", \"n_layer\": 2, \"n_embd\": 30, \"n_head\": 4, "
                      "\"vocab_size\": 9, \"n_positions\": 8}",
                      &out),
            "config.json: dim must be a multiple of n_heads");
  EXPECT_EQ(hf_config("[1, 2]", &out), "config.json is not a JSON object");
  EXPECT_NE(hf_config("{\"model_type\": \"gpt2\", \"n_layer\": 2}", &out).find("\"n_embd\""),
            std::string::npos);
  EXPECT_NE(hf_config("{\"n_layer\": 2}", &out).find("model_type ''"), std::string::npos);
}

TEST_F(HfModel, Gpt2NamesTheFileAndTheProblemWhenAPartIsWrongOrMissing) {
  const ModelConfig c = small_gpt2();
  {
    HfFile file = gpt2_file(model_->params(), c, "transformer.");
    file.replace("transformer.h.1.mlp.c_fc.weight", {c.hidden, c.dim});  // stored [out, in]
    file.write(dir_, config_json(c));
    LoadedModel loaded;
    const std::string e = load(&loaded);
    EXPECT_NE(e.find("model.safetensors"), std::string::npos) << e;
    EXPECT_NE(e.find("transformer.h.1.mlp.c_fc.weight has shape [128, 32]"), std::string::npos)
        << e;
  }
  {
    HfFile file = gpt2_file(model_->params(), c, "");
    file.drop("ln_f.bias");
    file.write(dir_, config_json(c));
    LoadedModel loaded;
    EXPECT_NE(load(&loaded).find("ln_f.bias is missing"), std::string::npos);
  }
  {
    gpt2_file(model_->params(), c, "").write(dir_, config_json(c));
    fs::remove(dir_ / "config.json");
    LoadedModel loaded;
    EXPECT_NE(load(&loaded).find("needs the config.json beside it"), std::string::npos);
  }
}

TEST_F(HfModel, LlamaLoadsEveryParameterExactlyTiedOrNotWithItsTokenizer) {
  for (bool tied : {false, true}) {
    SCOPED_TRACE(tied ? "tied" : "untied");
    const ModelConfig c = small_llama(tied);
    Model model(c);
    model.params().init(13);
    llama_file(model.params(), c).write(dir_, llama_json(c));
    std::ofstream(dir_ / "tokenizer.model") << "stand-in";
    LoadedModel loaded;
    ASSERT_EQ("", load(&loaded));
    EXPECT_EQ(loaded.kind, "hf-llama");
    EXPECT_EQ(loaded.tokenizer, (dir_ / "tokenizer.model").string());
    EXPECT_EQ(loaded.model->config().n_kv_heads, 2);
    EXPECT_EQ(loaded.model->config().tied, tied);
    expect_same_params(loaded.model->params(), model.params());
    fs::remove_all(dir_);
    fs::create_directory(dir_);
  }
}

TEST_F(HfModel, LlamaReadsTheConfigAsTransformersWritesIt) {
  ModelConfig c;
  ASSERT_EQ("", hf_config("{\"model_type\": \"llama\", \"hidden_size\": 2048, "
                          "\"intermediate_size\": 5632, \"num_hidden_layers\": 22, "
                          "\"num_attention_heads\": 32, \"num_key_value_heads\": 4, "
                          "\"vocab_size\": 32000, \"max_position_embeddings\": 2048, "
                          "\"rms_norm_eps\": 1e-05, \"rope_theta\": 10000.0, "
                          "\"hidden_act\": \"silu\"}",
                          &c));
  EXPECT_EQ(c.arch, Arch::kLlama);
  EXPECT_EQ(c.n_layers, 22);
  EXPECT_EQ(c.dim, 2048);
  EXPECT_EQ(c.n_heads, 32);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.hidden, 5632);
  EXPECT_EQ(c.seq_len, 2048);
  EXPECT_EQ(c.vocab, 32000);
  EXPECT_FALSE(c.tied);  // transformers' default for Llama
}

TEST_F(HfModel, LlamaRefusesConfigsTheEngineDoesNotRunInOneLine) {
  const ModelConfig c = small_llama(false);
  struct Case {
    std::string extra, names;
  };
  for (const Case& k :
       {Case{", \"hidden_act\": \"gelu\"", "hidden_act 'gelu'"},
        Case{", \"rms_norm_eps\": 1e-06", "rms_norm_eps"},
        Case{", \"rope_theta\": 500000.0", "RoPE"},
        Case{", \"rope_parameters\": {\"rope_theta\": 500000.0, \"rope_type\": \"default\"}",
             "RoPE"},
        Case{", \"rope_parameters\": {\"rope_theta\": 10000.0, \"rope_type\": \"llama3\"}", "RoPE"},
        Case{", \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}", "RoPE"},
        Case{", \"attention_bias\": true", "biases"}, Case{", \"head_dim\": 16", "head_dim"}}) {
    ModelConfig out;
    const std::string e = hf_config(llama_json(c, k.extra), &out);
    EXPECT_NE(e.find(k.names), std::string::npos) << k.extra << ": " << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  }
  ModelConfig out;
  EXPECT_NE(hf_config("{\"model_type\": \"mistral\"}", &out).find("'mistral'"), std::string::npos);
}

TEST_F(HfModel, LlamaNamesAMissingOrMisshapedTensor) {
  const ModelConfig c = small_llama(false);
  Model model(c);
  model.params().init(17);
  {
    HfFile file = llama_file(model.params(), c);
    file.replace("model.layers.1.self_attn.k_proj.weight", {c.dim, c.dim});  // as if 4 kv heads
    file.write(dir_, llama_json(c));
    LoadedModel loaded;
    EXPECT_NE(load(&loaded).find("model.layers.1.self_attn.k_proj.weight has shape [32, 32]"),
              std::string::npos);
  }
  {
    HfFile file = llama_file(model.params(), c);
    file.drop("lm_head.weight");
    file.write(dir_, llama_json(c));
    LoadedModel loaded;
    EXPECT_NE(load(&loaded).find("lm_head.weight is missing"), std::string::npos);
  }
}

// The writer is checked through the reader, which the tests above check against files written
// from the layouts' definitions.
TEST_F(HfModel, WritesCheckpointsThatReadBackExactlyForBothArchitectures) {
  for (const ModelConfig& c : {small_gpt2(), small_llama(false), small_llama(true)}) {
    SCOPED_TRACE(describe(c));
    Model model(c);
    model.params().init(19);
    std::vector<std::vector<float>> storage;
    std::vector<io::TensorToWrite> tensors;
    hf_checkpoint_tensors(c, model.params(), &storage, &tensors);
    ASSERT_EQ("", io::write_safetensors((dir_ / "model.safetensors").string(), tensors,
                                        {{"format", "pt"}}));
    std::ofstream(dir_ / "config.json") << hf_config_json(c);
    LoadedModel loaded;
    ASSERT_EQ("", load(&loaded));
    EXPECT_EQ(describe(loaded.model->config()), describe(c));
    expect_same_params(loaded.model->params(), model.params());
  }
}

TEST_F(HfModel, ReadsShardedCheckpointsByTheirIndexOrTheirFolder) {
  const ModelConfig c = small_llama(false);
  Model model(c);
  model.params().init(23);
  llama_file(model.params(), c).write_shards(dir_, llama_json(c), 3);
  for (const fs::path& path : {dir_ / "model.safetensors.index.json", dir_}) {
    SCOPED_TRACE(path.string());
    LoadedModel loaded;
    ASSERT_EQ("", load_model_file(path.string(), &loaded, 1));
    EXPECT_EQ(loaded.kind, "hf-llama");
    expect_same_params(loaded.model->params(), model.params());
  }
  fs::remove(dir_ / HfFile::shard_name(1, 3));
  LoadedModel loaded;
  const std::string e = load_model_file(dir_.string(), &loaded, 1);
  EXPECT_NE(e.find("model-00002-of-00003.safetensors"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
}

TEST_F(HfModel, RefusesAShardIndexThatLeavesItsFolder) {
  std::vector<std::string> names;
  EXPECT_EQ("", hf_shard_names("{\"weight_map\": {\"a\": \"x.safetensors\", \"b\": "
                               "\"y.safetensors\", \"c\": \"x.safetensors\"}}",
                               &names));
  EXPECT_EQ(names, (std::vector<std::string>{"x.safetensors", "y.safetensors"}));
  for (const char* bad : {"{\"weight_map\": {\"a\": \"../x.safetensors\"}}",
                          "{\"weight_map\": {\"a\": \"/etc/x.safetensors\"}}",
                          "{\"weight_map\": {\"a\": 3}}", "{\"weight_map\": {}}", "[]"}) {
    const std::string e = hf_shard_names(bad, &names);
    EXPECT_NE(e, "") << bad;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  }
}

}  // namespace
}  // namespace mx::nn
