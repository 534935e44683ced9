// Checkpoint conversion (mx/convert): quantize -> dequantize must give back exactly what
// cpu::fake_quantize gives for each quantized tensor, and every other tensor byte for byte,
// through MX safetensors for every spec and through GGUF for MXFP4.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mx/convert/dequantize_checkpoint.h"
#include "mx/convert/dtypes.h"
#include "mx/convert/inspect_checkpoint.h"
#include "mx/convert/quantize_checkpoint.h"
#include "mx/core/half.h"
#include "mx/io/content_checksum.h"
#include "mx/io/gguf.h"
#include "mx/io/llama2c.h"
#include "mx/io/mx_safetensors.h"
#include "mx/io/safetensors.h"
#include "mx/kernels/cpu/quantize.h"
#include "tests/test_data.h"

namespace mx::convert {
namespace {

namespace fs = std::filesystem;

struct Plain {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

// Values of `dtype` made from stress values (rounded to the dtype, so any float is exact).
Plain float_tensor(std::string name, DType dtype, std::vector<int64_t> shape, uint64_t seed,
                   bool with_nonfinite = false) {
  const std::vector<float> v =
      testing::stress_values(size_t(element_count(shape)), seed, with_nonfinite);
  return {std::move(name), std::string(safetensors_name(dtype)), std::move(shape),
          encode_floats(v, dtype)};
}

// A small model: one tensor of each kind the rules tell apart.
std::vector<Plain> synthetic_model() {
  std::vector<Plain> m;
  m.push_back(float_tensor("model.embed_tokens.weight", DType::kF32, {16, 64}, 1));
  m.push_back(float_tensor("model.layers.0.self_attn.q_proj.weight", DType::kBF16, {32, 64}, 2));
  m.push_back(float_tensor("model.layers.0.self_attn.q_proj.bias", DType::kF32, {32}, 3));
  m.push_back(float_tensor("model.layers.0.input_layernorm.weight", DType::kF32, {64}, 4));
  m.push_back(float_tensor("model.layers.0.mlp.up_proj.weight", DType::kF32, {2, 8, 96}, 5,
                           /*with_nonfinite=*/true));
  // Its last dimension is no multiple of 32: padded blocks in MX safetensors, kept in GGUF.
  m.push_back(float_tensor("model.layers.0.mlp.down_proj.weight", DType::kF16, {64, 40}, 6));
  m.push_back({"model.position_ids", "I32", {3}, {1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0}});
  return m;
}

const std::map<std::string, std::string> kMetadata = {{"format", "pt"}, {"note", "synthetic"}};

std::string write_model(const fs::path& path, const std::vector<Plain>& model) {
  std::vector<io::TensorToWrite> list;
  for (const Plain& p : model) list.push_back({p.name, p.dtype, p.shape, p.bytes});
  return io::write_safetensors(path.string(), list, kMetadata);
}

std::vector<uint8_t> fake_quantized(const Plain& p, const QuantSpec& spec, DType out) {
  std::vector<uint8_t> bytes(size_t(element_count(p.shape)) * size_t(dtype_size(out)));
  EXPECT_EQ(cpu::fake_quantize(p.bytes.data(), *io::safetensors_float_dtype(p.dtype), p.shape, spec,
                               out, bytes.data()),
            "");
  return bytes;
}

std::vector<uint8_t> bytes_of(const io::SafetensorsTensor& t) {
  return {t.bytes.begin(), t.bytes.end()};
}

std::map<std::string, TensorAction> actions(const ConvertReport& r) {
  std::map<std::string, TensorAction> out;
  for (const TensorOutcome& t : r.tensors) out[t.name] = t.action;
  return out;
}

class ConvertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::path(::testing::TempDir()) / "mx_convert_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    model_ = synthetic_model();
    ASSERT_EQ(write_model(input(), model_), "");
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string input() const { return (dir_ / "in.safetensors").string(); }
  std::string path(const char* name) const { return (dir_ / name).string(); }

