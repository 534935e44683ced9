// The safetensors reader and writer against the published format, and MX tensors stored in the
// gpt-oss convention: round trips for every dtype, the exact header layout, every malformed
// input named with its byte offset, and lossless MxTensor store/load.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "mx/core/block_grid.h"
#include "mx/core/layout_gpt_oss.h"
#include "mx/core/mx_tensor.h"
#include "mx/io/mx_safetensors.h"
#include "mx/io/safetensors.h"

namespace mx::io {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

Bytes random_bytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Bytes b(n);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return b;
}

// A file with header `json` (unpadded) and `data_bytes` bytes of data.
Bytes raw_file(const std::string& json, size_t data_bytes, uint64_t n_override = 0) {
  const uint64_t n = n_override ? n_override : json.size();
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[static_cast<size_t>(i)] = static_cast<char>(n >> (8 * i));
  s += json;
  for (size_t i = 0; i < data_bytes; ++i) s.push_back(static_cast<char>(i));
  return Bytes(s.begin(), s.end());
}

std::string parse_error(const Bytes& b) {
  SafetensorsFile f;
  return parse_safetensors(b, &f);
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::path(::testing::TempDir()) / "mx_st_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path dir_;
};

const char* const kAllDTypes[] = {
    "BOOL", "U8",  "I8",  "U16",     "I16",     "F16",     "BF16", "U32",     "I32",    "F32",
    "U64",  "I64", "F64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4",   "F6_E2M3", "F6_E3M2"};

