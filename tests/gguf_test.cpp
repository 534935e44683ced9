// The GGUF v3 reader and writer against ggml's docs/gguf.md: every KV type (nested arrays
// included) and tensor type F32/F16/BF16/MXFP4 round trip, data aligned to general.alignment,
// MXFP4 through layout_ggml losslessly, and malformed files named with their byte offsets.
#include <gtest/gtest.h>
#include <malloc.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "mx/core/layout_gpt_oss.h"
#include "mx/core/mx_tensor.h"
#include "mx/io/gguf.h"

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

GgufValue val(GgufValue::Variant v) {
  return GgufValue{std::move(v)};
}

// A hand-built file, for malformed inputs.
struct Builder {
  Bytes b;
  template <class T>
  Builder& put(T x) {
    const auto* p = reinterpret_cast<const uint8_t*>(&x);
    b.insert(b.end(), p, p + sizeof x);
    return *this;
  }
  Builder& str(const std::string& s) {
    put<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Builder& head(uint64_t tensors, uint64_t kvs, uint32_t version = 3) {
    b.insert(b.end(), {'G', 'G', 'U', 'F'});
    return put<uint32_t>(version).put<uint64_t>(tensors).put<uint64_t>(kvs);
  }
  // A tensor info.
  Builder& info(const std::string& name, std::vector<uint64_t> dims, uint32_t type,
                uint64_t offset) {
    str(name).put<uint32_t>(static_cast<uint32_t>(dims.size()));
    for (auto d : dims) put<uint64_t>(d);
    return put<uint32_t>(type).put<uint64_t>(offset);
  }
  Builder& pad(size_t to) {
    while (b.size() % to != 0) b.push_back(0);
    return *this;
  }
  Builder& zeros(size_t n) {
    b.insert(b.end(), n, 0);
    return *this;
  }
};

std::string parse_error(const Bytes& b) {
  GgufFile f;
  return parse_gguf(b, &f);
}

class GgufTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::path(::testing::TempDir()) / "mx_gguf_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  fs::path dir_;
};

std::vector<GgufKv> all_kv_types() {
  GgufArray strings{
      GgufType::kString,
      {val(std::string("a")), val(std::string("")), val(std::string("\xc3\xa9t\xc3\xa9"))}};
  GgufArray ints{GgufType::kI32, {val(int32_t{-1}), val(int32_t{7})}};
  GgufArray nested{GgufType::kArray, {val(ints), val(GgufArray{GgufType::kF64, {}})}};
  return {
      {"general.architecture", val(std::string("llama"))},
      {"u8", val(uint8_t{200})},
      {"i8", val(int8_t{-100})},
      {"u16", val(uint16_t{60000})},
      {"i16", val(int16_t{-30000})},
      {"u32", val(uint32_t{4000000000u})},
      {"i32", val(int32_t{-2000000000})},
      {"f32", val(1.5f)},
      {"bool_t", val(true)},
      {"bool_f", val(false)},
      {"u64", val(uint64_t{0xFFFFFFFFFFFFFFFFull})},
      {"i64", val(int64_t{INT64_MIN})},
      {"f64", val(-0.1)},
      {"strings", val(strings)},
      {"nested", val(nested)},
  };
}

bool same_value(const GgufValue& a, const GgufValue& b);
bool same_array(const GgufArray& a, const GgufArray& b) {
  if (a.type() != b.type() || a.size() != b.size()) return false;
  const std::vector<GgufValue> x = a.first(a.size()), y = b.first(b.size());
  if (x.size() != a.size() || y.size() != b.size()) return false;
  for (size_t i = 0; i < x.size(); ++i) {
    if (!same_value(x[i], y[i])) return false;
  }
  return true;
}
bool same_value(const GgufValue& a, const GgufValue& b) {
  if (a.type() != b.type()) return false;
  return std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        const T& y = std::get<T>(b.v);
        if constexpr (std::is_same_v<T, GgufArray>) {
          return same_array(x, y);
        } else if constexpr (std::is_floating_point_v<T>) {
          return std::memcmp(&x, &y, sizeof x) == 0;
        } else {
          return x == y;
        }
      },
      a.v);
}

