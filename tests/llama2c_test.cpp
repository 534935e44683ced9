// The llama2.c checkpoint reader: header validation, the layout of the arrays, truncation named
// by offset, and conversion to safetensors under Llama names that reads back identical floats.
// The stories260K checks read MX_DATA_DIR and skip when it is not set.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "mx/io/llama2c.h"
#include "mx/io/safetensors.h"

namespace mx::io {
namespace {

namespace fs = std::filesystem;

class Llama2cTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::path(::testing::TempDir()) / "mx_l2c_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  // Writes a header and `floats` floats numbered 0, 1, 2, ...
  std::string write(const std::string& name, std::array<int32_t, 7> h, size_t floats) {
    const fs::path p = dir_ / name;
    std::ofstream out(p, std::ios::binary);
    out.write(reinterpret_cast<const char*>(h.data()), 28);
    for (size_t i = 0; i < floats; ++i) {
      const float f = static_cast<float>(i);
      out.write(reinterpret_cast<const char*>(&f), 4);
    }
    return p.string();
  }
  fs::path dir_;
};

// dim 8, hidden 12, 2 layers, 2 heads, 1 kv head (kv_dim 4), vocab 10, seq 4 (head 4: 2 pairs).
constexpr size_t kSmallFloats =
    10 * 8 + 2 * 8 + 2 * 64 + 2 * 2 * 32 + 2 * 64 + 2 * 8 + 3 * 2 * 96 + 8 + 2 * 4 * 2;

// The floats of `name` in a safetensors file, checked to be F32.
std::vector<float> floats_of(const SafetensorsFile& f, const std::string& name) {
  const SafetensorsTensor* t = f.find(name);
  EXPECT_NE(t, nullptr) << name;
  if (t == nullptr) return {};
  EXPECT_EQ(t->dtype, "F32");
  std::vector<float> v(t->bytes.size() / 4);
  std::memcpy(v.data(), t->bytes.data(), t->bytes.size());
  return v;
}

// Checks that the safetensors file at `path` holds exactly the checkpoint's floats.
void expect_same_weights(const Llama2cCheckpoint& c, const std::string& path) {
  SafetensorsFile f;
  ASSERT_EQ(open_safetensors(path, &f), "");
  const Llama2cConfig& cfg = c.config();
  EXPECT_EQ(f.metadata().at("llama2c.dim"), std::to_string(cfg.dim));
  EXPECT_EQ(f.metadata().at("llama2c.n_kv_heads"), std::to_string(cfg.n_kv_heads));
  EXPECT_EQ(f.metadata().at("llama2c.vocab_size"), std::to_string(cfg.vocab_size));
  EXPECT_EQ(f.metadata().at("llama2c.shared_classifier"), cfg.shared_classifier ? "true" : "false");
  auto whole = [&](const char* from, const std::string& to) {
    const auto* t = c.find(from);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(f.find(to)->shape, t->shape);
    const std::vector<float> got = floats_of(f, to);
    EXPECT_EQ(std::memcmp(got.data(), t->data.data(), got.size() * 4), 0) << to;
    EXPECT_EQ(got.size(), t->data.size());
  };
  auto layer = [&](const char* from, int i, const std::string& to) {
    const auto* t = c.find(from);
    ASSERT_NE(t, nullptr);
    const size_t per = t->data.size() / static_cast<size_t>(cfg.n_layers);
    const std::vector<float> got = floats_of(f, to);
    ASSERT_EQ(got.size(), per) << to;
    EXPECT_EQ(std::memcmp(got.data(), t->data.data() + i * per, per * 4), 0) << to;
    EXPECT_EQ(f.find(to)->shape, std::vector<int64_t>(t->shape.begin() + 1, t->shape.end()));
  };
  whole("token_embedding", "model.embed_tokens.weight");
  whole("rms_final", "model.norm.weight");
  size_t expected_tensors = 2 + 9 * static_cast<size_t>(cfg.n_layers);
  if (!cfg.shared_classifier) {
    whole("wcls", "lm_head.weight");
    ++expected_tensors;
  } else {
    EXPECT_EQ(f.find("lm_head.weight"), nullptr);
  }
  EXPECT_EQ(f.tensors().size(), expected_tensors);
  for (int i = 0; i < cfg.n_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    layer("rms_att", i, p + "input_layernorm.weight");
    layer("wq", i, p + "self_attn.q_proj.weight");
    layer("wk", i, p + "self_attn.k_proj.weight");
    layer("wv", i, p + "self_attn.v_proj.weight");
    layer("wo", i, p + "self_attn.o_proj.weight");
    layer("rms_ffn", i, p + "post_attention_layernorm.weight");
    layer("w1", i, p + "mlp.gate_proj.weight");
    layer("w2", i, p + "mlp.down_proj.weight");
    layer("w3", i, p + "mlp.up_proj.weight");
  }
}

TEST_F(Llama2cTest, SmallUnsharedCheckpointLaysOutAndConverts) {
  const std::string path = write("small.bin", {8, 12, 2, 2, 1, -10, 4}, kSmallFloats + 10 * 8);
  Llama2cCheckpoint c;
  ASSERT_EQ(read_llama2c(path, &c), "");
  EXPECT_EQ(c.config().vocab_size, 10);
  EXPECT_FALSE(c.config().shared_classifier);
  EXPECT_EQ(c.config().kv_dim(), 4);
  const std::vector<std::pair<std::string, std::vector<int64_t>>> want = {
      {"token_embedding", {10, 8}},
      {"rms_att", {2, 8}},
      {"wq", {2, 8, 8}},
      {"wk", {2, 4, 8}},
      {"wv", {2, 4, 8}},
      {"wo", {2, 8, 8}},
      {"rms_ffn", {2, 8}},
      {"w1", {2, 12, 8}},
      {"w2", {2, 8, 12}},
      {"w3", {2, 12, 8}},
      {"rms_final", {8}},
      {"freq_cis_real", {4, 2}},
      {"freq_cis_imag", {4, 2}},
      {"wcls", {10, 8}}};
  ASSERT_EQ(c.tensors().size(), want.size());
  uint64_t offset = 28;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(c.tensors()[i].name, want[i].first);
    EXPECT_EQ(c.tensors()[i].shape, want[i].second);
    EXPECT_EQ(c.tensors()[i].file_offset, offset);
    EXPECT_EQ(c.tensors()[i].data[0], static_cast<float>((offset - 28) / 4));
    offset += c.tensors()[i].data.size() * 4;
  }
  EXPECT_EQ(offset, 28 + (kSmallFloats + 80) * 4);
  const std::string out = (dir_ / "small.safetensors").string();
  ASSERT_EQ(llama2c_to_safetensors(c, out), "");
  expect_same_weights(c, out);
}