TEST_F(SafetensorsTest, EveryDTypeRoundTripsThroughFileAndMemory) {
  std::vector<Bytes> storage;
  std::vector<TensorToWrite> list;
  int i = 0;
  for (const char* dtype : kAllDTypes) {
    std::string err;
    const std::vector<int64_t> shape = {2, 3, 4};
    const uint64_t n = safetensors_byte_size(dtype, shape, &err);
    ASSERT_EQ(err, "") << dtype;
    EXPECT_EQ(n, 24u * static_cast<uint64_t>(safetensors_dtype_bits(dtype)) / 8) << dtype;
    storage.push_back(random_bytes(n, static_cast<uint64_t>(i)));
    list.push_back({std::string("t_") + dtype, dtype, shape, storage.back()});
    ++i;
  }
  // `storage` grew while `list` was built: point the spans at the final buffers.
  for (size_t k = 0; k < list.size(); ++k) list[k].bytes = storage[k];
  list.push_back({"scalar", "F32", {}, std::span<const uint8_t>(storage[9]).first(4)});
  list.push_back({"empty", "F16", {0, 5}, {}});
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"k", "v \"quoted\""}};
  const fs::path path = dir_ / "all.safetensors";
  ASSERT_EQ(write_safetensors(path.string(), list, meta), "");

  Bytes encoded;
  ASSERT_EQ(encode_safetensors(list, meta, &encoded), "");
  std::ifstream in(path, std::ios::binary);
  const Bytes on_disk((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(on_disk, encoded);

  uint64_t n = 0;
  for (int k = 7; k >= 0; --k) n = (n << 8) | on_disk[k];
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(on_disk[8], '{');
  const std::string header(on_disk.begin() + 8, on_disk.begin() + 8 + static_cast<long>(n));
  EXPECT_EQ(header.find_last_not_of(' '), header.rfind('}'));

  SafetensorsFile from_file, from_memory;
  ASSERT_EQ(open_safetensors(path.string(), &from_file), "");
  ASSERT_EQ(parse_safetensors(encoded, &from_memory), "");
  for (const SafetensorsFile* f : {&from_file, &from_memory}) {
    EXPECT_EQ(f->metadata(), meta);
    ASSERT_EQ(f->tensors().size(), list.size());
    for (size_t k = 0; k < list.size(); ++k) {
      const SafetensorsTensor& t = f->tensors()[k];  // file order is write order
      EXPECT_EQ(t.name, list[k].name);
      EXPECT_EQ(t.dtype, list[k].dtype);
      EXPECT_EQ(t.shape, list[k].shape);
      EXPECT_TRUE(
          std::equal(t.bytes.begin(), t.bytes.end(), list[k].bytes.begin(), list[k].bytes.end()))
          << t.name;
    }
    EXPECT_NE(f->find("t_BF16"), nullptr);
    EXPECT_EQ(f->find("nope"), nullptr);
  }
}

TEST_F(SafetensorsTest, NoMetadataMeansNoMetadataKey) {
  const Bytes data = random_bytes(8, 1);
  const TensorToWrite t{"a", "F32", {2}, data};
  Bytes b;
  ASSERT_EQ(encode_safetensors(std::span(&t, 1), {}, &b), "");
  const std::string header(b.begin() + 8, b.end() - 8);
  EXPECT_EQ(header.find("__metadata__"), std::string::npos);
  EXPECT_EQ(header.rfind("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 0),
            0u);
}

TEST_F(SafetensorsTest, WriterRefusesBadLists) {
  const Bytes data = random_bytes(8, 1);
  auto err = [&](std::vector<TensorToWrite> l) {
    return write_safetensors((dir_ / "x.safetensors").string(), l, {});
  };
  EXPECT_EQ(err({{"a", "F32", {2}, data}, {"a", "F32", {2}, data}}), "duplicate tensor name 'a'");
  EXPECT_EQ(err({{"a", "F32", {3}, data}}),
            "tensor 'a' of dtype F32 and shape [3] needs 12 bytes but has 8");
  EXPECT_EQ(err({{"a", "Q8", {3}, data}}), "tensor 'a': unknown dtype 'Q8'");
  EXPECT_EQ(err({{"__metadata__", "U8", {8}, data}}), "tensor may not be called __metadata__");
  EXPECT_EQ(err({{"a", "F4", {3}, data}}),
            "tensor 'a': shape [3] of 4-bit dtype F4 does not fill whole bytes");
  EXPECT_FALSE(fs::exists(dir_ / "x.safetensors"));
}

TEST_F(SafetensorsTest, MalformedFilesAreNamed) {
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
  ASSERT_EQ(parse_error(raw_file(ok, 16)), "");
  auto entry = [](const std::string& dtype, const std::string& shape, const std::string& offs) {
    return std::string(R"({"a":{"dtype":")") + dtype + R"(","shape":)" + shape +
           R"(,"data_offsets":)" + offs + "}}";
  };
  struct Case {
    Bytes file;
    std::string expected;  // substring
  };
  const std::vector<Case> cases = {
      {Bytes(5, 0), "file of 5 bytes is too short for the 8-byte header length"},
      {raw_file(ok, 16, 1000), "header length 1000 at byte 0 runs past the end of the file"},
      {raw_file(ok, 16, 100'000'001),
       "header length 100000001 at byte 0 exceeds the limit of 100000000: not a safetensors file"},
      {raw_file(" " + ok, 16), "header at byte 8 does not start with '{': not a safetensors file"},
      // nlohmann's parser would stop at the NUL and accept what came before it.
      {raw_file(ok + std::string("\0 junk", 6), 16), "header has a NUL byte at file byte 65"},
      {raw_file(R"({"a":{"dtype":"F32",)", 0), "header JSON is malformed at file byte"},
      {raw_file("[1,2]", 0), "header at byte 8 does not start with '{'"},
      {raw_file(R"({"a":5})", 0), "tensor 'a' is not a JSON object"},
      {raw_file(entry("Q8", "[2]", "[0,8]"), 8), "tensor 'a' has unknown dtype 'Q8'"},
      {raw_file(entry("F32", "[2,2]", "[0,12]"), 12),
       "tensor 'a' of dtype F32 and shape [2,2] needs 16 bytes but data_offsets [0,12] span 12"},
      {raw_file(entry("F32", "[2,2]", "[0,16]"), 12),
       "tensor 'a' data_offsets [0,16] run past the data buffer (12 bytes from file byte"},
      {raw_file(entry("F32", "[-2]", "[0,8]"), 8), "tensor 'a' has negative dimension -2"},
      {raw_file(entry("F32", "[1.5]", "[0,8]"), 8), "shape entry that is not an integer"},
      {raw_file(entry("F32", "[4294967296,4294967296]", "[0,8]"), 8), "overflow"},
      {raw_file(entry("F32", "[2]", "[8,0]"), 8), "tensor 'a' has data_offsets begin 8 > end 0"},
      {raw_file(entry("F32", "[2]", "[0]"), 8), "data_offsets that are not two non-negative"},
      {raw_file(entry("F32", "[2]", "[-1,7]"), 8), "data_offsets that are not two non-negative"},
      {raw_file(entry("F4", "[3]", "[0,2]"), 2), "does not fill whole bytes"},
      {raw_file(entry("F32", "[2]", "[0,8]"), 12), "data buffer has 4 bytes at file byte"},
      {raw_file(R"({"a":{"dtype":"F32","shape":[2]}})", 8), "tensor 'a' lacks 'data_offsets'"},
      {raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", 8),
       "tensor 'a' has unexpected key 'x'"},
      {raw_file(R"({"a":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", 8),
       "has a non-string dtype 7"},
      {raw_file(R"({"__metadata__":{"k":1}})", 0), "__metadata__ value of 'k' is not a string"},
      {raw_file(R"({"__metadata__":[]})", 0), "__metadata__ is not a JSON object"},
      {raw_file(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                R"("a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                2),
       "duplicate key 'a'"},
      {raw_file(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                R"("b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}})",
                6),
       "tensor 'b' at file byte"},
      {raw_file(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                R"("b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}})",
                6),
       "data buffer has a gap of 2 bytes at file byte"},
  };
  for (const auto& c : cases) {
    const std::string e = parse_error(c.file);
    EXPECT_NE(e.find(c.expected), std::string::npos) << "got: " << e << "\nwant: " << c.expected;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  }
  // The overlap message names both tensors and the offsets.
  const std::string overlap = parse_error(cases[25].file);
  EXPECT_NE(overlap.find("overlaps tensor 'a' which ends at file byte"), std::string::npos)
      << overlap;
}