  // Quantizes to `mid`, decodes to `out_dtype`, and checks every tensor of the result against
  // the input: fake-quantized where the report says quantized, else the same bytes.
  void expect_round_trip(const QuantizeOptions& q, const std::string& mid, DType out_dtype) {
    ConvertReport qr, dr;
    ASSERT_EQ(quantize_checkpoint(input(), mid, q, nullptr, &qr), "");
    DequantizeOptions d;
    d.dtype = out_dtype;
    const std::string out = path("out.safetensors");
    ASSERT_EQ(dequantize_checkpoint(mid, out, d, nullptr, &dr), "");
    io::SafetensorsFile f;
    ASSERT_EQ(io::open_safetensors(out, &f), "");
    ASSERT_EQ(f.tensors().size(), model_.size());
    const auto done = actions(qr);
    EXPECT_GT(qr.count(TensorAction::kConverted), 0);
    for (const Plain& p : model_) {
      SCOPED_TRACE(p.name);
      const io::SafetensorsTensor* t = f.find(p.name);
      ASSERT_NE(t, nullptr);
      EXPECT_EQ(t->shape, p.shape);
      if (done.at(p.name) == TensorAction::kConverted) {
        EXPECT_EQ(t->dtype, safetensors_name(out_dtype));
        EXPECT_EQ(bytes_of(*t), fake_quantized(p, q.spec, out_dtype));
      } else {
        EXPECT_EQ(t->dtype, p.dtype);
        EXPECT_EQ(bytes_of(*t), p.bytes);
      }
    }
    io::SafetensorsFile in;
    ASSERT_EQ(io::open_safetensors(input(), &in), "");
    EXPECT_EQ(f.metadata(), in.metadata());
  }

