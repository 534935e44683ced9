// Model GGUF files as llama.cpp reads them: the names and keys llama.cpp looks up, weights that
// read back bit for bit (F32) or as their MXFP4 blocks, GPT-2's stacked q/k/v, the tokenizer
// embedded in the file encoding text as the original does, and refusals for what llama.cpp or
// mxkit cannot run. The stories260K and GPT-2 checks read MX_DATA_DIR and skip without it.
// (tests/cli/llama_cpp_test.sh runs the files in llama.cpp itself.)
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "mx/core/layout_gpt_oss.h"
#include "mx/data/gguf_tokenizer.h"
#include "mx/data/tokenizer.h"
#include "mx/io/gguf.h"
#include "mx/io/gguf_values.h"
#include "mx/kernels/cpu/quantize.h"
#include "mx/nn/gguf_model.h"
#include "mx/nn/model_file.h"
#include "mx/train/model_gguf.h"
#include "tests/data_dir.h"

namespace mx::train {
namespace {

namespace fs = std::filesystem;

using testing::data_dir;

class ModelGguf : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::path(::testing::TempDir()) / "mx_gguf_model.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Writes `loaded` as a model GGUF; "" or the writer's error.
  std::string write(const nn::LoadedModel& loaded, const std::string& out,
                    const ModelGgufOptions& options) {
    convert::ConvertReport report;
    return write_model_gguf(loaded, "model", out, options, {}, &report);
  }

  static std::string load_stories(nn::LoadedModel* out) {
    return nn::load_model_file((data_dir() / "stories260K/stories260K.bin").string(), out);
  }

  fs::path dir_;
};

ModelGgufOptions f32_options() {
  ModelGgufOptions o;
  o.quantize = false;
  return o;
}

ModelGgufOptions mxfp4_options() {
  ModelGgufOptions o;
  o.spec = mxfp4_rowwise_spec();
  return o;
}

std::vector<float> param(const nn::LoadedModel& m, const std::string& name) {
  const nn::Params& p = m.model->params();
  const nn::ParamView* v = p.find(name);
  EXPECT_NE(v, nullptr) << name;
  if (v == nullptr) return {};
  return {p.data() + v->offset, p.data() + v->offset + v->size};
}

std::string string_kv(const io::GgufFile& f, const char* key) {
  std::string s;
  EXPECT_EQ(io::read_gguf_string(f, key, true, &s), "") << key;
  return s;
}

int64_t integer_kv(const io::GgufFile& f, const char* key) {
  int64_t v = -1;
  EXPECT_EQ(io::read_gguf_integer(f, key, true, &v), "") << key;
  return v;
}

TEST_F(ModelGguf, Stories260KCarriesLlamaCppNamesKeysAndVocabulary) {
  REQUIRE_DATA_DIR();
  nn::LoadedModel loaded;
  ASSERT_EQ(load_stories(&loaded), "");
  const std::string out = path("s.gguf");
  ASSERT_EQ(write(loaded, out, mxfp4_options()), "");
  io::GgufFile f;
  ASSERT_EQ(io::open_gguf(out, &f), "");
  // data/README.md: dim 64, hidden 172, 5 layers, 8 heads, 4 kv heads, vocab 512, seq 512.
  EXPECT_EQ(string_kv(f, "general.architecture"), "llama");
  EXPECT_EQ(integer_kv(f, "llama.context_length"), 512);
  EXPECT_EQ(integer_kv(f, "llama.embedding_length"), 64);
  EXPECT_EQ(integer_kv(f, "llama.block_count"), 5);
  EXPECT_EQ(integer_kv(f, "llama.feed_forward_length"), 172);
  EXPECT_EQ(integer_kv(f, "llama.attention.head_count"), 8);
  EXPECT_EQ(integer_kv(f, "llama.attention.head_count_kv"), 4);
  EXPECT_EQ(integer_kv(f, "llama.rope.dimension_count"), 8);
  EXPECT_EQ(string_kv(f, "tokenizer.ggml.model"), "llama");
  EXPECT_EQ(integer_kv(f, "tokenizer.ggml.bos_token_id"), 1);
  EXPECT_EQ(integer_kv(f, "tokenizer.ggml.eos_token_id"), 2);
  std::vector<std::string> tokens;
  ASSERT_EQ(io::read_gguf_strings(f, "tokenizer.ggml.tokens", true, &tokens), "");
  ASSERT_EQ(tokens.size(), 512u);
  EXPECT_EQ(tokens[1], "<s>");
  EXPECT_EQ(tokens[3], "<0x00>");
  std::vector<int64_t> types;
  ASSERT_EQ(io::read_gguf_integers(f, "tokenizer.ggml.token_type", true, &types), "");
  EXPECT_EQ(types[0], 2);    // unknown
  EXPECT_EQ(types[1], 3);    // control
  EXPECT_EQ(types[3], 6);    // byte
  EXPECT_EQ(types[300], 1);  // normal
  // Spaces are SentencePiece's U+2581 again (tok512.bin stores them as ' ').
  EXPECT_NE(std::find(tokens.begin(), tokens.end(), "\xE2\x96\x81the"), tokens.end());

  const io::GgufTensor* q = f.find_tensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->type, io::kGgmlMxfp4);
  EXPECT_EQ(q->dims, (std::vector<int64_t>{64, 64}));
  const io::GgufTensor* k = f.find_tensor("blk.4.attn_k.weight");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->dims, (std::vector<int64_t>{64, 32}));
  // ffn_down's rows of 172 are not whole blocks of 32; norms and the embedding are kept.
  EXPECT_EQ(f.find_tensor("blk.0.ffn_down.weight")->type, io::kGgmlF32);
  EXPECT_EQ(f.find_tensor("blk.0.ffn_norm.weight")->type, io::kGgmlF32);
  EXPECT_EQ(f.find_tensor("token_embd.weight")->type, io::kGgmlF32);
  EXPECT_NE(f.find_tensor("output_norm.weight"), nullptr);
  EXPECT_EQ(f.find_tensor("output.weight"), nullptr);  // tied: llama.cpp reads token_embd
  EXPECT_EQ(f.tensors().size(), 1u + 5 * 9 + 1);
}

