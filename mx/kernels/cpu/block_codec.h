// The per-instruction-set block loops behind mx/kernels/cpu/quantize.h. Internal.
#pragma once

#include <cstdint>

#include "mx/core/block_grid.h"
#include "mx/core/dtype.h"
#include "mx/core/quant_spec.h"

namespace mx::cpu::detail {

struct QuantizeJob {
  const void* input;
  DType dtype;
  BlockGrid grid;
  QuantSpec spec;
  uint8_t* elements;
  uint8_t* scales;
  uint16_t* offsets;  // asymmetric only
  // Fake-quantize: when set, decoded values go here (flat, original shape) instead of codes.
  void* fake_out = nullptr;
  DType fake_dtype = DType::kF32;
};

struct DequantizeJob {
  const uint8_t* elements;
  const uint8_t* scales;
  const uint16_t* offsets;
  BlockGrid grid;
  QuantSpec spec;
  DType out_dtype;
  void* out;
};

struct BlockKernels {
  void (*quantize)(const QuantizeJob& job, int64_t first_block, int64_t end_block);
  void (*dequantize)(const DequantizeJob& job, int64_t first_block, int64_t end_block);
};

BlockKernels kernels_scalar();
BlockKernels kernels_avx2();
BlockKernels kernels_avx512();

}  // namespace mx::cpu::detail
