// `mx dequantize`: MX tensors back to plain floats. Reads
//   - MX safetensors (mx/io/mx_safetensors.h): every MX tensor NAME (its NAME.blocks,
//     NAME.scales, NAME.offsets and "mx.NAME" metadata) becomes one tensor NAME;
//   - GGUF: MXFP4 tensors are decoded; F32, F16, BF16, integer and F64 tensors are copied;
//     other ggml types (the legacy and K quants) are an error.
// and writes plain safetensors. Decoded tensors are float32, bfloat16 or float16 (float32 is
// exact for every MX value; the 16-bit types round to nearest even); every other tensor keeps
// its dtype and bytes. Metadata is carried over, less the "mx.*" keys of decoded tensors (GGUF:
// its string KVs). Decoding gives exactly the values cpu::fake_quantize gives for the spec.
#pragma once

#include <string>

#include "mx/convert/convert_report.h"
#include "mx/core/dtype.h"
#include "mx/kernels/cpu/quantize.h"

namespace mx::convert {

struct DequantizeOptions {
  DType dtype = DType::kF32;
  cpu::Options cpu;
};

std::string dequantize_checkpoint(const std::string& input_path, const std::string& output_path,
                                  const DequantizeOptions& options,
                                  const ProgressCallback& progress, ConvertReport* report);

}  // namespace mx::convert