TEST_F(SafetensorsTest, EveryTruncationIsAnError) {
  const Bytes data = random_bytes(40, 3);
  const std::vector<TensorToWrite> list = {{"a", "F32", {2, 3}, std::span(data).first(24)},
                                           {"b", "BF16", {8}, std::span(data).subspan(24)}};
  Bytes b;
  ASSERT_EQ(encode_safetensors(list, {{"m", "x"}}, &b), "");
  ASSERT_EQ(parse_error(b), "");
  for (size_t len = 0; len < b.size(); ++len) {
    const Bytes cut(b.begin(), b.begin() + static_cast<std::ptrdiff_t>(len));
    const std::string e = parse_error(cut);
    EXPECT_NE(e, "") << "truncated to " << len;
    EXPECT_EQ(e.find('\n'), std::string::npos);
  }
}

// Random byte flips anywhere in a good file: the parser may accept or refuse, never misbehave
// (run under the sanitizers), and an accepted file's tensors lie inside the buffer.
TEST_F(SafetensorsTest, MutatedFilesNeverMisbehave) {
  const Bytes data = random_bytes(40, 3);
  const std::vector<TensorToWrite> list = {{"a", "F32", {2, 3}, std::span(data).first(24)},
                                           {"b", "BF16", {8}, std::span(data).subspan(24)}};
  Bytes good;
  ASSERT_EQ(encode_safetensors(list, {{"m", "x"}}, &good), "");
  std::mt19937_64 rng(11);
  for (int i = 0; i < 3000; ++i) {
    Bytes b = good;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < flips; ++k) b[rng() % b.size()] = static_cast<uint8_t>(rng());
    SafetensorsFile f;
    if (parse_safetensors(b, &f).empty()) {
      for (const auto& t : f.tensors()) {
        EXPECT_GE(t.bytes.data(), b.data());
        EXPECT_LE(t.bytes.data() + t.bytes.size(), b.data() + b.size());
      }
    }
  }
}

TEST_F(SafetensorsTest, OpenNamesThePath) {
  SafetensorsFile f;
  const std::string missing = (dir_ / "missing.safetensors").string();
  EXPECT_EQ(open_safetensors(missing, &f).rfind("cannot open " + missing, 0), 0u);
  const fs::path bad = dir_ / "bad.safetensors";
  std::ofstream(bad, std::ios::binary) << "abc";
  EXPECT_EQ(open_safetensors(bad.string(), &f),
            bad.string() + ": file of 3 bytes is too short for the 8-byte header length");
  EXPECT_TRUE(f.tensors().empty());
}

// A number beyond double's range is well-formed JSON that nlohmann refuses with an out_of_range
// exception rather than a parse_error: still an error, not an escaped exception.
TEST_F(SafetensorsTest, JsonNumberOutOfRangeIsAnError) {
  const std::string json = R"({"t":{"dtype":"U8","shape":[1e999],"data_offsets":[0,1]}})";
  EXPECT_EQ(parse_error(raw_file(json, 1)), "header JSON (file bytes 8.." +
                                                std::to_string(8 + json.size()) +
                                                ") is invalid: number overflow parsing '1e999'");
}

// Quoting a bad value in an error serializes it recursively: deep nesting is refused first,
// in the header and in the MX spec JSON, rather than overflowing the stack.
TEST_F(SafetensorsTest, DeeplyNestedJsonIsRefused) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_EQ(parse_error(raw_file(R"({"t":)" + deep + "}", 0)),
            "header JSON nests deeper than 16 levels at file byte 28");
  Bytes b;
  ASSERT_EQ(encode_safetensors({}, {{"mx.w", R"({"shape":)" + deep + "}"}}, &b), "");
  SafetensorsFile f;
  ASSERT_EQ(parse_safetensors(b, &f), "");
  std::map<std::string, MxTensor> loaded;
  EXPECT_EQ(load_mx_tensors(f, &loaded), "metadata 'mx.w': MX spec nests deeper than 8 levels");
}