MxTensor random_mxfp4(std::vector<int64_t> shape, uint64_t seed) {
  std::string err;
  MxTensor t = make_mx_tensor(shape, mxfp4_rowwise_spec(), &err);
  EXPECT_EQ(err, "");
  const Bytes r = random_bytes(t.elements.size() + t.scales.size(), seed);
  std::copy(r.begin(), r.begin() + static_cast<long>(t.elements.size()), t.elements.begin());
  std::copy(r.begin() + static_cast<long>(t.elements.size()), r.end(), t.scales.begin());
  return t;
}

TEST_F(GgufTest, EveryKvAndTensorTypeRoundTrips) {
  for (const uint32_t alignment : {0u, 64u, 1u}) {
    std::vector<GgufKv> kvs = all_kv_types();
    if (alignment != 0) kvs.push_back({"general.alignment", val(alignment)});
    const Bytes f32 = random_bytes(3 * 5 * 4, 1), f16 = random_bytes(7 * 2, 2),
                bf16 = random_bytes(2 * 3 * 2, 3);
    const MxTensor mx = random_mxfp4({3, 64}, 4);
    std::vector<uint8_t> mx_storage;
    GgufTensorToWrite mx_tensor;
    ASSERT_EQ(gguf_mxfp4_tensor("blk.0.ffn_up.weight", mx, &mx_storage, &mx_tensor), "");
    EXPECT_EQ(mx_tensor.dims, (std::vector<int64_t>{64, 3}));
    const std::vector<GgufTensorToWrite> tensors = {
        {"f32", {5, 3}, kGgmlF32, f32},
        {"f16", {7}, kGgmlF16, f16},
        {"bf16", {3, 1, 2}, kGgmlBF16, bf16},
        mx_tensor,
    };
    const fs::path path = dir_ / "t.gguf";
    ASSERT_EQ(write_gguf(path.string(), kvs, tensors), "");
    GgufFile f;
    ASSERT_EQ(open_gguf(path.string(), &f), "");
    const uint32_t a = alignment == 0 ? 32 : alignment;
    EXPECT_EQ(f.version(), 3u);
    EXPECT_EQ(f.alignment(), a);
    EXPECT_EQ(f.data_offset() % a, 0u);
    ASSERT_EQ(f.kvs().size(), kvs.size());
    for (size_t i = 0; i < kvs.size(); ++i) {
      EXPECT_EQ(f.kvs()[i].key, kvs[i].key);
      EXPECT_TRUE(same_value(f.kvs()[i].value, kvs[i].value)) << kvs[i].key;
    }
    ASSERT_EQ(f.tensors().size(), tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
      const GgufTensor& t = f.tensors()[i];
      EXPECT_EQ(t.name, tensors[i].name);
      EXPECT_EQ(t.dims, tensors[i].dims);
      EXPECT_EQ(t.type, tensors[i].type);
      EXPECT_EQ(t.offset % a, 0u);
      EXPECT_TRUE(std::equal(t.bytes.begin(), t.bytes.end(), tensors[i].bytes.begin(),
                             tensors[i].bytes.end()))
          << t.name;
    }
    EXPECT_EQ(f.find_tensor("bf16")->shape(), (std::vector<int64_t>{2, 1, 3}));
    EXPECT_EQ(std::get<std::string>(f.find_kv("general.architecture")->v), "llama");
    EXPECT_EQ(f.find_kv("missing"), nullptr);
    EXPECT_EQ(fs::file_size(path) % a, 0u);

    MxTensor back;
    ASSERT_EQ(load_gguf_mxfp4(*f.find_tensor("blk.0.ffn_up.weight"), &back), "");
    EXPECT_EQ(back.shape, mx.shape);
    EXPECT_EQ(back.elements, mx.elements);
    EXPECT_EQ(back.scales, mx.scales);
    EXPECT_EQ(load_gguf_mxfp4(*f.find_tensor("f32"), &back),
              "tensor 'f32' has ggml type 0, not MXFP4 (39)");

    Bytes mem;
    ASSERT_EQ(encode_gguf(kvs, tensors, &mem), "");
    GgufFile g;
    EXPECT_EQ(parse_gguf(mem, &g), "");
    EXPECT_EQ(g.tensors().size(), tensors.size());
  }
}