TEST_F(ModelGguf, ReadsBackF32BitForBitAndMxfp4AsItsBlocks) {
  REQUIRE_DATA_DIR();
  nn::LoadedModel original;
  ASSERT_EQ(load_stories(&original), "");
  ASSERT_EQ(write(original, path("f32.gguf"), f32_options()), "");
  ASSERT_EQ(write(original, path("mxfp4.gguf"), mxfp4_options()), "");

  nn::LoadedModel f32;
  ASSERT_EQ(nn::load_model_file(path("f32.gguf"), &f32), "");
  EXPECT_EQ(f32.kind, "gguf");
  EXPECT_EQ(f32.tokenizer, path("f32.gguf"));
  EXPECT_TRUE(f32.stored_mx.empty());
  for (const nn::ParamView& v : original.model->params().views()) {
    EXPECT_EQ(param(f32, v.name), param(original, v.name)) << v.name;
  }

  nn::LoadedModel mx4;
  ASSERT_EQ(nn::load_model_file(path("mxfp4.gguf"), &mx4), "");
  const std::string q = "model.layers.2.self_attn.q_proj.weight";
  ASSERT_EQ(mx4.stored_mx.count(q), 1u);
  EXPECT_EQ(mx4.stored_mx.count("model.layers.2.mlp.down_proj.weight"), 0u);
  // The values are those the MXFP4 cast of the original gives.
  const std::vector<float> w = param(original, q);
  MxTensor m;
  ASSERT_EQ(
      cpu::quantize(w.data(), DType::kF32, std::vector<int64_t>{64, 64}, mxfp4_rowwise_spec(), &m),
      "");
  std::vector<float> cast(w.size());
  ASSERT_EQ(cpu::dequantize(m, DType::kF32, cast.data()), "");
  EXPECT_EQ(param(mx4, q), cast);
  EXPECT_NE(cast, w);
  EXPECT_EQ(param(mx4, "model.layers.2.mlp.down_proj.weight"),
            param(original, "model.layers.2.mlp.down_proj.weight"));
}

TEST_F(ModelGguf, EmbeddedSentencePieceVocabularyEncodesAsTok512) {
  REQUIRE_DATA_DIR();
  nn::LoadedModel original;
  ASSERT_EQ(load_stories(&original), "");
  ASSERT_EQ(write(original, path("s.gguf"), f32_options()), "");
  std::unique_ptr<data::Tokenizer> from_file, tok512;
  ASSERT_EQ(data::load_tokenizer(path("s.gguf"), {}, &from_file), "");
  ASSERT_EQ(data::load_tokenizer((data_dir() / "stories260K/tok512.bin").string(), {}, &tok512),
            "");
  const std::string text = testing::read_file(data_dir() / "stories260K/tinystories_sample.txt") +
                           " naïve café 日本 \x01";
  const std::vector<uint32_t> ids = tok512->encode(text);
  EXPECT_EQ(from_file->encode(text), ids);
  EXPECT_EQ(from_file->decode(ids), tok512->decode(ids));
  EXPECT_EQ(from_file->bos_id(), tok512->bos_id());
}

