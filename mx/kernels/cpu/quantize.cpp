#include "mx/kernels/cpu/quantize.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "mx/core/block_grid.h"
#include "mx/core/format.h"
#include "mx/kernels/cpu/block_codec.h"
#include "mx/kernels/cpu/parallel.h"

namespace mx::cpu {
namespace {

std::string select_kernels(const Options& options, detail::BlockKernels* kernels) {
  const SimdTarget target = options.target.value_or(best_target());
  if (!target_supported(target)) {
    return "CPU target " + std::string(target_name(target)) + " is not supported by this CPU";
  }
  switch (target) {
    case SimdTarget::kScalar:
      *kernels = detail::kernels_scalar();
      break;
    case SimdTarget::kAvx2:
      *kernels = detail::kernels_avx2();
      break;
    case SimdTarget::kAvx512:
    case SimdTarget::kAvx512Vnni:  // VNNI adds nothing to quantizing
      *kernels = detail::kernels_avx512();
      break;
  }
  return "";
}

// Threads split the blocks in groups of 8, so that no two threads share a byte of packed codes
// whatever the block's bit length.
constexpr int64_t kBlockAlign = 8;

std::string run_quantize(const void* data, DType dtype, std::span<const int64_t> shape,
                         const QuantSpec& spec, detail::QuantizeJob job, const Options& options) {
  detail::BlockKernels kernels{};
  if (std::string e = select_kernels(options, &kernels); !e.empty()) return e;
  std::string error;
  job.grid = make_block_grid(shape, spec, &error);
  if (!error.empty()) return error;
  // The kernels read whole values. Data that is not aligned to its type (a file's bytes mapped
  // where its header left them) is copied to storage that is.
  std::vector<uint64_t> aligned;
  const size_t value_bytes = size_t(dtype_size(dtype));
  if (reinterpret_cast<uintptr_t>(data) % value_bytes != 0) {
    const size_t bytes = size_t(element_count(shape)) * value_bytes;
    aligned.resize((bytes + sizeof(uint64_t) - 1) / sizeof(uint64_t));
    if (bytes > 0) std::memcpy(aligned.data(), data, bytes);
    data = aligned.data();
  }
  job.input = data;
  job.dtype = dtype;
  job.spec = spec;
  parallel_for(job.grid.num_blocks(), kBlockAlign, options.threads,
               [&](int64_t begin, int64_t end) { kernels.quantize(job, begin, end); });
  return "";
}

}  // namespace

std::string quantize(const void* data, DType dtype, std::span<const int64_t> shape,
                     const QuantSpec& spec, MxTensor* out, const Options& options) {
  // Reuses the output's storage when it already has the right sizes: every byte is rewritten.
  std::string error;
  const BlockGrid grid = make_block_grid(shape, spec, &error);
  if (!error.empty()) return error;
  const MxStorageSizes sizes = storage_sizes(grid, spec);
  out->shape.assign(shape.begin(), shape.end());
  out->spec = spec;
  out->elements.resize(sizes.element_bytes);
  out->scales.resize(sizes.scale_bytes);
  out->offsets.resize(sizes.offset_count);
  if (!out->elements.empty()) out->elements.back() = 0;  // bits past the last code stay zero
  detail::QuantizeJob job{};
  job.elements = out->elements.data();
  job.scales = out->scales.data();
  job.offsets = out->offsets.data();
  return run_quantize(data, dtype, shape, spec, job, options);
}

std::string fake_quantize(const void* data, DType dtype, std::span<const int64_t> shape,
                          const QuantSpec& spec, DType out_dtype, void* out,
                          const Options& options) {
  if (out_dtype == DType::kF16) return "fake-quantize writes float32 or bfloat16, not float16";
  detail::QuantizeJob job{};
  job.fake_out = out;
  job.fake_dtype = out_dtype;
  return run_quantize(data, dtype, shape, spec, job, options);
}

namespace {

// Decodes the blocks of `shape` (a whole tensor, or rows of one) whose bytes start at the
// given ones.
std::string run_dequantize(std::span<const int64_t> shape, const QuantSpec& spec,
                           const uint8_t* elements, const uint8_t* scales, const uint16_t* offsets,
                           DType out_dtype, void* out, const Options& options) {
  if (out_dtype == DType::kF16) return "dequantize writes float32 or bfloat16, not float16";
  detail::BlockKernels kernels{};
  if (std::string e = select_kernels(options, &kernels); !e.empty()) return e;
  detail::DequantizeJob job{};
  std::string error;
  job.grid = make_block_grid(shape, spec, &error);
  if (!error.empty()) return error;
  job.elements = elements;
  job.scales = scales;
  job.offsets = offsets;
  job.spec = spec;
  job.out_dtype = out_dtype;
  job.out = out;
  parallel_for(job.grid.num_blocks(), kBlockAlign, options.threads,
               [&](int64_t begin, int64_t end) { kernels.dequantize(job, begin, end); });
  return "";
}

}  // namespace

std::string dequantize(const MxTensor& t, DType out_dtype, void* out, const Options& options) {
  if (std::string e = check_consistent(t); !e.empty()) return e;
  return run_dequantize(t.shape, t.spec, t.elements.data(), t.scales.data(), t.offsets.data(),
                        out_dtype, out, options);
}

std::string dequantize_rows(const MxTensor& t, int64_t first_row, int64_t rows, DType out_dtype,
                            void* out, const Options& options) {
  if (std::string e = check_consistent(t); !e.empty()) return e;
  const QuantSpec& s = t.spec;
  const int bits = traits(s.format).bits;
  if (t.shape.size() != 2 || s.is_tiled() || (s.axis != -1 && s.axis != 1) ||
      s.block_size * bits % 8 != 0) {
    return "row lookups need a 2-D tensor in blocks of whole bytes along its last axis";
  }
  if (first_row < 0 || rows < 0 || first_row + rows > t.shape[0]) {
    return "rows " + std::to_string(first_row) + " to " + std::to_string(first_row + rows) +
           " are not all below the tensor's " + std::to_string(t.shape[0]);
  }
  const int64_t blocks = (t.shape[1] + s.block_size - 1) / s.block_size;  // per row
  const int64_t first_block = first_row * blocks;
  const int64_t shape[2] = {rows, t.shape[1]};
  return run_dequantize(shape, s, t.elements.data() + first_block * s.block_size * bits / 8,
                        t.scales.data() + first_block,
                        s.asymmetric ? t.offsets.data() + first_block : nullptr, out_dtype, out,
                        options);
}

}  // namespace mx::cpu
