// Which of cuBLASLt's candidate algorithms each matrix product of the CUDA backend takes, as a
// file that runs share. The backend otherwise takes the heuristic's first candidate, which is
// not always the fastest (docs/PERFORMANCE.md, "cuBLASLt's other candidates"). Choosing the
// fastest by timing inside every run would make a run's bits depend on the timing's noise: the
// candidates add in different orders. So the choice is timed once (`mx bench train
// --tune-products FILE`), written down, and every run given the file (`--product-algorithms
// FILE`) takes the same algorithms, and repeats and resumes bit for bit.
//
// The candidates are numbered by their place in the heuristic's list, which depends on the GPU
// and on cuBLASLt's version: the file names both, and a backend on another GPU or version
// refuses it. The format is text, one product a line:
//
//   mxkit product algorithms 1
//   device NVIDIA H100 80GB HBM3
//   cublaslt 130100
//   candidates 16
//   bf16 tf32=0 a=T b=N m=2304 n=16384 k=768 lda=768 ldb=768 ldc=2304 c=bf16 accumulate=0
//        epilogue=bias candidate=3  # 0.3511 ms; the first candidate 0.3720 ms
//
// (each product on one line; a '#' starts a comment). A time of 0 ms says that the candidates
// could not be timed (no memory for the scratch outputs) and the first was kept.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "mx/nn/buf.h"

namespace mx::nn {

// What a product does to its float32 result before the one rounding to C's type. The GELU
// forms are GPT-2's tanh approximation; `aux` is a matrix of C's shape, type and leading
// dimension: the GELU's input, written by the forward forms and read by kDgelu.
enum class ProductEpilogue : uint8_t {
  kNone,
  kBias,         // + bias[m] on every column
  kGeluAux,      // aux = result, C = gelu(result)
  kGeluAuxBias,  // aux = result + bias, C = gelu(aux)
  kDgelu,        // C = gelu'(aux) * result
};

// Column-major C[m,n] = op(A) op(B) + beta C, then the epilogue; A and B with leading
// dimensions lda and ldb, C with ldc; `accumulate` where beta is not 0.
struct ProductShape {
  bool trans_a, trans_b;
  int64_t m, n, k, lda, ldb, ldc;
  BufType c_type;
  bool accumulate;
  ProductEpilogue epilogue;
  auto operator<=>(const ProductShape&) const = default;
};

struct ProductAlgorithms {
  // A product as the backend issues it: its operands' type (bf16 or f32), whether float32
  // operands multiply as TF32, and its shape.
  struct Key {
    BufType ab_type;
    bool tf32;
    ProductShape shape;
    auto operator<=>(const Key&) const = default;
  };
  struct Choice {
    int candidate = 0;  // the place in the heuristic's list of `candidates`
    // The times that chose it (written as a comment, for people; not read back).
    float ms = 0, first_ms = 0;
  };

  std::string device;    // the GPU's name, as CUDA gives it
  int64_t cublaslt = 0;  // cublasLtGetVersion()
  int candidates = 0;    // how many candidates the heuristic was asked for
  std::map<Key, Choice> choices;
};

// The file's text, and the file read back; `name` (the file's path) prefixes each error, with
// the line's number: "algos.txt:7: unknown field 'x'".
std::string format_product_algorithms(const ProductAlgorithms& algorithms);
std::string parse_product_algorithms(std::string_view text, const std::string& name,
                                     ProductAlgorithms* out);

std::string read_product_algorithms(const std::string& path, ProductAlgorithms* out);
// Written whole or not at all (io/atomic_file.h).
std::string write_product_algorithms(const std::string& path, const ProductAlgorithms& algorithms);

}  // namespace mx::nn
