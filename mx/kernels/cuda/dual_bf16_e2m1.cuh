// Dual quantize of bfloat16 to MXFP4 nearest-even on packed bfloat16 pairs (dual_bf16_e2m1.cu).
#pragma once

#include <cuda_runtime.h>

#include "mx/core/dtype.h"
#include "mx/core/quant_spec.h"
#include "mx/kernels/cuda/device_common.cuh"

namespace mx::cuda {

// Whether the packed kernel handles this call: bfloat16 in, E2M1, nearest-even, no asymmetric
// offset or subnormal flushing, M a multiple of 32, K a multiple of 256, 16-byte aligned buffers.
bool dual_bf16_e2m1_applies(const DualParams& P, const QuantSpec& spec, DType dtype);

// Launches it on `stream` (no synchronisation; the caller checks the launch).
void launch_dual_bf16_e2m1(const DualParams& P, cudaStream_t stream);

}  // namespace mx::cuda