TEST_F(GgufTest, HeaderBytesFollowTheSpec) {
  const Bytes data = random_bytes(8, 1);
  const std::vector<GgufKv> kvs = {{"k", val(uint32_t{5})}};
  const std::vector<GgufTensorToWrite> tensors = {{"t", {2}, kGgmlF32, data}};
  Bytes got;
  ASSERT_EQ(encode_gguf(kvs, tensors, &got), "");
  Builder want;
  want.head(1, 1).str("k").put<uint32_t>(4).put<uint32_t>(5).info("t", {2}, 0, 0).pad(32);
  want.b.insert(want.b.end(), data.begin(), data.end());
  want.pad(32);
  EXPECT_EQ(got, want.b);
}

TEST_F(GgufTest, WriterRefusesBadInput) {
  const Bytes data = random_bytes(8, 1);
  Bytes out;
  auto err = [&](std::vector<GgufKv> kvs, std::vector<GgufTensorToWrite> t) {
    return encode_gguf(kvs, t, &out);
  };
  EXPECT_EQ(err({}, {{"t", {3}, kGgmlF32, data}}), "tensor 't' needs 12 bytes but has 8");
  EXPECT_EQ(err({}, {{"t", {2}, 99, data}}), "tensor 't': unsupported ggml type 99");
  EXPECT_EQ(err({}, {{"t", {2}, 0, data}, {"t", {2}, 0, data}}), "duplicate tensor name 't'");
  EXPECT_EQ(err({{"general.alignment", val(uint32_t{24})}}, {}),
            "general.alignment is not a u32 power of two");
  EXPECT_EQ(err({{"k", val(GgufArray{GgufType::kU8, {val(int8_t{1})}})}}, {}),
            "key 'k': array of type 0 holds a value of type 1");
  // What ggml's reader (llama.cpp's) refuses is not written either.
  EXPECT_EQ(err({{"", val(uint32_t{1})}}, {}), "a metadata key is empty");
  // The message is built by append: GCC 12 gives a false -Warray-bounds for operator+ on the
  // temporary string here once the tests compile with their precompiled header.
  const std::string name64(64, 'n');
  EXPECT_EQ(err({}, {{name64, {2}, kGgmlF32, data}}),
            std::string("tensor name '").append(name64).append("' must have 1 to 63 bytes"));
  EXPECT_EQ(err({}, {{std::string(63, 'n'), {2}, kGgmlF32, data}}), "");
  std::vector<uint8_t> storage;
  GgufTensorToWrite t;
  QuantSpec e4m3;
  std::string e;
  const MxTensor not_fp4 = make_mx_tensor(std::vector<int64_t>{2, 32}, e4m3, &e);
  EXPECT_NE(gguf_mxfp4_tensor("x", not_fp4, &storage, &t), "");
}

