// Fake-quantize of blocks of 32 along the last axis of a 16-bit tensor whose rows do not start
// on 16-byte boundaries (fake_quantize_unaligned_rows.cu). The launch enqueues on `stream`
// without synchronising; the caller checks the launch.
#pragma once

#include <cuda_runtime.h>

#include "mx/core/rounding.h"
#include "mx/kernels/cuda/device_common.cuh"

namespace mx::cuda {

// Contiguous runs of blocks of 32, 16-bit input, bfloat16 output at the same offset from a
// 16-byte boundary as the input, and a row length that is not a multiple of 8 (or an input
// that starts off a 16-byte boundary): where the lanes kernel would load and store 2 bytes at a
// time.
bool fake_unaligned_rows_apply(const QuantParams& P);
void launch_fake_unaligned_rows(const QuantParams& P, Rounding mode, bool integer,
                                cudaStream_t stream);

}  // namespace mx::cuda
