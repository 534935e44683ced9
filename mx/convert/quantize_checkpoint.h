// `mx quantize`: a safetensors checkpoint (or a llama2.c one, read under the Llama names of
// io/llama2c.h) to MX. The output is
//   - MX safetensors (mx/io/mx_safetensors.h) for any QuantSpec: each quantized tensor NAME
//     becomes NAME.blocks, NAME.scales (and NAME.offsets) plus its "mx.NAME" metadata;
//   - GGUF when the output path ends in ".gguf": quantized tensors become ggml MXFP4 (type 39),
//     so the spec must be MXFP4 in row-wise blocks of 32. Tensors whose last dimension is not
//     a multiple of 32 cannot be MXFP4 and are kept as they are.
// Which float tensors are quantized is decided by tensor_selection.h. Kept float tensors and
// non-float tensors are written with their bytes unchanged (in GGUF as F32/F16/BF16, I8..I64,
// F64; a dtype GGUF has no type for is an error). The input's "__metadata__" is carried over
// (in GGUF as string KVs). Every tensor is checked before any is quantized, and the output is
// written atomically, so a failure leaves no partial file. The output is assembled in memory
// before it is written; the input is mapped, not read.
#pragma once

#include <string>

#include "mx/convert/convert_report.h"
#include "mx/convert/tensor_selection.h"
#include "mx/core/quant_spec.h"
#include "mx/kernels/cpu/quantize.h"

namespace mx::convert {

struct QuantizeOptions {
  QuantSpec spec;
  cpu::Options cpu;
  SelectionRules selection;
};

// Empty when GGUF can hold tensors quantized with `spec` (MXFP4: E2M1, 1-D blocks of 32 along
// axis -1, symmetric), else why not.
std::string check_gguf_spec(const QuantSpec& spec);

std::string quantize_checkpoint(const std::string& input_path, const std::string& output_path,
                                const QuantizeOptions& options, const ProgressCallback& progress,
                                ConvertReport* report);

}  // namespace mx::convert