// Names may hold any character; an error quoting one escapes control characters.
TEST_F(SafetensorsTest, ErrorsQuotingNamesStayOneLine) {
  EXPECT_EQ(parse_error(raw_file(R"({"a\nb":{"dtype":"X","shape":[],"data_offsets":[0,0]}})", 0)),
            "header (bytes 8..): tensor 'a\\x0ab' has unknown dtype 'X'");
  Bytes b;
  ASSERT_EQ(encode_safetensors({}, {{"mx.a\nb", "{}"}}, &b), "");
  SafetensorsFile f;
  ASSERT_EQ(parse_safetensors(b, &f), "");
  std::map<std::string, MxTensor> loaded;
  EXPECT_EQ(load_mx_tensors(f, &loaded), "metadata 'mx.a\\x0ab': MX spec lacks 'shape'");
}

// ---- MX tensors ----

MxTensor random_mx(std::vector<int64_t> shape, const QuantSpec& spec, uint64_t seed) {
  std::string err;
  MxTensor t = make_mx_tensor(shape, spec, &err);
  EXPECT_EQ(err, "");
  std::mt19937_64 rng(seed);
  for (auto& b : t.elements) b = static_cast<uint8_t>(rng());
  for (auto& b : t.scales) b = static_cast<uint8_t>(rng());
  for (auto& o : t.offsets) o = static_cast<uint16_t>(rng());
  return t;
}

bool same_spec(const QuantSpec& a, const QuantSpec& b) {
  return a.format == b.format && a.block_size == b.block_size && a.axis == b.axis &&
         a.tile_rows == b.tile_rows && a.tile_cols == b.tile_cols && a.scale_rule == b.scale_rule &&
         a.rounding == b.rounding && a.seed == b.seed && a.asymmetric == b.asymmetric &&
         a.flush_subnormals == b.flush_subnormals && a.zero_block_scale == b.zero_block_scale;
}

TEST_F(SafetensorsTest, MxTensorsStoreAndLoadLosslessly) {
  std::map<std::string, MxTensor> in;
  in["fp4"] = random_mx({3, 64}, mxfp4_rowwise_spec(), 1);
  in["fp4_3d"] = random_mx({2, 3, 96}, mxfp4_rowwise_spec(), 2);
  QuantSpec e4m3;
  e4m3.format = ElementFormat::kE4M3;
  e4m3.axis = 0;
  e4m3.scale_rule = ScaleRule::kRceil;
  in["e4m3_axis0"] = random_mx({40, 5}, e4m3, 3);
  QuantSpec tiled;
  tiled.format = ElementFormat::kE3M2;
  tiled.tile_rows = 4;
  tiled.tile_cols = 8;
  tiled.rounding = Rounding::kStochastic;
  tiled.seed = 0xFFFFFFFFFFFFFFFFull;
  in["tiled_e3m2"] = random_mx({9, 17}, tiled, 4);
  QuantSpec asym;
  asym.format = ElementFormat::kInt8;
  asym.asymmetric = true;
  asym.block_size = 16;
  asym.flush_subnormals = true;
  asym.zero_block_scale = 1;
  in["asym_int8"] = random_mx({5, 33}, asym, 5);
  QuantSpec fp4_asym = mxfp4_rowwise_spec();
  fp4_asym.asymmetric = true;
  in["fp4_asym"] = random_mx({2, 32}, fp4_asym, 6);

  std::vector<TensorToWrite> list;
  std::map<std::string, std::string> meta = {{"format", "pt"}};
  for (const auto& [name, t] : in) ASSERT_EQ(add_mx_tensor(name, t, &list, &meta), "");
  EXPECT_NE(add_mx_tensor("fp4", in["fp4"], &list, &meta), "");  // already there
  const fs::path path = dir_ / "mx.safetensors";
  ASSERT_EQ(write_safetensors(path.string(), list, meta), "");

  SafetensorsFile f;
  ASSERT_EQ(open_safetensors(path.string(), &f), "");
  EXPECT_EQ(f.metadata().at("mx.fp4"),
            R"({"shape":[3,64],"format":"mxfp4_e2m1","block":32,"axis":-1,"tile":[0,0],)"
            R"("scale":"floor","round":"nearest-even","seed":0,"asym":false,"flush":false,)"
            R"("zero_scale":0})");
  // gpt-oss layout for row-wise MXFP4: the same bytes and shapes as to_gpt_oss.
  for (const char* name : {"fp4", "fp4_3d"}) {
    std::string err;
    const GptOssMxfp4 g = to_gpt_oss(in[name], &err);
    ASSERT_EQ(err, "");
    const SafetensorsTensor* blocks = f.find(std::string(name) + ".blocks");
    const SafetensorsTensor* scales = f.find(std::string(name) + ".scales");
    ASSERT_NE(blocks, nullptr);
    ASSERT_NE(scales, nullptr);
    EXPECT_EQ(blocks->dtype, "U8");
    EXPECT_EQ(blocks->shape, g.blocks_shape);
    EXPECT_EQ(scales->shape, g.scales_shape);
    EXPECT_TRUE(
        std::equal(blocks->bytes.begin(), blocks->bytes.end(), g.blocks.begin(), g.blocks.end()));
  }
  EXPECT_EQ(f.find("fp4_3d.blocks")->shape, (std::vector<int64_t>{2, 3, 3, 16}));
  EXPECT_EQ(f.find("e4m3_axis0.blocks")->shape.size(), 1u);
  EXPECT_EQ(f.find("asym_int8.offsets")->dtype, "U16");
  EXPECT_EQ(f.find("fp4.offsets"), nullptr);

  std::map<std::string, MxTensor> out;
  ASSERT_EQ(load_mx_tensors(f, &out), "");
  ASSERT_EQ(out.size(), in.size());
  for (const auto& [name, t] : in) {
    const MxTensor& u = out.at(name);
    EXPECT_EQ(u.shape, t.shape) << name;
    EXPECT_TRUE(same_spec(u.spec, t.spec)) << name << ": " << describe(u.spec);
    EXPECT_EQ(u.elements, t.elements) << name;
    EXPECT_EQ(u.scales, t.scales) << name;
    EXPECT_EQ(u.offsets, t.offsets) << name;
  }
}

