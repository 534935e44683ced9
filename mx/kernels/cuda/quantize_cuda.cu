// The host side of the CUDA quantizers: checks the arguments, turns the spec and the block grid
// into kernel arguments, and picks the kernel (each kernel family in its own file). The kernels
// port the CPU fast path (mx/kernels/cpu/block_codec_impl.h) bit for bit. See NOTES.md.
#include "mx/kernels/cuda/quantize_cuda.h"

#include <cuda_runtime.h>

#include <bit>
#include <cstdint>
#include <numeric>
#include <string>

#include "mx/core/block_grid.h"
#include "mx/core/format.h"
#include "mx/core/lane_constants.h"
#include "mx/core/mx_tensor.h"
#include "mx/core/rounding.h"
#include "mx/kernels/cuda/dequantize_kernels.cuh"
#include "mx/kernels/cuda/device_common.cuh"
#include "mx/kernels/cuda/dual_bf16_e2m1.cuh"
#include "mx/kernels/cuda/dual_kernels.cuh"
#include "mx/kernels/cuda/fake_quantize_columns.cuh"
#include "mx/kernels/cuda/fake_quantize_dual.cuh"
#include "mx/kernels/cuda/fake_quantize_unaligned_rows.cuh"
#include "mx/kernels/cuda/quantize_kernels.cuh"

namespace mx::cuda {

DevFormat make_dev_format(const FormatTraits& f) {
  DevFormat p{};
  fill_lane_constants(f, p);
  p.emin_b = f.emin + 127;
  p.magic_add = f.is_integer ? uint32_t(f.emin + 150) << 23 : uint32_t(23 - f.man_bits) << 23;
  p.max_value = static_cast<float>(f.max_normal);
  p.cvt = f.format == ElementFormat::kE4M3 ? 1 : f.format == ElementFormat::kE5M2 ? 2 : 0;
  return p;
}

DevSpec make_dev_spec(const QuantSpec& spec) {
  DevSpec s{};
  s.f = make_dev_format(traits(spec.format));
  s.rule = int(spec.scale_rule);
  s.asym = spec.asymmetric;
  s.flush = spec.flush_subnormals;
  s.zero_scale = spec.zero_block_scale;
  s.key = stochastic_stream_key(spec.seed);
  s.window0_key = stochastic_window_key(s.key, 0);
  return s;
}

namespace {

std::string make_dev_grid(std::span<const int64_t> shape, const QuantSpec& spec, DevGrid* out) {
  std::string error;
  const BlockGrid g = make_block_grid(shape, spec, &error);
  if (!error.empty()) return error;
  DevGrid d{};
  d.outer = g.outer;
  d.rows = g.rows;
  d.cols = g.cols;
  d.tile_rows = g.tile_rows;
  d.tile_cols = g.tile_cols;
  d.tiles_down = g.tiles_down;
  d.tiles_across = g.tiles_across;
  d.num_blocks = g.num_blocks();
  d.k = g.block_elems();
  d.contiguous = g.blocks_are_contiguous_runs();
  const bool row_tiles = g.tile_rows == 1;
  d.run_len = row_tiles ? g.cols : g.rows;
  d.blocks_per_run = row_tiles ? g.tiles_across : g.tiles_down;
  *out = d;
  return "";
}

std::string check_launch(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return std::string(what) + ": " + cudaGetErrorString(e);
  return "";
}

std::string check_dtype_in(DType t) {
  if (t != DType::kF32 && t != DType::kBF16 && t != DType::kF16) return "unknown input dtype";
  return "";
}

bool aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15) == 0;
}

// log2 of the threads per block of the 32-values-per-thread kernels (quantize_vec,
// dequantize_vec), or -1 where they don't apply: contiguous blocks that tile the tensor (every
// run holds whole blocks), k = 32 * G with G a power of two <= 8, codes of 4, 6 or 8 bits.
int vec_log2g(const DevGrid& g, int bits) {
  if (!g.contiguous || g.k % 32 != 0 || g.run_len % g.k != 0) return -1;
  if (bits != 4 && bits != 6 && bits != 8) return -1;
  const int G = g.k / 32;
  if (G > 8 || (G & (G - 1)) != 0) return -1;
  if ((g.num_blocks * G + 255) / 256 > int64_t(0x7FFFFFFF)) return -1;
  return std::countr_zero(unsigned(G));
}

