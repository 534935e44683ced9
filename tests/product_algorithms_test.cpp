// The product algorithms file (mx/nn/product_algorithms.h): what is written reads back the same,
// comments and blank lines aside; every malformed line is an error naming the file and the line.
#include "mx/nn/product_algorithms.h"

#include <gtest/gtest.h>

#include <string>

namespace mx::nn {
namespace {

ProductAlgorithms two_products() {
  ProductAlgorithms a;
  a.device = "NVIDIA H100 80GB HBM3";
  a.cublaslt = 130100;
  a.candidates = 16;
  const ProductShape qkv{
      true, false, 2304, 16384, 768, 768, 768, 2304, BufType::kBF16, false, ProductEpilogue::kBias};
  const ProductShape dw{
      false, true, 768, 3072, 16384, 768, 3072, 768, BufType::kF32, true, ProductEpilogue::kNone};
  a.choices[{BufType::kBF16, false, qkv}] = {3, 0.35f, 0.37f};
  a.choices[{BufType::kF32, true, dw}] = {0, 1.5f, 1.5f};
  return a;
}

const std::string kHeader =
    "mxkit product algorithms 1\ndevice NVIDIA H200\ncublaslt 130200\ncandidates 16\n";
const std::string kProduct =
    "bf16 tf32=0 a=T b=N m=2304 n=16384 k=768 lda=768 ldb=768 ldc=2304 c=bf16 accumulate=0 "
    "epilogue=gelu_aux_bias candidate=2";

std::string parse_error(const std::string& text) {
  ProductAlgorithms out;
  return parse_product_algorithms(text, "f.txt", &out);
}

TEST(ProductAlgorithmsFile, ReadsBackWhatItWrites) {
  const ProductAlgorithms a = two_products();
  ProductAlgorithms b;
  ASSERT_EQ(parse_product_algorithms(format_product_algorithms(a), "f.txt", &b), "");
  EXPECT_EQ(b.device, a.device);
  EXPECT_EQ(b.cublaslt, a.cublaslt);
  EXPECT_EQ(b.candidates, a.candidates);
  ASSERT_EQ(b.choices.size(), a.choices.size());
  for (const auto& [key, choice] : a.choices) {
    ASSERT_TRUE(b.choices.contains(key));
    EXPECT_EQ(b.choices.at(key).candidate, choice.candidate);
  }
}

TEST(ProductAlgorithmsFile, ReadsEveryFieldOfALineInAnyOrderAndSkipsComments) {
  ProductAlgorithms a;
  const std::string text = kHeader + "# a comment\n\n" +
                           "bf16 candidate=5 epilogue=dgelu accumulate=1 c=f32 ldc=9 ldb=8 lda=7 "
                           "k=6 n=5 m=4 b=T a=N tf32=1  # 0.1 ms\n";
  ASSERT_EQ(parse_product_algorithms(text, "f.txt", &a), "");
  EXPECT_EQ(a.device, "NVIDIA H200");
  EXPECT_EQ(a.cublaslt, 130200);
  ASSERT_EQ(a.choices.size(), 1u);
  const auto& [key, choice] = *a.choices.begin();
  EXPECT_EQ(key.ab_type, BufType::kBF16);
  EXPECT_TRUE(key.tf32);
  const ProductShape want{
      false, true, 4, 5, 6, 7, 8, 9, BufType::kF32, true, ProductEpilogue::kDgelu};
  EXPECT_EQ(key.shape, want);
  EXPECT_EQ(choice.candidate, 5);
}

TEST(ProductAlgorithmsFile, NamesTheFileAndLineOfEachMistake) {
  EXPECT_EQ(parse_error(""), "f.txt: empty file");
  EXPECT_EQ(parse_error("mxkit product algorithms 2\n"),
            "f.txt:1: not a product algorithms file (expected 'mxkit product algorithms 1')");
  EXPECT_EQ(parse_error("mxkit product algorithms 1\ndevice X\n"),
            "f.txt: the 'device', 'cublaslt' and 'candidates' lines are required");
  EXPECT_EQ(parse_error("mxkit product algorithms 1\ndevice X\ncublaslt 1\n" + kProduct),
            "f.txt:4: a product before the 'candidates' line");
  EXPECT_EQ(parse_error("mxkit product algorithms 1\ncandidates -3\n"),
            "f.txt:2: candidates needs one positive integer");
  EXPECT_EQ(parse_error(kHeader + "f16" + kProduct.substr(4)),
            "f.txt:5: expected a product's operand type (bf16 or f32), got 'f16'");
  EXPECT_EQ(parse_error(kHeader + kProduct + " x=1"), "f.txt:5: unknown field 'x'");
  EXPECT_EQ(parse_error(kHeader + kProduct + " m=3"), "f.txt:5: field 'm' twice");
  EXPECT_EQ(parse_error(kHeader + kProduct + " stray"),
            "f.txt:5: expected name=value, got 'stray'");
  EXPECT_EQ(parse_error(kHeader + "bf16 tf32=0"), "f.txt:5: missing field 'a'");
  std::string bad = kProduct;
  bad.replace(bad.find("a=T"), 3, "a=X");
  EXPECT_EQ(parse_error(kHeader + bad), "f.txt:5: a must be T or N, got 'X'");
  bad = kProduct;
  bad.replace(bad.find("k=768"), 5, "k=0");
  EXPECT_EQ(parse_error(kHeader + bad), "f.txt:5: k must be an integer of at least 1, got '0'");
  bad = kProduct;
  bad.replace(bad.find("gelu_aux_bias"), 13, "relu");
  EXPECT_EQ(parse_error(kHeader + bad), "f.txt:5: unknown epilogue 'relu'");
  bad = kProduct;
  bad.replace(bad.find("candidate=2"), 11, "candidate=16");
  EXPECT_EQ(parse_error(kHeader + bad), "f.txt:5: candidate 16 is not among the first 16");
  EXPECT_EQ(parse_error(kHeader + kProduct + "\n" + kProduct), "f.txt:6: the same product twice");
}

TEST(ProductAlgorithmsFile, AMissingFileIsAnErrorNamingIt) {
  ProductAlgorithms a;
  const std::string e = read_product_algorithms("/nonexistent/algos.txt", &a);
  EXPECT_NE(e.find("/nonexistent/algos.txt"), std::string::npos) << e;
}

}  // namespace
}  // namespace mx::nn