TEST_F(Llama2cTest, BadHeadersAndTruncationAreNamed) {
  Llama2cCheckpoint c;
  auto err = [&](std::array<int32_t, 7> h, size_t floats) {
    return read_llama2c(write("bad.bin", h, floats), &c);
  };
  const std::string p = (dir_ / "bad.bin").string() + ": ";
  EXPECT_EQ(err({0, 12, 2, 2, 1, 10, 4}, 0), p + "llama2.c header: dim = 0 is not positive");
  EXPECT_EQ(err({8, 12, -2, 2, 1, 10, 4}, 0), p + "llama2.c header: n_layers = -2 is not positive");
  EXPECT_EQ(err({8, 12, 2, 2, 1, 0, 4}, 0), p + "llama2.c header: vocab_size = 0 is not positive");
  EXPECT_EQ(err({8, 12, 2, 3, 1, 10, 4}, 0),
            p + "llama2.c header: dim 8 is not a multiple of n_heads 3");
  EXPECT_EQ(err({8, 12, 2, 2, 3, 10, 4}, 0),
            p + "llama2.c header: n_heads 2 is not a multiple of n_kv_heads 3");
  EXPECT_EQ(err({6, 12, 2, 2, 1, 10, 4}, 0),
            p + "llama2.c header: head size 3 (dim / n_heads) is odd");
  EXPECT_EQ(err({1 << 30, 1 << 30, 1 << 30, 2, 1, 10, 4}, 0),
            p + "llama2.c header: the implied file size overflows");
  EXPECT_EQ(err({8, 12, 2, 2, 1, 10, 4}, kSmallFloats - 1),
            p + "file of " + std::to_string(28 + (kSmallFloats - 1) * 4) +
                " bytes is truncated: 'freq_cis_imag' needs bytes " +
                std::to_string(28 + (kSmallFloats - 8) * 4) + ".." +
                std::to_string(28 + kSmallFloats * 4) + " (the header implies " +
                std::to_string(28 + kSmallFloats * 4) + " bytes)");
  // Every truncation of a good file is an error; the whole file is not.
  EXPECT_EQ(err({8, 12, 2, 2, 1, 10, 4}, kSmallFloats), "");
  // Nor is anything past the arrays the header implies: a damaged vocab_size (10 read as 1,
  // with an unshared classifier) would otherwise shift every array after the embedding.
  EXPECT_EQ(err({8, 12, 2, 2, 1, -1, 4}, kSmallFloats),
            p + "file of " + std::to_string(28 + kSmallFloats * 4) + " bytes is longer than the " +
                std::to_string(28 + (kSmallFloats - 64) * 4) +
                " its header implies (a damaged header?)");
  EXPECT_NE(err({8, 12, 2, 2, 1, 10, 4}, kSmallFloats + 1).find("is longer than"),
            std::string::npos);
  EXPECT_TRUE(c.config().shared_classifier);
  for (size_t floats = 0; floats < kSmallFloats; floats += 7) {
    EXPECT_NE(err({8, 12, 2, 2, 1, 10, 4}, floats), "") << floats;
  }
  std::ofstream(dir_ / "short.bin", std::ios::binary) << "abc";
  EXPECT_EQ(read_llama2c((dir_ / "short.bin").string(), &c),
            (dir_ / "short.bin").string() + ": file of 3 bytes is shorter than the 28-byte header");
  EXPECT_TRUE(c.tensors().empty());
}