std::string check_fake_output(std::span<const int64_t> shape, DType out_dtype, const void* d_out) {
  if (out_dtype != DType::kF32 && out_dtype != DType::kBF16) {
    return "fake-quantize writes float32 or bfloat16, not float16";
  }
  if (element_count_fits(shape) && element_count(shape) > 0 && d_out == nullptr) {
    return "null output";
  }
  return "";
}

// The parameters of a quantize or fake-quantize call (P holds the output buffers), or a reason.
std::string prepare_quantize(const void* d_in, DType dtype, std::span<const int64_t> shape,
                             const QuantSpec& spec, QuantParams* P) {
  if (std::string e = validate(spec); !e.empty()) return e;
  if (std::string e = check_dtype_in(dtype); !e.empty()) return e;
  if (std::string e = make_dev_grid(shape, spec, &P->g); !e.empty()) return e;
  if ((P->g.num_blocks + 255) / 256 > int64_t(0x7FFFFFFF)) return "tensor too large";
  P->s = make_dev_spec(spec);
  P->in = d_in;
  P->in_dtype = int(dtype);
  const int bits = traits(spec.format).bits;
  P->group = 8 / std::gcd(8, int((int64_t(P->g.k) * bits) % 8));
  return "";
}

// The kernel family for P, and for the kVec families log2 of the threads per block (vec_log2g).
QuantizeKernel choose_kernel(const QuantParams& P, const QuantSpec& spec, int* vec_log2g_out) {
  const int bits = traits(spec.format).bits;
  // Fake-quantized values do not depend on how codes pack, so every width takes the fast paths.
  const int log2g = vec_log2g(P.g, P.fake_out != nullptr ? 8 : bits);
  *vec_log2g_out = log2g;
  if (log2g >= 0 && aligned16(P.in) && aligned16(P.fake_out ? P.fake_out : P.elements)) {
    if (spec.rounding == Rounding::kStochastic && bits == 4 && P.in_dtype == int(DType::kBF16) &&
        !spec.asymmetric && !spec.flush_subnormals && P.fake_out == nullptr) {
      return QuantizeKernel::kVecBf16Stochastic;
    }
    return QuantizeKernel::kVec;
  }
  if (P.fake_out != nullptr && !P.g.contiguous && P.g.tile_rows == 32 && P.g.tile_cols == 1) {
    return fake_column_tiles_apply(P) ? QuantizeKernel::kColumnTiles : QuantizeKernel::kColumns;
  }
  if (fake_unaligned_rows_apply(P)) return QuantizeKernel::kUnalignedRows;
  const int G = P.g.k / 8;
  if (P.g.contiguous && P.g.k % 8 == 0 && G <= 32 && (G & (G - 1)) == 0 &&
      (P.g.num_blocks * G + 255) / 256 <= int64_t(0x7FFFFFFF)) {
    return QuantizeKernel::kLanes;
  }
  return QuantizeKernel::kGeneral;
}

std::string run_quantize(const void* d_in, DType dtype, std::span<const int64_t> shape,
                         const QuantSpec& spec, QuantParams P, cudaStream_t stream) {
  if (std::string e = prepare_quantize(d_in, dtype, shape, spec, &P); !e.empty()) return e;
  if (P.g.num_blocks == 0) return "";
  const bool integer = traits(spec.format).is_integer;
  const int bits = traits(spec.format).bits;
  int log2g = -1;
  switch (choose_kernel(P, spec, &log2g)) {
    case QuantizeKernel::kVecBf16Stochastic:
      launch_quantize_vec_bf16_stochastic(P, integer, log2g, stream);
      break;
    case QuantizeKernel::kVec: {
      const int code_bits = P.fake_out == nullptr && (bits == 4 || bits == 6) ? bits : 8;
      launch_quantize_vec(P, spec.rounding, integer, code_bits, log2g, stream);
      break;
    }
    case QuantizeKernel::kColumnTiles:
      launch_fake_column_tiles(P, spec.rounding, integer, stream);
      break;
    case QuantizeKernel::kColumns:
      launch_fake_columns(P, spec.rounding, integer, stream);
      break;
    case QuantizeKernel::kUnalignedRows:
      launch_fake_unaligned_rows(P, spec.rounding, integer, stream);
      break;
    case QuantizeKernel::kLanes:
      launch_quantize_lanes(P, spec.rounding, integer, std::countr_zero(unsigned(P.g.k / 8)),
                            stream);
      break;
    case QuantizeKernel::kGeneral:
      launch_quantize(P, spec.rounding, integer, stream);
      break;
  }
  return check_launch("quantize kernel launch");
}

}  // namespace