TEST_F(GgufTest, MalformedFilesAreNamed) {
  struct Case {
    Bytes file;
    std::string expected;
  };
  const Bytes f32 = random_bytes(8, 1);
  auto one_tensor = [&](uint32_t type, uint64_t offset, uint64_t data) {
    Builder b;
    b.head(1, 0).info("t", {2}, type, offset).pad(32).zeros(data);
    return b.b;
  };
  Builder deep;
  deep.head(0, 1).str("k").put<uint32_t>(9);
  for (int i = 0; i < 9; ++i) deep.put<uint32_t>(9).put<uint64_t>(1);
  deep.put<uint32_t>(0).put<uint64_t>(0);
  const std::vector<Case> cases = {
      {Bytes{'G', 'G', 'U'}, "bad magic at byte 0: not a GGUF file"},
      {Bytes{'G', 'G', 'M', 'L', 3, 0, 0, 0}, "bad magic at byte 0"},
      {Builder().head(0, 0, 1).b, "unsupported GGUF version 1 at byte 4 (supported: 2, 3)"},
      {Builder().head(0, 0, 4).b, "unsupported GGUF version 4 at byte 4"},
      {Builder().head(0, 0, 0x03000000).b, "a big-endian GGUF, not supported"},
      {Builder().head(0, 1ull << 60).b, "kv count 1152921504606846976 at byte 16 is absurd"},
      {Builder().head(1ull << 40, 0).b, "tensor count 1099511627776 at byte 8 is absurd"},
      {Builder().head(0, 1).put<uint64_t>(1ull << 50).zeros(8).b,
       "kv key at byte 24 has length 1125899906842624 but only 8 bytes are left"},
      {Builder().head(0, 1).str("k").put<uint32_t>(13).zeros(8).b,
       "key 'k' has unknown value type 13 at byte 33"},
      {Builder().head(0, 1).str("k").put<uint32_t>(7).put<uint8_t>(2).b,
       "key 'k': bool value at byte 37 is 2, not 0 or 1"},
      {Builder().head(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(4).put<uint64_t>(1000).b,
       "key 'k': array count 1000 at byte 41 is absurd: only 0 bytes are left"},
      {Builder().head(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(20).put<uint64_t>(0).b,
       "key 'k': array at byte 37 has unknown element type 20"},
      {deep.b, "nests deeper than 8"},
      {Builder()
           .head(0, 2)
           .str("k")
           .put<uint32_t>(0)
           .put<uint8_t>(1)
           .str("k")
           .put<uint32_t>(0)
           .put<uint8_t>(1)
           .b,
       "duplicate key 'k' at byte 38"},
      {Builder().head(0, 1).str("general.alignment").put<uint32_t>(4).put<uint32_t>(3).b,
       "general.alignment at byte 24 is not a u32 power of two"},
      {Builder().head(0, 1).str("general.alignment").put<uint32_t>(10).put<uint64_t>(32).b,
       "general.alignment at byte 24 is not a u32 power of two"},
      {Builder().head(1, 0).str("t").put<uint32_t>(5).zeros(60).b,
       "tensor 't' has 5 dimensions at byte 33 (1 to 4 allowed)"},
      {Builder().head(1, 0).info("t", {0}, 0, 0).pad(32).b,
       "tensor 't' has dimension 0 at byte 37"},
      {one_tensor(99, 0, 32),
       "tensor 't' (info at byte 24, type at byte 45): unsupported ggml type 99"},
      {one_tensor(kGgmlMxfp4, 0, 32),
       "first dimension is not a multiple of the type's block of 32"},
      {one_tensor(0, 16, 64),
       "tensor 't' offset 16 at byte 49 is not a multiple of the alignment 32"},
      {one_tensor(0, 0, 4),
       "tensor 't' data [0,8) runs past the data section (4 bytes from file byte 64)"},
      {one_tensor(0, 64, 32), "tensor 't' data [64,72) runs past the data section"},
      {Builder().head(2, 0).info("a", {16}, 0, 0).info("b", {2}, 0, 32).pad(32).zeros(64).b,
       "tensor 'b' data at file byte 128 overlaps tensor 'a' which ends at file byte 160"},
      {Builder().head(2, 0).info("a", {2}, 0, 0).info("a", {2}, 0, 32).pad(32).zeros(64).b,
       "duplicate tensor name 'a' at byte 57"},
      {Builder().head(1, 0).info("t", {2}, 0, 0).b, "ends before the data section at byte 64"},
  };
  for (const auto& c : cases) {
    const std::string e = parse_error(c.file);
    EXPECT_NE(e.find(c.expected), std::string::npos) << "got: " << e << "\nwant: " << c.expected;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  }
}

TEST_F(GgufTest, EveryTruncationIsAnError) {
  const Bytes data = random_bytes(12, 1);
  const std::vector<GgufKv> kvs = all_kv_types();
  const std::vector<GgufTensorToWrite> tensors = {{"t", {3}, kGgmlF32, data}};
  Bytes b;
  ASSERT_EQ(encode_gguf(kvs, tensors, &b), "");
  ASSERT_EQ(parse_error(b), "");
  // Cut anywhere up to the end of t's data (the trailing alignment padding is optional).
  for (size_t len = 0; len < b.size() - 20; ++len) {
    const Bytes cut(b.begin(), b.begin() + static_cast<long>(len));
    const std::string e = parse_error(cut);
    EXPECT_NE(e, "") << "truncated to " << len;
    EXPECT_EQ(e.find('\n'), std::string::npos);
  }
}

// Random byte flips anywhere in a good file: accepted or refused, never misbehaving (run under
// the sanitizers), and no allocation beyond what the file's size allows.
TEST_F(GgufTest, MutatedFilesNeverMisbehave) {
  const Bytes data = random_bytes(12, 1);
  const std::vector<GgufKv> kvs = all_kv_types();
  const std::vector<GgufTensorToWrite> tensors = {{"t", {3}, kGgmlF32, data}};
  Bytes good;
  ASSERT_EQ(encode_gguf(kvs, tensors, &good), "");
  std::mt19937_64 rng(12);
  for (int i = 0; i < 3000; ++i) {
    Bytes b = good;
    const int flips = 1 + static_cast<int>(rng() % 3);
    for (int k = 0; k < flips; ++k) b[rng() % b.size()] = static_cast<uint8_t>(rng());
    GgufFile f;
    if (parse_gguf(b, &f).empty()) {
      for (const auto& t : f.tensors()) {
        EXPECT_GE(t.bytes.data(), b.data());
        EXPECT_LE(t.bytes.data() + t.bytes.size(), b.data() + b.size());
      }
    }
  }
}

TEST_F(GgufTest, Version2IsReadToo) {
  Builder b;
  b.head(1, 0, 2).info("t", {2}, kGgmlF32, 0).pad(32).zeros(8);
  GgufFile f;
  ASSERT_EQ(parse_gguf(b.b, &f), "");
  EXPECT_EQ(f.version(), 2u);
  EXPECT_EQ(f.tensors().at(0).bytes.size(), 8u);
}

// An array of 1-byte items near the end of the file: its count is bounded by the items' own
// size, not by 8 bytes each.
TEST_F(GgufTest, SmallScalarArrayNearTheEndIsRead) {
  Builder b;
  b.head(0, 1).str("bytes").put<uint32_t>(9).put<uint32_t>(0).put<uint64_t>(3);
  b.put<uint8_t>(1).put<uint8_t>(2).put<uint8_t>(3).pad(32);
  GgufFile f;
  ASSERT_EQ(parse_gguf(b.b, &f), "");
  const auto* a = std::get_if<GgufArray>(&f.find_kv("bytes")->v);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->size(), 3u);
  const std::vector<GgufValue> items = a->first(10);
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(std::get<uint8_t>(items[2].v), 3);
}

// A file that is mostly one large byte array costs about its own size to hold, not 40 bytes
// per element (a 50 MB array once took 2 GB), and the array decodes element by element.
TEST_F(GgufTest, LargeArrayIsKeptAsItsEncodedBytes) {
  constexpr uint64_t kCount = 8 << 20;
  Builder b;
  b.head(0, 1).str("blob").put<uint32_t>(9).put<uint32_t>(0).put<uint64_t>(kCount);
  for (uint64_t i = 0; i < kCount; ++i) b.put<uint8_t>(uint8_t(i * 7));
  b.pad(32);
  GgufFile f;
  const size_t heap_before = ::mallinfo2().uordblks;
  ASSERT_EQ(parse_gguf(b.b, &f), "");
  const size_t heap_after = ::mallinfo2().uordblks;
  // (Sanitizer builds replace malloc, and mallinfo2 then reports nothing: the bound still holds.)
  EXPECT_LT(heap_after - std::min(heap_before, heap_after), 2 * kCount);
  const auto* a = std::get_if<GgufArray>(&f.find_kv("blob")->v);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->size(), kCount);
  uint64_t i = 0, mismatches = 0;
  EXPECT_EQ(a->for_each([&](const GgufValue& v) {
    mismatches += std::get<uint8_t>(v.v) != uint8_t(i * 7);
    ++i;
    return std::string();
  }),
            "");
  EXPECT_EQ(i, kCount);
  EXPECT_EQ(mismatches, 0u);
}