// parse_llama2c is read_llama2c without the file: the same layout, and the same errors less the
// path.
TEST_F(Llama2cTest, InMemoryParseMatchesTheFileReader) {
  const std::string path = write("mem.bin", {8, 12, 2, 2, 1, -10, 4}, kSmallFloats + 10 * 8);
  std::ifstream in(path, std::ios::binary);
  const std::vector<char> chars((std::istreambuf_iterator<char>(in)), {});
  std::vector<float> buffer(chars.size() / 4);  // float-aligned, as the reader needs
  std::memcpy(buffer.data(), chars.data(), chars.size());
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(buffer.data()),
                                       chars.size());
  Llama2cCheckpoint from_file, from_memory;
  ASSERT_EQ(read_llama2c(path, &from_file), "");
  ASSERT_EQ(parse_llama2c(bytes, &from_memory), "");
  ASSERT_EQ(from_memory.tensors().size(), from_file.tensors().size());
  for (size_t i = 0; i < from_file.tensors().size(); ++i) {
    const auto& a = from_file.tensors()[i];
    const auto& b = from_memory.tensors()[i];
    EXPECT_EQ(b.name, a.name);
    EXPECT_EQ(b.shape, a.shape);
    EXPECT_EQ(b.file_offset, a.file_offset);
    EXPECT_EQ(reinterpret_cast<const uint8_t*>(b.data.data()), bytes.data() + b.file_offset);
    EXPECT_TRUE(std::equal(a.data.begin(), a.data.end(), b.data.begin(), b.data.end()));
  }
  EXPECT_EQ(parse_llama2c(bytes.first(27), &from_memory),
            "file of 27 bytes is shorter than the 28-byte header");
  EXPECT_TRUE(from_memory.tensors().empty());
}

TEST_F(Llama2cTest, Stories260K) {
  const char* data_dir = std::getenv("MX_DATA_DIR");
  if (data_dir == nullptr) GTEST_SKIP() << "MX_DATA_DIR is not set (point it at the shared data)";
  const fs::path path = fs::path(data_dir) / "stories260K" / "stories260K.bin";
  if (!fs::exists(path)) GTEST_SKIP() << path << " is missing (check MX_DATA_DIR)";
  Llama2cCheckpoint c;
  ASSERT_EQ(read_llama2c(path.string(), &c), "");
  const Llama2cConfig& cfg = c.config();
  EXPECT_EQ(cfg.dim, 64);
  EXPECT_EQ(cfg.hidden_dim, 172);
  EXPECT_EQ(cfg.n_layers, 5);
  EXPECT_EQ(cfg.n_heads, 8);
  EXPECT_EQ(cfg.n_kv_heads, 4);
  EXPECT_EQ(cfg.vocab_size, 512);
  EXPECT_EQ(cfg.seq_len, 512);
  EXPECT_TRUE(cfg.shared_classifier);
  EXPECT_EQ(c.find("wk")->shape, (std::vector<int64_t>{5, 32, 64}));
  EXPECT_EQ(c.find("w2")->shape, (std::vector<int64_t>{5, 64, 172}));
  EXPECT_EQ(c.find("freq_cis_real")->shape, (std::vector<int64_t>{512, 4}));
  EXPECT_EQ(c.find("wcls"), nullptr);
  // The arrays end exactly at the end of the file.
  const auto& last = c.tensors().back();
  EXPECT_EQ(last.file_offset + last.data.size() * 4, fs::file_size(path));
  const std::string out = (dir_ / "stories260K.safetensors").string();
  ASSERT_EQ(llama2c_to_safetensors(c, out), "");
  expect_same_weights(c, out);
}

}  // namespace
}  // namespace mx::io