int64_t fill_first_blocks(std::span<ColumnCastMatrix> matrices) {
  int64_t total = 0;
  for (ColumnCastMatrix& m : matrices) {
    m.first_block = total;
    total += (m.rows + 31) / 32 * m.cols;
  }
  return total;
}

std::string fake_quantize_columns_batch_cuda(const ColumnCastMatrix* d_matrices, int count,
                                             int64_t total_blocks, const QuantSpec& spec,
                                             cudaStream_t stream) {
  if (std::string e = validate(spec); !e.empty()) return e;
  if (spec.block_size != 32 || spec.is_tiled()) return "a batch of column casts takes blocks of 32";
  if (spec.rounding == Rounding::kStochastic) {
    return "a batch of column casts takes no stochastic rounding";
  }
  if (count <= 0 || total_blocks <= 0) return "";
  if ((total_blocks + 255) / 256 > int64_t(0x7FFFFFFF)) return "batch too large";
  launch_fake_columns_batch(make_dev_spec(spec), d_matrices, count, total_blocks, spec.rounding,
                            traits(spec.format).is_integer, stream);
  return check_launch("column cast batch launch");
}

bool cuda_device_available(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why) *why = cudaGetErrorString(e);
    cudaGetLastError();
    return false;
  }
  if (n == 0) {
    if (why) *why = "no CUDA device found";
    return false;
  }
  return true;
}

const char* quantize_kernel_name(QuantizeKernel kernel) {
  switch (kernel) {
    case QuantizeKernel::kVec:
      return "vec";
    case QuantizeKernel::kVecBf16Stochastic:
      return "vec-bf16-stochastic";
    case QuantizeKernel::kColumnTiles:
      return "column-tiles";
    case QuantizeKernel::kColumns:
      return "columns";
    case QuantizeKernel::kUnalignedRows:
      return "unaligned-rows";
    case QuantizeKernel::kLanes:
      return "lanes";
    case QuantizeKernel::kGeneral:
      return "general";
  }
  return "?";
}

std::string quantize_kernel_for(const void* d_in, DType dtype, std::span<const int64_t> shape,
                                const QuantSpec& spec, const void* d_out, DType fake_dtype,
                                bool fake, QuantizeKernel* kernel) {
  QuantParams P{};
  if (fake) {
    if (std::string e = check_fake_output(shape, fake_dtype, d_out); !e.empty()) return e;
    P.fake_out = const_cast<void*>(d_out);
    P.fake_dtype = int(fake_dtype);
  } else {
    P.elements = static_cast<uint8_t*>(const_cast<void*>(d_out));
  }
  if (std::string e = prepare_quantize(d_in, dtype, shape, spec, &P); !e.empty()) return e;
  int log2g = -1;
  *kernel = choose_kernel(P, spec, &log2g);
  return "";
}

namespace {

// The row and column casts of fake_quantize_dual_cuda (outputs in R.fake_out and C.fake_out),
// or a reason.
std::string prepare_dual(const void* d_in, DType dtype, std::span<const int64_t> shape,
                         const QuantSpec& along_rows, const QuantSpec& down_columns, QuantParams* R,
                         QuantParams* C) {
  if (shape.size() != 2) return "dual fake-quantize needs a 2-D [rows, cols] matrix";
  QuantSpec rs = along_rows, cs = down_columns;
  rs.axis = 1;
  cs.axis = 0;
  for (const QuantParams* P : {R, C}) {
    if (std::string e = check_fake_output(shape, DType::kBF16, P->fake_out); !e.empty()) return e;
  }
  R->fake_dtype = C->fake_dtype = int(DType::kBF16);
  if (std::string e = prepare_quantize(d_in, dtype, shape, rs, R); !e.empty()) return e;
  return prepare_quantize(d_in, dtype, shape, cs, C);
}

// Whether one kernel reads the input once for both casts, where the first real_cols columns hold
// the values (the rest zero padding, which only symmetric casts leave zero).
bool dual_reads_once(const QuantParams& R, const QuantParams& C, const QuantSpec& along_rows,
                     const QuantSpec& down_columns, int64_t real_cols) {
  const bool padded = real_cols != C.g.cols;
  return along_rows.rounding == down_columns.rounding &&
         traits(along_rows.format).is_integer == traits(down_columns.format).is_integer &&
         along_rows.block_size == 32 && down_columns.block_size == 32 && !along_rows.is_tiled() &&
         !down_columns.is_tiled() && fake_dual_tiles_apply(R, C) &&
         (!padded || (!along_rows.asymmetric && !down_columns.asymmetric));
}

// real_cols as given (-1: all columns), or a reason.
std::string dual_real_cols(std::span<const int64_t> shape, int64_t* real_cols) {
  if (*real_cols < 0) *real_cols = shape[1];
  if (*real_cols > shape[1] || (*real_cols == 0 && shape[1] > 0)) {
    return "dual fake-quantize: " + std::to_string(*real_cols) + " real columns of " +
           std::to_string(shape[1]);
  }
  return "";
}

}  // namespace

