// The .npy reader and writer against the NumPy format description: round trips, exact header
// bytes, every malformed input named, and failed writes that leave the old file alone.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "mx/io/npy.h"

namespace mx::io {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

Bytes bytes_of(std::string_view s) {
  return Bytes(s.begin(), s.end());
}

Bytes read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void write_raw(const fs::path& p, const Bytes& b) {
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), b.size());
}

// A v1.0 file whose header is `dict` padded per the format description, followed by `data`.
Bytes npy_v1(const std::string& dict, size_t data_bytes) {
  std::string header = dict;
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  Bytes b = bytes_of(std::string_view("\x93NUMPY\x01\x00", 8));
  b.push_back(uint8_t(header.size() & 0xff));
  b.push_back(uint8_t(header.size() >> 8));
  b.insert(b.end(), header.begin(), header.end());
  for (size_t i = 0; i < data_bytes; ++i) b.push_back(uint8_t(i * 7 + 1));
  return b;
}

Bytes npy_v1(const std::string& descr, const std::string& shape, size_t data_bytes) {
  return npy_v1("{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }",
                data_bytes);
}

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::path(::testing::TempDir()) / "mx_npy_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add, ec);
    for (const auto& e : fs::recursive_directory_iterator(dir_, ec)) {
      fs::permissions(e.path(), fs::perms::owner_all, fs::perm_options::add, ec);
    }
    fs::remove_all(dir_, ec);
  }
  // Names in `d` other than the expected ones: a leftover temporary shows up here.
  static std::vector<std::string> names_in(const fs::path& d) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(d)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
  fs::path dir_;
};

// ---- Round trips ----

using NpyRoundTrip = TempDir;

TEST_F(NpyRoundTrip, EveryDtypeAndShape) {
  const std::vector<std::vector<int64_t>> shapes = {{}, {0}, {5}, {2, 3}, {2, 0, 3}, {1, 2, 3, 4}};
  for (NpyDType dtype :
       {NpyDType::kFloat32, NpyDType::kFloat16, NpyDType::kBFloat16, NpyDType::kUInt8}) {
    for (const auto& shape : shapes) {
      SCOPED_TRACE(std::string(npy_dtype_name(dtype)) + " ndim " + std::to_string(shape.size()));
      NpyArray a;
      a.dtype = dtype;
      a.shape = shape;
      a.data.resize(size_t(a.element_count() * npy_itemsize(dtype)));
      for (size_t i = 0; i < a.data.size(); ++i) a.data[i] = uint8_t(i * 37 + 11);
      const fs::path p = dir_ / "a.npy";
      ASSERT_EQ(write_npy(p.string(), a), "");
      const Bytes file = read_all(p);
      ASSERT_GE(file.size(), 64u);
      EXPECT_EQ((file.size() - a.data.size()) % 64, 0u) << "data must start at a multiple of 64";
      NpyArray b;
      ASSERT_EQ(read_npy(p.string(), &b), "");
      EXPECT_EQ(b.dtype, a.dtype);
      EXPECT_EQ(b.shape, a.shape);
      EXPECT_EQ(b.data, a.data);
      NpyArray c;
      ASSERT_EQ(decode_npy(file, &c), "");
      EXPECT_EQ(c.data, a.data);
    }
  }
  EXPECT_EQ(names_in(dir_), std::vector<std::string>{"a.npy"});
}

TEST(Npy, HeaderTooLongForVersion1UsesVersion2) {
  NpyArray a;
  a.dtype = NpyDType::kUInt8;
  a.shape.assign(30000, 1);  // "1, " x 30000 needs a header of more than 65535 bytes
  a.data = {42};
  Bytes file;
  ASSERT_EQ(encode_npy(a, &file), "");
  EXPECT_EQ(file[6], 2);
  EXPECT_EQ(file[7], 0);
  const size_t header_len = file[8] | file[9] << 8 | file[10] << 16 | size_t(file[11]) << 24;
  EXPECT_GT(header_len, 0xffffu);
  EXPECT_EQ((12 + header_len) % 64, 0u);
  EXPECT_EQ(file.size(), 12 + header_len + 1);
  NpyArray b;
  ASSERT_EQ(decode_npy(file, &b), "");
  EXPECT_EQ(b.shape, a.shape);
  EXPECT_EQ(b.data, a.data);
}