TEST_F(SafetensorsTest, BrokenMxEntriesAreNamed) {
  const MxTensor t = random_mx({2, 64}, mxfp4_rowwise_spec(), 7);
  auto load = [&](auto edit) {
    std::vector<TensorToWrite> list;
    std::map<std::string, std::string> meta;
    EXPECT_EQ(add_mx_tensor("w", t, &list, &meta), "");
    edit(list, meta);
    Bytes b;
    EXPECT_EQ(encode_safetensors(list, meta, &b), "");
    SafetensorsFile f;
    EXPECT_EQ(parse_safetensors(b, &f), "");
    std::map<std::string, MxTensor> out;
    return load_mx_tensors(f, &out);
  };
  using L = std::vector<TensorToWrite>;
  using M = std::map<std::string, std::string>;
  EXPECT_EQ(load([](L&, M&) {}), "");
  EXPECT_EQ(load([](L& l, M&) { l.pop_back(); }), "MX tensor 'w' lacks tensor 'w.scales'");
  EXPECT_EQ(load([](L& l, M&) { l[1].dtype = "I8"; }),
            "tensor 'w.scales' has dtype I8, expected U8");
  EXPECT_EQ(load([](L& l, M&) { l[1].shape = {4}; }),
            "tensor 'w.scales' has shape [4], expected [2,2]");
  EXPECT_EQ(load([](L& l, M&) {
              l[0].shape = {2, 4, 8};
            }),
            "tensor 'w.blocks' has shape [2,4,8], expected [2,2,16]");
  EXPECT_EQ(load([](L&, M& m) { m["mx.w"] = "{"; }), "metadata 'mx.w': MX spec is not valid JSON");
  EXPECT_EQ(
      load([](L&, M& m) { m["mx.w"].replace(m["mx.w"].find("mxfp4_e2m1"), 10, "mxfp5_e2m1"); }),
      "metadata 'mx.w': MX spec has unknown format 'mxfp5_e2m1'");
  EXPECT_EQ(load([](L&, M& m) { m["mx.w"].replace(m["mx.w"].find("64"), 2, "96"); }),
            "tensor 'w.blocks' has 64 bytes, expected 96 for shape [2,96] and " +
                describe(mxfp4_rowwise_spec()));
  EXPECT_EQ(load([](L&, M& m) { m["mx.v"] = m["mx.w"]; }), "MX tensor 'v' lacks tensor 'v.blocks'");
  EXPECT_EQ(load([](L& l, M&) {
              l.push_back({"w", "U8", {1}, l[1].bytes.first(1)});
            }),
            "the file has both a plain tensor 'w' and an MX tensor 'w'");
}

}  // namespace
}  // namespace mx::io