std::string fake_quantize_dual_reads_once(DType dtype, std::span<const int64_t> shape,
                                          const QuantSpec& along_rows,
                                          const QuantSpec& down_columns, bool* once,
                                          int64_t real_cols) {
  // Stand-in pointers: the choice looks at the shape, the specs and the dtype only.
  alignas(16) static uint8_t stand_in[16];
  QuantParams R{}, C{};
  R.fake_out = C.fake_out = stand_in;
  if (std::string e = prepare_dual(stand_in, dtype, shape, along_rows, down_columns, &R, &C);
      !e.empty()) {
    return e;
  }
  if (std::string e = dual_real_cols(shape, &real_cols); !e.empty()) return e;
  *once = dual_reads_once(R, C, along_rows, down_columns, real_cols);
  return "";
}

std::string fake_quantize_dual_cuda(const void* d_in, DType dtype, std::span<const int64_t> shape,
                                    const QuantSpec& along_rows, const QuantSpec& down_columns,
                                    void* d_rows, void* d_cols, cudaStream_t stream,
                                    int64_t real_cols, float* d_column_sums) {
  QuantParams R{}, C{};
  R.fake_out = d_rows;
  C.fake_out = d_cols;
  if (std::string e = prepare_dual(d_in, dtype, shape, along_rows, down_columns, &R, &C);
      !e.empty()) {
    return e;
  }
  if (std::string e = dual_real_cols(shape, &real_cols); !e.empty()) return e;
  const bool once = dual_reads_once(R, C, along_rows, down_columns, real_cols);
  if (d_column_sums != nullptr && (!once || real_cols != shape[1])) {
    return "dual fake-quantize sums columns in one read only, over unpadded rows";
  }
  if (R.g.num_blocks == 0) return "";
  if (!once) {
    if (real_cols != shape[1]) {
      return "dual fake-quantize casts zero-padded rows in one read only: bfloat16, symmetric "
             "blocks of 32, one rounding and one element kind";
    }
    QuantSpec rs = along_rows, cs = down_columns;
    rs.axis = 1;
    cs.axis = 0;
    if (std::string e = fake_quantize_cuda(d_in, dtype, shape, rs, DType::kBF16, d_rows, stream);
        !e.empty()) {
      return e;
    }
    return fake_quantize_cuda(d_in, dtype, shape, cs, DType::kBF16, d_cols, stream);
  }
  launch_fake_dual_tiles(R, C, real_cols, along_rows.rounding, traits(along_rows.format).is_integer,
                         stream, d_column_sums);
  return check_launch("dual fake-quantize kernel launch");
}

std::string quantize_cuda(const void* d_in, DType dtype, std::span<const int64_t> shape,
                          const QuantSpec& spec, uint8_t* d_elements, uint8_t* d_scales,
                          uint16_t* d_offsets, cudaStream_t stream) {
  if (spec.asymmetric && d_offsets == nullptr) return "asymmetric spec needs an offsets buffer";
  QuantParams P{};
  P.elements = d_elements;
  P.scales = d_scales;
  P.offsets = d_offsets;
  return run_quantize(d_in, dtype, shape, spec, P, stream);
}

std::string fake_quantize_cuda(const void* d_in, DType dtype, std::span<const int64_t> shape,
                               const QuantSpec& spec, DType out_dtype, void* d_out,
                               cudaStream_t stream) {
  if (std::string e = check_fake_output(shape, out_dtype, d_out); !e.empty()) return e;
  QuantParams P{};
  P.fake_out = d_out;
  P.fake_dtype = int(out_dtype);
  return run_quantize(d_in, dtype, shape, spec, P, stream);
}