// ---- Exact bytes, from the format description ----

TEST(Npy, WritesTheDescribedBytes) {
  NpyArray a;
  a.dtype = NpyDType::kFloat32;
  a.shape = {2, 3};
  for (int i = 0; i < 24; ++i) a.data.push_back(uint8_t(i));
  Bytes file;
  ASSERT_EQ(encode_npy(a, &file), "");
  // Magic, version 1.0, header length 118 = 0x0076 little-endian: 10 + 118 = 128 = 2 x 64.
  const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  ASSERT_EQ(dict.size(), 59u);
  Bytes want = {0x93, 'N', 'U', 'M', 'P', 'Y', 0x01, 0x00, 0x76, 0x00};
  want.insert(want.end(), dict.begin(), dict.end());
  want.insert(want.end(), 58, ' ');
  want.push_back('\n');
  ASSERT_EQ(want.size(), 128u);
  want.insert(want.end(), a.data.begin(), a.data.end());
  EXPECT_EQ(file, want);
}

TEST(Npy, ShapeTuplesAndDescrsAsPythonWritesThem) {
  const auto header_of = [](NpyDType dtype, std::vector<int64_t> shape) {
    NpyArray a;
    a.dtype = dtype;
    a.shape = shape;
    a.data.resize(size_t(a.element_count() * npy_itemsize(dtype)));
    Bytes file;
    EXPECT_EQ(encode_npy(a, &file), "");
    const std::string text(file.begin() + 10, file.end() - std::ptrdiff_t(a.data.size()));
    return text.substr(0, text.find('}') + 1);
  };
  EXPECT_EQ(header_of(NpyDType::kFloat16, {}),
            "{'descr': '<f2', 'fortran_order': False, 'shape': (), }");
  EXPECT_EQ(header_of(NpyDType::kBFloat16, {5}),
            "{'descr': '<V2', 'fortran_order': False, 'shape': (5,), }");
  EXPECT_EQ(header_of(NpyDType::kUInt8, {0, 7, 1}),
            "{'descr': '|u1', 'fortran_order': False, 'shape': (0, 7, 1), }");
}

