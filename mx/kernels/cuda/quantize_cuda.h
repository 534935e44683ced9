// CUDA quantization: the functions of mx/core/quantize_ref.h on device buffers, bit for bit.
//
// All pointers are device pointers; buffers are sized as mx::storage_sizes says (element bytes,
// one scale byte per block, one bfloat16 offset per block for asymmetric specs, else offsets may
// be null). Work is enqueued on `stream`: nothing synchronises, nothing is allocated, and a
// non-empty returned string is a one-line reason (then nothing, or only part, was written).
//
// Supported: every element format, scale rule and rounding mode (stochastic included),
// asymmetric, flush_subnormals, zero_block_scale; 1-D blocks of any size along any axis and 2-D
// tiles, including blocks whose packed codes end inside a byte (e.g. 3 values of E2M1). Inputs
// float32, bfloat16 or float16; outputs float32 or bfloat16.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <span>
#include <string>

#include "mx/core/dtype.h"
#include "mx/core/quant_spec.h"

namespace mx::cuda {

// True when a CUDA device can be used; otherwise `why` (if given) says why not.
bool cuda_device_available(std::string* why);

std::string quantize_cuda(const void* d_in, DType dtype, std::span<const int64_t> shape,
                          const QuantSpec& spec, uint8_t* d_elements, uint8_t* d_scales,
                          uint16_t* d_offsets, cudaStream_t stream);

std::string dequantize_cuda(const uint8_t* d_elements, const uint8_t* d_scales,
                            const uint16_t* d_offsets, std::span<const int64_t> shape,
                            const QuantSpec& spec, DType out_dtype, void* d_out,
                            cudaStream_t stream);

// quantize then dequantize into `d_out` (float32 or bfloat16), without storing codes.
std::string fake_quantize_cuda(const void* d_in, DType dtype, std::span<const int64_t> shape,
                               const QuantSpec& spec, DType out_dtype, void* d_out,
                               cudaStream_t stream);

// One float32 matrix of a batch of column casts (fake_quantize_columns_batch_cuda), in device
// memory: [rows, cols] values at `in`, their bfloat16 casts to `out`.
struct ColumnCastMatrix {
  const float* in = nullptr;
  uint16_t* out = nullptr;
  int64_t rows = 0, cols = 0;
  int64_t first_block = 0;  // column blocks of the matrices before it (fill_first_blocks)
};
// Numbers each matrix's column blocks after those of the matrices before it; returns the count
// of all of them.
int64_t fill_first_blocks(std::span<ColumnCastMatrix> matrices);
// Fake-quantizes each matrix of `d_matrices` (device memory, `count` entries, first_block
// filled) down its columns to bfloat16 in one launch, each bit for bit as fake_quantize_cuda with
// `spec` along axis 0 would: the weights of a model, whose many small casts would otherwise each
// cost a launch. Blocks of 32, untiled, and a rounding that draws nothing (a stochastic draw
// depends on the tensor it is made for).
std::string fake_quantize_columns_batch_cuda(const ColumnCastMatrix* d_matrices, int count,
                                             int64_t total_blocks, const QuantSpec& spec,
                                             cudaStream_t stream);

// The two casts of a 2-D [rows, cols] matrix that feeds two products, fake-quantized to
// bfloat16: `along_rows` (blocks along each row; its axis is taken as 1) into `d_rows` and
// `down_columns` (blocks down each column; its axis is taken as 0) into `d_cols`, each equal to
// fake_quantize_cuda with that spec. A bfloat16 input cast with blocks of 32, one rounding mode
// and float or integer elements on both sides is read once (one kernel); other arguments take
// the two single casts.
//
// real_cols (0 < real_cols <= cols; -1: cols) casts rows padded with zeros: the first
// real_cols columns are cast as the [rows, real_cols] matrix they form would be (stochastic
// draws by its flat indices) and the padding stays zero (NaN in a row whose last block holds a
// NaN). Padded rows take the one-read kernel only, with symmetric casts; other arguments are
// refused.
// With d_column_sums (one read only, all columns real), also each 32-row tile's column sums of
// the input, [ceil(rows / 32), cols] floats: eight runs of four rows, each summed from zero in
// float32, added in order from zero (rows past the matrix count zero).
std::string fake_quantize_dual_cuda(const void* d_in, DType dtype, std::span<const int64_t> shape,
                                    const QuantSpec& along_rows, const QuantSpec& down_columns,
                                    void* d_rows, void* d_cols, cudaStream_t stream,
                                    int64_t real_cols = -1, float* d_column_sums = nullptr);
// Whether fake_quantize_dual_cuda reads the input once (one kernel) for these arguments, in
// *once; a reason where it would refuse them. Looks at no device.
std::string fake_quantize_dual_reads_once(DType dtype, std::span<const int64_t> shape,
                                          const QuantSpec& along_rows,
                                          const QuantSpec& down_columns, bool* once,
                                          int64_t real_cols = -1);

// Device buffers of one quantized tensor.
struct MxDeviceBuffers {
  uint8_t* elements = nullptr;
  uint8_t* scales = nullptr;
  uint16_t* offsets = nullptr;  // asymmetric only
};

// The kernel family that quantize_cuda (fake = false, d_out = d_elements) or fake_quantize_cuda
// (fake = true, d_out and fake_dtype its output) launches for these arguments: the choice
// depends on the shape, the spec, the dtypes and the buffers' 16-byte alignment. Every family
// gives the same bytes; tests use this to know which family an input reaches. Returns the
// reason the call itself would give for arguments it refuses. Needs no device.
enum class QuantizeKernel {
  kVec,                // 32 values per thread, blocks tiling the tensor in whole runs
  kVecBf16Stochastic,  // the same for bfloat16 to 4-bit codes, stochastic rounding
  kColumnTiles,        // fake-quantize of 16-bit input down columns, through shared memory
  kColumns,            // fake-quantize down columns, one thread per block
  kUnalignedRows,      // fake-quantize of 16-bit rows that start off 16-byte boundaries
  kLanes,              // contiguous blocks of 8 * G values, G threads per block
  kGeneral,            // any grid: one thread per block
};
const char* quantize_kernel_name(QuantizeKernel kernel);
std::string quantize_kernel_for(const void* d_in, DType dtype, std::span<const int64_t> shape,
                                const QuantSpec& spec, const void* d_out, DType fake_dtype,
                                bool fake, QuantizeKernel* kernel);

// One read of a 2-D [M, K] matrix writes two quantizations: `rows` with blocks of
// spec.block_size (must be 32) along K (axis -1), `cols` with blocks of 32 along axis 0. Their
// bytes equal quantize_cuda with spec.axis = -1 and spec.axis = 0. spec.axis is ignored; tiles
// are refused.
std::string quantize_dual_cuda(const void* d_in, DType dtype, std::span<const int64_t> shape,
                               const QuantSpec& spec, MxDeviceBuffers rows, MxDeviceBuffers cols,
                               cudaStream_t stream);

}  // namespace mx::cuda