std::string dequantize_cuda(const uint8_t* d_elements, const uint8_t* d_scales,
                            const uint16_t* d_offsets, std::span<const int64_t> shape,
                            const QuantSpec& spec, DType out_dtype, void* d_out,
                            cudaStream_t stream) {
  if (out_dtype != DType::kF32 && out_dtype != DType::kBF16) {
    return "dequantize writes float32 or bfloat16, not float16";
  }
  if (std::string e = validate(spec); !e.empty()) return e;
  if (spec.asymmetric && d_offsets == nullptr) return "asymmetric spec needs an offsets buffer";
  DequantParams P{};
  if (std::string e = make_dev_grid(shape, spec, &P.g); !e.empty()) return e;
  if (P.g.num_blocks == 0) return "";
  if ((P.g.num_blocks + 255) / 256 > int64_t(0x7FFFFFFF)) return "tensor too large";
  P.f = make_dev_format(traits(spec.format));
  P.asym = spec.asymmetric;
  P.elements = d_elements;
  P.scales = d_scales;
  P.offsets = d_offsets;
  P.out = d_out;
  P.out_dtype = int(out_dtype);
  const int bits = traits(spec.format).bits;
  if (const int log2g = vec_log2g(P.g, bits);
      log2g >= 0 && aligned16(d_elements) && aligned16(d_out)) {
    launch_dequantize_vec(P, bits, log2g, stream);
    return check_launch("dequantize kernel launch");
  }
  if (P.g.contiguous && P.g.k % 8 == 0) {
    const int64_t chunks = P.g.num_blocks * (P.g.k / 8);
    if ((chunks + 255) / 256 > int64_t(0x7FFFFFFF)) return "tensor too large";
    launch_dequantize_chunks(P, stream);
    return check_launch("dequantize kernel launch");
  }
  launch_dequantize(P, stream);
  return check_launch("dequantize kernel launch");
}

std::string quantize_dual_cuda(const void* d_in, DType dtype, std::span<const int64_t> shape,
                               const QuantSpec& spec, MxDeviceBuffers rows, MxDeviceBuffers cols,
                               cudaStream_t stream) {
  if (std::string e = validate(spec); !e.empty()) return e;
  if (std::string e = check_dtype_in(dtype); !e.empty()) return e;
  if (shape.size() != 2) return "dual quantize needs a 2-D [M, K] matrix";
  if (spec.is_tiled() || spec.block_size != 32) return "dual quantize needs 1-D blocks of 32";
  if (shape[0] < 0 || shape[1] < 0) return "negative dimension";
  if (spec.asymmetric && (rows.offsets == nullptr || cols.offsets == nullptr)) {
    return "asymmetric spec needs offsets buffers";
  }
  const int bits = traits(spec.format).bits;
  if ((32 * bits) % 8 != 0) return "unsupported format";
  DualParams P{};
  P.s = make_dev_spec(spec);
  P.in = d_in;
  P.in_dtype = int(dtype);
  P.M = shape[0];
  P.K = shape[1];
  if (P.M == 0 || P.K == 0) return "";
  P.row_blocks_per_row = (P.K + 31) / 32;
  P.rows = rows;
  P.cols = cols;
  if (dual_bf16_e2m1_applies(P, spec, dtype)) {
    launch_dual_bf16_e2m1(P, stream);
    return check_launch("dual quantize kernel launch");
  }
  if ((bits == 4 || bits == 6 || bits == 8) && aligned16(rows.elements) &&
      aligned16(cols.elements)) {
    const int64_t gx = (P.K + kDualVecCols - 1) / kDualVecCols, gy = (P.M + 31) / 32;
    if (gx > 0x7FFFFFFF || gy > 65535) return "matrix too large for the dual kernel grid";
    const int vec_loads = aligned16(d_in) && P.K % (dtype == DType::kF32 ? 4 : 8) == 0;
    const dim3 grid{unsigned(gx), unsigned(gy)};
    const bool integer = traits(spec.format).is_integer;
    launch_dual_vec(P, spec.rounding, integer, bits, grid, vec_loads, stream);
    return check_launch("dual quantize kernel launch");
  }
  const int64_t gx = (P.K + kDualCols - 1) / kDualCols, gy = (P.M + kDualRows - 1) / kDualRows;
  if (gx > 0x7FFFFFFF || gy > 65535) return "matrix too large for the dual kernel grid";
  launch_dual(P, spec.rounding, traits(spec.format).is_integer, dim3(unsigned(gx), unsigned(gy)),
              stream);
  return check_launch("dual quantize kernel launch");
}

}  // namespace mx::cuda