TEST(Npy, ReadsOtherValidSpellings) {
  struct Case {
    Bytes file;
    NpyDType dtype;
    std::vector<int64_t> shape;
  };
  // Version 2.0 and 3.0: a 4-byte header length.
  const auto v2 = [](int major, const std::string& dict, size_t data) {
    Bytes b = bytes_of(std::string_view("\x93NUMPY", 6));
    b.push_back(uint8_t(major));
    b.push_back(0);
    const std::string header = dict + "\n";
    for (int i = 0; i < 4; ++i) b.push_back(uint8_t(header.size() >> (8 * i)));
    b.insert(b.end(), header.begin(), header.end());
    b.insert(b.end(), data, 0x5a);
    return b;
  };
  const std::vector<Case> cases = {
      {v2(2, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 12),
       NpyDType::kFloat32,
       {3}},
      {v2(3, "{'descr': '<f2', 'fortran_order': False, 'shape': (1, 2), }", 4),
       NpyDType::kFloat16,
       {1, 2}},
      // Any key order, double quotes, no trailing comma, odd spacing, no alignment.
      {v2(2, "{ \"shape\" : ( 2 , 2 ) ,'fortran_order':False,'descr':\"bfloat16\"}", 8),
       NpyDType::kBFloat16,
       {2, 2}},
      {npy_v1("<u1", "(4,)", 4), NpyDType::kUInt8, {4}},
      {npy_v1("|u1", "(+4,)", 4), NpyDType::kUInt8, {4}},
      {npy_v1("<f4", "(4294967296, 0)", 0), NpyDType::kFloat32, {1ll << 32, 0}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE("case " + std::to_string(i));
    NpyArray a;
    ASSERT_EQ(decode_npy(cases[i].file, &a), "");
    EXPECT_EQ(a.dtype, cases[i].dtype);
    EXPECT_EQ(a.shape, cases[i].shape);
  }
}

// ---- Malformed input: each error names the problem ----

void expect_error(const Bytes& file, const std::string& part) {
  NpyArray a;
  const std::string e = decode_npy(file, &a);
  EXPECT_NE(e.find(part), std::string::npos)
      << "error '" << e << "' should contain '" << part << "'";
  EXPECT_EQ(e.find('\n'), std::string::npos) << "one line: " << e;
}

TEST(Npy, BadMagicAndPreamble) {
  expect_error({}, "not a .npy file (bad magic)");
  expect_error(bytes_of("PK\x03\x04 a zip file, say"), "not a .npy file (bad magic)");
  expect_error(bytes_of("\x93NUMPZ\x01\x00"), "not a .npy file (bad magic)");
  expect_error(bytes_of("\x93NUM"), "truncated header");
  expect_error(bytes_of(std::string_view("\x93NUMPY\x01\x00\x10", 9)), "truncated header");
  expect_error(bytes_of(std::string_view("\x93NUMPY\x04\x00\x10\x00", 10)),
               "unsupported .npy version 4.0");
  expect_error(bytes_of(std::string_view("\x93NUMPY\x01\x01\x10\x00", 10)),
               "unsupported .npy version 1.1");
  // The header length says 0x76 bytes; only a few follow.
  expect_error(bytes_of(std::string_view("\x93NUMPY\x01\x00\x76\x00{'descr'", 18)),
               "truncated header: expected 118 header bytes, found 8");
}

TEST(Npy, MalformedHeaderDict) {
  const std::string m = "malformed header dict";
  expect_error(npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", 8), m);
  expect_error(npy_v1("{'descr': '<f4', 'fortran_order': False 'shape': (2,)}", 8), m);
  expect_error(npy_v1("{'descr' '<f4'}", 8), m + ": expected ':'");
  expect_error(npy_v1("{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}", 8), m);
  expect_error(npy_v1("['descr', '<f4']", 8), m + ": the header is not a dict");
  expect_error(npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} junk", 8),
               m + ": unexpected text after the dict");
  expect_error(npy_v1("{'descr': '<f4', 'shape': (2,)}", 8), m + ": missing key 'fortran_order'");
  expect_error(npy_v1("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", 8),
               m + ": duplicate key 'descr'");
  expect_error(npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", 8),
               m + ": unexpected key 'x'");
  expect_error(npy_v1("{1: '<f4'}", 8), m + ": a key is not a string");
  expect_error(npy_v1("{'descr': 4, 'fortran_order': False, 'shape': (2,)}", 8),
               m + ": 'descr' is not a string");
  expect_error(npy_v1("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}", 8),
               m + ": 'fortran_order' is not True or False");
  expect_error(npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': 2}", 8),
               m + ": 'shape' is not a tuple");
  expect_error(npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (2)}", 8),
               m + ": 'shape' is not a tuple");
  expect_error(npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': [2]}", 8),
               m + ": 'shape' is not a tuple");
  expect_error(npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 'a')}", 8),
               m + ": 'shape' holds a non-integer");
  expect_error(npy_v1("{'descr': " + std::string(100, '(') + "1" + std::string(100, ')') + "}", 8),
               m + ": nesting too deep");
  expect_error(npy_v1("", 8), m + ": unexpected end");
}