  fs::path dir_;
  std::vector<Plain> model_;
};

class QuantizeCheckpoint : public ConvertTest {};
class DequantizeCheckpoint : public ConvertTest {};
class InspectCheckpoint : public ConvertTest {};

QuantizeOptions mxfp4() {
  QuantizeOptions o;
  o.spec.format = ElementFormat::kE2M1;
  return o;
}

TEST_F(QuantizeCheckpoint, MxSafetensorsRoundTripEqualsFakeQuantize) {
  expect_round_trip(mxfp4(), path("mid.safetensors"), DType::kF32);
}

TEST_F(QuantizeCheckpoint, MxSafetensorsRoundTripHoldsForEverySpecKind) {
  QuantizeOptions o;
  o.spec.format = ElementFormat::kE4M3;
  o.spec.tile_rows = o.spec.tile_cols = 4;
  o.spec.scale_rule = ScaleRule::kRceil;
  expect_round_trip(o, path("tiles.safetensors"), DType::kF32);
  o = {};
  o.spec.format = ElementFormat::kInt4;
  o.spec.asymmetric = true;
  o.spec.axis = 0;
  o.spec.block_size = 16;
  o.spec.rounding = Rounding::kStochastic;
  o.spec.seed = 7;
  expect_round_trip(o, path("asym.safetensors"), DType::kF32);
}

TEST_F(QuantizeCheckpoint, GgufMxfp4RoundTripEqualsFakeQuantize) {
  expect_round_trip(mxfp4(), path("mid.gguf"), DType::kF32);
  ConvertReport r;
  ASSERT_EQ(quantize_checkpoint(input(), path("mid.gguf"), mxfp4(), nullptr, &r), "");
  EXPECT_EQ(actions(r).at("model.layers.0.mlp.down_proj.weight"), TensorAction::kKept);
  io::GgufFile g;
  ASSERT_EQ(io::open_gguf(path("mid.gguf"), &g), "");
  EXPECT_EQ(g.find_tensor("model.layers.0.mlp.up_proj.weight")->type, io::kGgmlMxfp4);
  EXPECT_EQ(g.find_tensor("model.layers.0.self_attn.q_proj.weight")->type, io::kGgmlMxfp4);
  EXPECT_EQ(g.find_tensor("model.layers.0.mlp.down_proj.weight")->type, io::kGgmlF16);
  EXPECT_EQ(g.find_tensor("model.embed_tokens.weight")->type, io::kGgmlF32);
}

TEST_F(QuantizeCheckpoint, DefaultsKeepEmbeddingsNormsAndVectors) {
  ConvertReport r;
  ASSERT_EQ(quantize_checkpoint(input(), path("mid.safetensors"), mxfp4(), nullptr, &r), "");
  std::map<std::string, std::string> reason;
  for (const TensorOutcome& t : r.tensors) reason[t.name] = t.reason;
  EXPECT_EQ(reason.at("model.embed_tokens.weight"), "embedding");
  EXPECT_EQ(reason.at("model.layers.0.input_layernorm.weight"), "norm");
  EXPECT_EQ(reason.at("model.layers.0.self_attn.q_proj.bias"), "1-D");
  const auto a = actions(r);
  EXPECT_EQ(a.at("model.position_ids"), TensorAction::kCopied);
  EXPECT_EQ(a.at("model.layers.0.self_attn.q_proj.weight"), TensorAction::kConverted);
  EXPECT_EQ(a.at("model.layers.0.mlp.up_proj.weight"), TensorAction::kConverted);
  EXPECT_EQ(a.at("model.layers.0.mlp.down_proj.weight"), TensorAction::kConverted);
  EXPECT_EQ(r.count(TensorAction::kConverted), 3);
}

TEST_F(QuantizeCheckpoint, IncludeFlagsQuantizeEverythingFloat) {
  QuantizeOptions o = mxfp4();
  o.selection.include_embeddings = o.selection.include_norms = o.selection.include_vectors = true;
  ConvertReport r;
  ASSERT_EQ(quantize_checkpoint(input(), path("mid.safetensors"), o, nullptr, &r), "");
  EXPECT_EQ(r.count(TensorAction::kConverted), 6);
  EXPECT_EQ(r.count(TensorAction::kCopied), 1);
  expect_round_trip(o, path("mid.safetensors"), DType::kF32);
}

TEST_F(QuantizeCheckpoint, OnlyOverridesTheDefaultsAndSkipWinsOverOnly) {
  QuantizeOptions o = mxfp4();
  o.selection.only = "embed|norm|up_proj";
  o.selection.skip = "up_proj";
  ConvertReport r;
  ASSERT_EQ(quantize_checkpoint(input(), path("mid.safetensors"), o, nullptr, &r), "");
  const auto a = actions(r);
  EXPECT_EQ(a.at("model.embed_tokens.weight"), TensorAction::kConverted);
  EXPECT_EQ(a.at("model.layers.0.input_layernorm.weight"), TensorAction::kConverted);
  EXPECT_EQ(a.at("model.layers.0.mlp.up_proj.weight"), TensorAction::kKept);
  EXPECT_EQ(a.at("model.layers.0.self_attn.q_proj.weight"), TensorAction::kKept);
  EXPECT_EQ(r.count(TensorAction::kConverted), 2);
}

TEST_F(QuantizeCheckpoint, ErrorsNameTheProblemAndWriteNothing) {
  ConvertReport r;
  QuantizeOptions o = mxfp4();
  o.selection.only = "(";
  EXPECT_NE(quantize_checkpoint(input(), path("a.safetensors"), o, nullptr, &r)
                .find("bad --only regular expression '('"),
            std::string::npos);
  o = mxfp4();
  o.spec.axis = 2;  // the 2-D tensors have no axis 2
  EXPECT_EQ(quantize_checkpoint(input(), path("a.safetensors"), o, nullptr, &r)
                .rfind(input() + ": tensor 'model.layers.0.self_attn.q_proj.weight' [32, 64]: ", 0),
            0u);
  o = {};  // MXFP8 cannot go to GGUF
  EXPECT_EQ(quantize_checkpoint(input(), path("a.gguf"), o, nullptr, &r)
                .rfind("GGUF holds MX tensors only as MXFP4", 0),
            0u);
  EXPECT_NE(
      quantize_checkpoint(path("missing.safetensors"), path("a.safetensors"), mxfp4(), nullptr, &r)
          .find("missing.safetensors"),
      std::string::npos);
  EXPECT_FALSE(fs::exists(path("a.safetensors")));
  EXPECT_FALSE(fs::exists(path("a.gguf")));
}

// An input whose metadata names an MX tensor without its parts is damaged: quantize refuses it
// as inspect and dequantize do, rather than copying the broken entry into its output.
TEST_F(QuantizeCheckpoint, AnInputWithAnMxTensorWithoutItsPartsIsRefused) {
  io::SafetensorsFile in;
  ASSERT_EQ(io::open_safetensors(input(), &in), "");
  std::vector<io::TensorToWrite> tensors;
  for (const io::SafetensorsTensor& t : in.tensors()) {
    tensors.push_back({t.name, t.dtype, t.shape, t.bytes});
  }
  std::map<std::string, std::string> meta = in.metadata();
  MxTensor ghost;
  const std::vector<float> zeros(32 * 32, 0.0f);
  ASSERT_EQ(
      cpu::quantize(zeros.data(), DType::kF32, std::vector<int64_t>{32, 32}, mxfp4().spec, &ghost),
      "");
  meta["mx.ghost.weight"] = io::mx_spec_json(ghost);
  io::refresh_checksum(tensors, &meta);
  ASSERT_EQ(io::write_safetensors(path("ghost.safetensors"), tensors, meta), "");
  ConvertReport r;
  EXPECT_EQ(
      quantize_checkpoint(path("ghost.safetensors"), path("a.safetensors"), mxfp4(), nullptr, &r),
      path("ghost.safetensors") + ": MX tensor 'ghost.weight' lacks tensor 'ghost.weight.blocks'");
  EXPECT_FALSE(fs::exists(path("a.safetensors")));
}

TEST_F(QuantizeCheckpoint, ReportsProgressOncePerTensor) {
  std::vector<int64_t> seen;
  ConvertReport r;
  auto progress = [&](int64_t done, int64_t total, std::string_view) {
    EXPECT_EQ(total, int64_t(model_.size()));
    seen.push_back(done);
  };
  ASSERT_EQ(quantize_checkpoint(input(), path("mid.safetensors"), mxfp4(), progress, &r), "");
  EXPECT_EQ(seen, (std::vector<int64_t>{1, 2, 3, 4, 5, 6, 7}));
}

// Model files and training checkpoints carry a checksum of their contents; converting one
// must not copy it stale, or every reader would refuse the converted file as damaged.
TEST_F(QuantizeCheckpoint, AChecksummedInputGivesOutputsWithTheirOwnChecksum) {
  std::vector<io::TensorToWrite> list;
  for (const Plain& p : model_) list.push_back({p.name, p.dtype, p.shape, p.bytes});
  std::map<std::string, std::string> meta = kMetadata;
  io::add_checksum(list, &meta);
  ASSERT_EQ(io::write_safetensors(input(), list, meta), "");

  ConvertReport r;
  ASSERT_EQ(quantize_checkpoint(input(), path("mid.safetensors"), mxfp4(), nullptr, &r), "");
  ASSERT_EQ(
      dequantize_checkpoint(path("mid.safetensors"), path("out.safetensors"), {}, nullptr, &r), "");
  for (const char* name : {"mid.safetensors", "out.safetensors"}) {
    SCOPED_TRACE(name);
    io::SafetensorsFile f;
    EXPECT_EQ(io::open_safetensors(path(name), &f), "");  // verifies the checksum
    EXPECT_EQ(f.metadata().count(std::string(io::kChecksumKey)), 1u);
    EXPECT_NE(f.metadata().at(std::string(io::kChecksumKey)),
              meta.at(std::string(io::kChecksumKey)));
  }
  // GGUF holds no safetensors checksum.
  ASSERT_EQ(quantize_checkpoint(input(), path("mid.gguf"), mxfp4(), nullptr, &r), "");
  io::GgufFile g;
  ASSERT_EQ(io::open_gguf(path("mid.gguf"), &g), "");
  for (const io::GgufKv& kv : g.kvs()) EXPECT_NE(kv.key, io::kChecksumKey);
}

TEST_F(DequantizeCheckpoint, SixteenBitOutputsRoundTheExactValuesOnce) {
  QuantizeOptions o;
  o.spec.format = ElementFormat::kE4M3;
  expect_round_trip(o, path("mid.safetensors"), DType::kBF16);
  // float16: the exact float32 values, rounded once.
  ConvertReport r;
  ASSERT_EQ(quantize_checkpoint(input(), path("mid.safetensors"), o, nullptr, &r), "");
  DequantizeOptions d;
  d.dtype = DType::kF16;
  ASSERT_EQ(dequantize_checkpoint(path("mid.safetensors"), path("f16.safetensors"), d, nullptr, &r),
            "");
  io::SafetensorsFile f;
  ASSERT_EQ(io::open_safetensors(path("f16.safetensors"), &f), "");
  const Plain& p = model_[1];  // q_proj, quantized
  const std::vector<uint8_t> exact = fake_quantized(p, o.spec, DType::kF32);
  std::vector<float> values(exact.size() / 4);
  std::memcpy(values.data(), exact.data(), exact.size());
  EXPECT_EQ(f.find(p.name)->dtype, "F16");
  EXPECT_EQ(bytes_of(*f.find(p.name)), encode_floats(values, DType::kF16));
}

TEST_F(DequantizeCheckpoint, RejectsGgmlTypesItCannotDecode) {
  const std::vector<uint8_t> q8(34, 0);
  const io::GgufTensorToWrite t{"w", {32}, 8, q8};  // Q8_0
  ASSERT_EQ(io::write_gguf(path("q8.gguf"), {}, std::span(&t, 1)), "");
  ConvertReport r;
  EXPECT_EQ(dequantize_checkpoint(path("q8.gguf"), path("out.safetensors"), {}, nullptr, &r),
            path("q8.gguf") +
                ": tensor 'w' has ggml type Q8_0, which mx dequantize does not decode (MXFP4, "
                "F32, F16, BF16, I8-I64, F64 only)");
  EXPECT_FALSE(fs::exists(path("out.safetensors")));
}

TEST_F(DequantizeCheckpoint, PlainSafetensorsAreCopiedUnchanged) {
  ConvertReport r;
  ASSERT_EQ(dequantize_checkpoint(input(), path("out.safetensors"), {}, nullptr, &r), "");
  EXPECT_EQ(r.count(TensorAction::kCopied), int64_t(model_.size()));
  std::ifstream a(input(), std::ios::binary), b(path("out.safetensors"), std::ios::binary);
  EXPECT_TRUE(std::equal(std::istreambuf_iterator<char>(a), {}, std::istreambuf_iterator<char>(b)));
}

TEST_F(InspectCheckpoint, ListsAnMxTensorAsOneLogicalTensor) {
  ConvertReport r;
  ASSERT_EQ(quantize_checkpoint(input(), path("mid.safetensors"), mxfp4(), nullptr, &r), "");
  Inspection in;
  ASSERT_EQ(inspect_checkpoint(path("mid.safetensors"), &in), "");
  ASSERT_EQ(in.tensors.size(), model_.size());
  EXPECT_EQ(in.mx_count(), 3);
  const InspectedTensor& up = in.tensors[4];
  EXPECT_EQ(up.name, "model.layers.0.mlp.up_proj.weight");
  EXPECT_EQ(up.dtype, "mxfp4_e2m1");
  EXPECT_EQ(up.shape, (std::vector<int64_t>{2, 8, 96}));
  // 16 rows x 3 blocks, each 16 element bytes and 1 scale byte.
  EXPECT_EQ(up.bytes, 16u * 3u * 17u);
  EXPECT_DOUBLE_EQ(*up.ratio(), 2.0 * 16 * 96 / (16 * 3 * 17));
  EXPECT_EQ(up.spec_text, describe(mxfp4().spec));
  EXPECT_FALSE(in.tensors[6].ratio());  // I32
  EXPECT_EQ(in.bytes(), r.bytes_out());
  EXPECT_EQ(in.metadata.size(), kMetadata.size());

  const nlohmann::json j = nlohmann::json::parse(inspection_json(in));
  EXPECT_EQ(j["container"], "safetensors");
  EXPECT_EQ(j["tensors"][4]["spec"]["format"], "mxfp4_e2m1");
  EXPECT_EQ(j["tensors"][4]["bytes"], up.bytes);
  EXPECT_TRUE(j["tensors"][6]["ratio"].is_null());
  EXPECT_EQ(j["total"]["mx_tensors"], 3);
  EXPECT_EQ(j["total"]["bytes"], in.bytes());
  EXPECT_DOUBLE_EQ(j["total"]["ratio"].get<double>(), double(in.bf16_bytes()) / double(in.bytes()));
}

TEST_F(InspectCheckpoint, ReadsGgufAndLlama2c) {
  ConvertReport r;
  ASSERT_EQ(quantize_checkpoint(input(), path("mid.gguf"), mxfp4(), nullptr, &r), "");
  Inspection g;
  ASSERT_EQ(inspect_checkpoint(path("mid.gguf"), &g), "");
  EXPECT_EQ(g.container, Container::kGguf);
  EXPECT_EQ(g.mx_count(), 2);
  EXPECT_EQ(g.tensors[4].dtype, "MXFP4");
  EXPECT_EQ(g.tensors[4].bytes, 16u * 3u * 17u);

  // dim 8, hidden 16, 1 layer, 2 heads, 2 kv heads, vocab 10, seq 4: 13 arrays of zeros.
  const int32_t header[7] = {8, 16, 1, 2, 2, 10, 4};
  const size_t floats = 10 * 8 + 8 + 4 * 64 + 8 + 3 * 128 + 8 + 2 * 4 * 2;
  std::ofstream(path("tiny.bin"), std::ios::binary)
          .write(reinterpret_cast<const char*>(header), sizeof header)
      << std::string(floats * 4, '\0');
  Inspection l;
  ASSERT_EQ(inspect_checkpoint(path("tiny.bin"), &l), "");
  EXPECT_EQ(l.container, Container::kLlama2c);
  EXPECT_EQ(l.tensors.size(), 13u);
  EXPECT_EQ(l.parameters(), int64_t(floats));
  EXPECT_DOUBLE_EQ(*l.ratio(), 0.5);
}

TEST_F(InspectCheckpoint, BadFilesAreOneLineErrors) {
  std::ofstream(path("junk.safetensors")) << "hello";
  Inspection in;
  const std::string e = inspect_checkpoint(path("junk.safetensors"), &in);
  EXPECT_EQ(e.rfind(path("junk.safetensors") + ": ", 0), 0u);
  EXPECT_EQ(e.find('\n'), std::string::npos);
}

// The real model: both round trips on stories260K (llama2.c -> safetensors first).
TEST_F(QuantizeCheckpoint, Stories260KRoundTripsEqualFakeQuantize) {
  const char* data_dir = std::getenv("MX_DATA_DIR");
  if (data_dir == nullptr) GTEST_SKIP() << "MX_DATA_DIR is not set (point it at the shared data)";
  const fs::path bin = fs::path(data_dir) / "stories260K" / "stories260K.bin";
  if (!fs::exists(bin)) GTEST_SKIP() << bin << " is missing (check MX_DATA_DIR)";
  io::Llama2cCheckpoint ckpt;
  ASSERT_EQ(io::read_llama2c(bin.string(), &ckpt), "");
  ASSERT_EQ(io::llama2c_to_safetensors(ckpt, input()), "");
  io::SafetensorsFile f;
  ASSERT_EQ(io::open_safetensors(input(), &f), "");
  model_.clear();
  for (const io::SafetensorsTensor& t : f.tensors()) {
    model_.push_back({t.name, t.dtype, t.shape, bytes_of(t)});
  }
  expect_round_trip(mxfp4(), path("mid.safetensors"), DType::kF32);
  expect_round_trip(mxfp4(), path("mid.gguf"), DType::kF32);
}

}  // namespace
}  // namespace mx::convert