TEST_F(ModelGguf, Gpt2StacksQkvByRowsAndCarriesItsMerges) {
  REQUIRE_DATA_DIR();
  nn::ModelConfig c;
  c.arch = nn::Arch::kGpt2;
  c.vocab = 50304;  // padded past GPT-2's 50257 tokens
  c.dim = 32, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 2, c.hidden = 64, c.seq_len = 16;
  c.tied = false;
  nn::LoadedModel original;
  original.model = std::make_unique<nn::Model>(c);
  original.model->params().init(7);
  original.tokenizer = "gpt2";
  data::DataPaths paths;
  paths.data_dir = data_dir();
  ASSERT_EQ(write(original, path("g.gguf"), f32_options()), "");

  io::GgufFile f;
  ASSERT_EQ(io::open_gguf(path("g.gguf"), &f), "");
  EXPECT_EQ(string_kv(f, "general.architecture"), "gpt2");
  EXPECT_EQ(integer_kv(f, "gpt2.context_length"), 16);
  EXPECT_EQ(integer_kv(f, "gpt2.feed_forward_length"), 64);
  EXPECT_EQ(string_kv(f, "tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(string_kv(f, "tokenizer.ggml.pre"), "gpt-2");
  std::vector<std::string> tokens, merges;
  ASSERT_EQ(io::read_gguf_strings(f, "tokenizer.ggml.tokens", true, &tokens), "");
  ASSERT_EQ(io::read_gguf_strings(f, "tokenizer.ggml.merges", true, &merges), "");
  ASSERT_EQ(tokens.size(), 50304u);
  EXPECT_EQ(tokens[50256], "<|endoftext|>");
  EXPECT_EQ(tokens[50257], "[PAD50257]");
  EXPECT_EQ(tokens[262], "\xC4\xA0the");  // "Ġthe", as encoder.json spells " the"
  ASSERT_EQ(merges.size(), 50000u);       // vocab.bpe's lines after its #version header
  EXPECT_EQ(merges[0], "\xC4\xA0 t");     // its first merge: "Ġ t"
  const io::GgufTensor* qkv = f.find_tensor("blk.0.attn_qkv.weight");
  ASSERT_NE(qkv, nullptr);
  EXPECT_EQ(qkv->dims, (std::vector<int64_t>{32, 96}));
  ASSERT_NE(f.find_tensor("output.weight"), nullptr);
  ASSERT_NE(f.find_tensor("position_embd.weight"), nullptr);
  // Rows 32..63 of attn_qkv are k_proj's.
  const std::vector<float> k = param(original, "transformer.h.0.attn.k_proj.weight");
  const auto* stored = reinterpret_cast<const float*>(qkv->bytes.data());
  EXPECT_TRUE(std::equal(k.begin(), k.end(), stored + 32 * 32));

  nn::LoadedModel back;
  ASSERT_EQ(nn::load_model_file(path("g.gguf"), &back), "");
  for (const nn::ParamView& v : original.model->params().views()) {
    EXPECT_EQ(param(back, v.name), param(original, v.name)) << v.name;
  }
  std::unique_ptr<data::Tokenizer> from_file, gpt2;
  ASSERT_EQ(data::load_tokenizer(path("g.gguf"), paths, &from_file), "");
  ASSERT_EQ(data::load_tokenizer("gpt2", paths, &gpt2), "");
  const std::string text = testing::read_file(data_dir() / "tokenizer-tests/gpt2.inp");
  EXPECT_EQ(from_file->encode(text), gpt2->encode(text));
  EXPECT_EQ(from_file->eos_id(), 50256u);
}

TEST_F(ModelGguf, ByteVocabularyAndNamelessTokenizerAreRefused) {
  nn::ModelConfig c;  // GPT-2, vocab 256
  nn::LoadedModel loaded;
  loaded.model = std::make_unique<nn::Model>(c);
  loaded.tokenizer = "bytes";
  EXPECT_EQ(write(loaded, path("b.gguf"), f32_options()),
            "model: the model reads raw bytes (tokenizer 'bytes'), and llama.cpp has no byte "
            "tokenizer");
  loaded.tokenizer = "";
  EXPECT_EQ(write(loaded, path("b.gguf"), f32_options()),
            "model names no tokenizer, which llama.cpp needs; pass --tokenizer");
  EXPECT_FALSE(fs::exists(path("b.gguf")));
}

// A one-layer llama GGUF built here, with KVs to vary.
std::string write_small_llama(const std::string& out, std::vector<io::GgufKv> kvs,
                              bool with_architecture = true) {
  nn::ModelConfig c;
  c.arch = nn::Arch::kLlama;
  c.vocab = 8, c.dim = 32, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 2, c.hidden = 32;
  c.seq_len = 8;
  nn::Params params(c);
  std::vector<io::GgufKv> all;
  for (io::GgufKv& kv : nn::gguf_model_kvs(c)) {
    if (!with_architecture && kv.key == "general.architecture") continue;
    bool replaced = false;
    for (io::GgufKv& mine : kvs) replaced |= mine.key == kv.key;
    if (!replaced) all.push_back(kv);
  }
  all.insert(all.end(), kvs.begin(), kvs.end());
  std::vector<std::vector<float>> values;
  std::vector<io::GgufTensorToWrite> tensors;
  for (const nn::GgufModelTensor& t : nn::gguf_model_tensors(c)) {
    values.push_back(nn::gather_gguf_tensor(params, t));
    const auto* bytes = reinterpret_cast<const uint8_t*>(values.back().data());
    tensors.push_back({t.name,
                       {t.shape.rbegin(), t.shape.rend()},
                       io::kGgmlF32,
                       {bytes, values.back().size() * 4}});
  }
  return io::write_gguf(out, all, tensors);
}

TEST_F(ModelGguf, WhatMxkitCannotRunIsRefusedNamingTheKey) {
  nn::LoadedModel m;
  ASSERT_EQ(write_small_llama(path("ok.gguf"), {}), "");
  EXPECT_EQ(nn::load_model_file(path("ok.gguf"), &m), "");
  EXPECT_EQ(m.tokenizer, "");  // no tokenizer.ggml.* KVs

  ASSERT_EQ(write_small_llama(path("plain.gguf"), {}, false), "");
  EXPECT_EQ(nn::load_model_file(path("plain.gguf"), &m),
            path("plain.gguf") +
                ": a GGUF tensor container, not a model: general.architecture is missing");
  ASSERT_EQ(write_small_llama(path("rope.gguf"), {io::gguf_kv("llama.rope.freq_base", 5e5f)}), "");
  EXPECT_EQ(nn::load_model_file(path("rope.gguf"), &m),
            path("rope.gguf") + ": llama.rope.freq_base is 500000; mxkit's RoPE uses 10000");
  ASSERT_EQ(write_small_llama(path("eps.gguf"),
                              {io::gguf_kv("llama.attention.layer_norm_rms_epsilon", 1e-6f)}),
            "");
  EXPECT_EQ(nn::load_model_file(path("eps.gguf"), &m),
            path("eps.gguf") +
                ": llama.attention.layer_norm_rms_epsilon is 1e-06; mxkit's norms "
                "use 1e-05");
  ASSERT_EQ(write_small_llama(path("arch.gguf"),
                              {io::gguf_kv("general.architecture", std::string("qwen2"))}),
            "");
  EXPECT_EQ(nn::load_model_file(path("arch.gguf"), &m),
            path("arch.gguf") + ": general.architecture is 'qwen2'; mxkit runs 'llama' and 'gpt2'");
  ASSERT_EQ(
      write_small_llama(path("layers.gguf"), {io::gguf_kv("llama.block_count", uint32_t(1000000))}),
      "");
  EXPECT_EQ(
      nn::load_model_file(path("layers.gguf"), &m),
      path("layers.gguf") + ": llama.block_count is 1000000, but the file has only 11 tensors");
}

TEST_F(ModelGguf, TokenizerListsOfAnotherLengthThanTheTokensAreRefused) {
  const std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", "a", "b", "c", "d", "e"};
  const auto tokenizer_kvs = [&](size_t scores, size_t types) {
    return std::vector<io::GgufKv>{
        io::gguf_kv("tokenizer.ggml.model", std::string("llama")),
        {"tokenizer.ggml.tokens", io::gguf_string_array(tokens)},
        {"tokenizer.ggml.scores", io::gguf_f32_array(std::vector<float>(scores, 0.0f))},
        {"tokenizer.ggml.token_type", io::gguf_i32_array(std::vector<int32_t>(types, 1))}};
  };
  std::unique_ptr<data::Tokenizer> tokenizer;
  std::vector<io::GgufKv> copied;
  ASSERT_EQ(write_small_llama(path("ok.gguf"), tokenizer_kvs(8, 8)), "");
  EXPECT_EQ(data::load_tokenizer(path("ok.gguf"), {}, &tokenizer), "");
  EXPECT_EQ(data::gguf_tokenizer_kvs(path("ok.gguf"), {}, 8, &copied), "");

  ASSERT_EQ(write_small_llama(path("types.gguf"), tokenizer_kvs(8, 7)), "");
  const std::string types_error =
      path("types.gguf") + ": tokenizer.ggml.token_type has 7 entries for 8 tokens";
  EXPECT_EQ(data::load_tokenizer(path("types.gguf"), {}, &tokenizer), types_error);
  EXPECT_EQ(data::gguf_tokenizer_kvs(path("types.gguf"), {}, 8, &copied), types_error);

  ASSERT_EQ(write_small_llama(path("scores.gguf"), tokenizer_kvs(9, 8)), "");
  EXPECT_EQ(data::load_tokenizer(path("scores.gguf"), {}, &tokenizer),
            path("scores.gguf") + ": tokenizer.ggml.scores has 9 entries for 8 tokens");
}

}  // namespace
}  // namespace mx::train