// The header is arbitrary bytes; an error quoting it escapes control characters.
TEST(Npy, ErrorsQuotingTheHeaderStayOneLine) {
  expect_error(npy_v1("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'a\nb': 1}", 8),
               "malformed header dict: unexpected key 'a\\x0ab'");
}

TEST(Npy, UnsupportedArrays) {
  expect_error(npy_v1(">f8", "(1,)", 8), "unsupported dtype '>f8' (big-endian)");
  expect_error(npy_v1(">f4", "(1,)", 4), "unsupported dtype '>f4' (big-endian)");
  expect_error(npy_v1("<f8", "(1,)", 8), "unsupported dtype '<f8'");
  expect_error(npy_v1("<i4", "(1,)", 4), "unsupported dtype '<i4'");
  expect_error(npy_v1("|O", "(1,)", 8), "unsupported dtype '|O'");
  expect_error(npy_v1("|V2", "(1,)", 2), "unsupported dtype '|V2'");
  expect_error(npy_v1("{'descr': [('a', '<f4'), ('b', '<f4')], 'fortran_order': False, "
                      "'shape': (1,), }",
                      8),
               "unsupported dtype: structured array");
  expect_error(npy_v1("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16),
               "unsupported fortran_order True");
}

TEST(Npy, BadShapesAndSizes) {
  expect_error(npy_v1("<f4", "(-1, 3)", 0), "negative dimension -1 in shape");
  expect_error(npy_v1("<f4", "(99999999999999999999,)", 0),
               "shape dimension 99999999999999999999 is too large");
  expect_error(npy_v1("<f4", "(4294967296, 4294967296)", 0),
               "shape (4294967296, 4294967296) is too large");
  // As in NumPy, a zero dimension does not excuse the others' overflowing product.
  expect_error(npy_v1("<f4", "(4294967296, 4294967296, 0)", 0),
               "shape (4294967296, 4294967296, 0) is too large");
  expect_error(npy_v1("<f4", "(2305843009213693952,)", 0), "is too large");  // 2^61 x 4 bytes
  expect_error(npy_v1("<f4", "(2, 3)", 20), "truncated data: expected 24 bytes, found 20");
  expect_error(npy_v1("<f4", "(2, 3)", 0), "truncated data: expected 24 bytes, found 0");
  expect_error(npy_v1("<f4", "(2, 3)", 25),
               "unexpected trailing bytes: expected 24 bytes of data, found 25");
  expect_error(npy_v1("|u1", "(0,)", 1),
               "unexpected trailing bytes: expected 0 bytes of data, found 1");
}

using NpyFiles = TempDir;

TEST_F(NpyFiles, ReadErrorsNameTheFile) {
  NpyArray a;
  const std::string missing = (dir_ / "missing.npy").string();
  std::string e = read_npy(missing, &a);
  EXPECT_EQ(e, "cannot open " + missing + ": No such file or directory");
  e = read_npy(dir_.string(), &a);
  EXPECT_EQ(e.rfind("cannot read " + dir_.string(), 0), 0u) << e;
  const fs::path p = dir_ / "short.npy";
  write_raw(p, npy_v1("<f4", "(2, 3)", 20));
  EXPECT_EQ(read_npy(p.string(), &a), p.string() + ": truncated data: expected 24 bytes, found 20");
  // Large enough for several reads; the magic is checked on the first.
  write_raw(p, Bytes(1 << 20, 'x'));
  EXPECT_EQ(read_npy(p.string(), &a), p.string() + ": not a .npy file (bad magic)");
}

TEST(Npy, EncodeChecksTheArray) {
  NpyArray a;
  a.shape = {2, 3};
  a.data.resize(23);
  Bytes out;
  EXPECT_EQ(encode_npy(a, &out), "an array of float32 (2, 3) needs 24 bytes, not 23");
  a.shape = {-2, 3};
  EXPECT_EQ(encode_npy(a, &out), "shape (-2, 3) is negative or too large");
}

}  // namespace
}  // namespace mx::io
