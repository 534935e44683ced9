// Fast CPU quantization: SIMD per block (AVX-512, AVX2 or scalar, chosen at run time) and
// threads across blocks. Computes exactly the functions of mx/core/quantize_ref.h: tests
// compare every byte.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "mx/core/dtype.h"
#include "mx/core/mx_tensor.h"
#include "mx/core/quant_spec.h"
#include "mx/kernels/cpu/simd_target.h"

namespace mx::cpu {

struct Options {
  int threads = 0;                   // 0: all hardware threads
  std::optional<SimdTarget> target;  // default: best_target(); an unsupported one is an error
};

// Quantizes a row-major tensor of `dtype` (at any address: data not aligned to its type is
// copied first). Returns an empty string on success, else a one-line reason (and `out` is left
// unspecified).
std::string quantize(const void* data, DType dtype, std::span<const int64_t> shape,
                     const QuantSpec& spec, MxTensor* out, const Options& options = {});

// Decodes to `out_dtype` (float32 or bfloat16; bfloat16 rounds to nearest even) in the
// original shape. `out` holds element_count(t.shape) values.
std::string dequantize(const MxTensor& t, DType out_dtype, void* out, const Options& options = {});

// Decodes rows [first_row, first_row + rows) of a 2-D tensor blocked along its last axis (not
// tiled), into `out` (rows x columns values): a lookup into a table kept as MX blocks, such as
// a language model's token embedding. Needs blocks of whole bytes. Same values as dequantize.
std::string dequantize_rows(const MxTensor& t, int64_t first_row, int64_t rows, DType out_dtype,
                            void* out, const Options& options = {});

// quantize then dequantize, without keeping the MxTensor.
std::string fake_quantize(const void* data, DType dtype, std::span<const int64_t> shape,
                          const QuantSpec& spec, DType out_dtype, void* out,
                          const Options& options = {});

}  // namespace mx::cpu