// Booleans inside arrays are checked when the file is read, not when the array is decoded.
TEST_F(GgufTest, BadBoolInsideAnArrayIsRefusedAtRead) {
  Builder b;
  b.head(0, 1).str("flags").put<uint32_t>(9).put<uint32_t>(7).put<uint64_t>(2);
  b.put<uint8_t>(1).put<uint8_t>(2).pad(32);
  EXPECT_EQ(parse_error(b.b), "key 'flags': bool value at byte 54 is 2, not 0 or 1");
}

// Keys and names may hold any byte; an error quoting one escapes control characters.
TEST_F(GgufTest, ErrorsQuotingNamesStayOneLine) {
  Builder b;
  b.head(0, 2).str("a\nb").put<uint32_t>(4).put<uint32_t>(1);
  b.str("a\nb").put<uint32_t>(4).put<uint32_t>(1);
  EXPECT_EQ(parse_error(b.b), "duplicate key 'a\\x0ab' at byte 43");
}

TEST_F(GgufTest, OpenNamesThePath) {
  GgufFile f;
  const std::string missing = (dir_ / "missing.gguf").string();
  EXPECT_EQ(open_gguf(missing, &f).rfind("cannot open " + missing, 0), 0u);
}

}  // namespace
}  // namespace mx::io
