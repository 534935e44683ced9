#include "mx/kernels/cpu/mx_matmul.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <vector>

#include "mx/core/e8m0.h"
#include "mx/core/half.h"
#include "mx/kernels/cpu/matmul_kernels.h"
#include "mx/kernels/cpu/parallel.h"
#include "mx/kernels/cpu/quantize.h"

namespace mx::cpu {
namespace {

// Threads take whole tiles of W rows (matmul_impl.h's kRows).
constexpr int64_t kRowAlign = 4;

std::string select_kernels(const std::optional<SimdTarget>& forced, detail::MatmulKernels* out) {
  const SimdTarget target = forced.value_or(best_target());
  if (!target_supported(target)) {
    return "CPU target " + std::string(target_name(target)) + " is not supported by this CPU";
  }
  switch (target) {
    case SimdTarget::kScalar:
      *out = detail::matmul_kernels_scalar();
      break;
    case SimdTarget::kAvx2:
      *out = detail::matmul_kernels_avx2();
      break;
    case SimdTarget::kAvx512:
      *out = detail::matmul_kernels_avx512();
      break;
    case SimdTarget::kAvx512Vnni:
      *out = detail::matmul_kernels_avx512vnni();
      break;
  }
  return "";
}

std::string check_weights(const MxTensor& w) {
  if (w.shape.size() != 2) return "W must be a 2-D [N, K] tensor";
  if (w.spec.is_tiled() || w.spec.block_size != 32) return "W must be in 1-D blocks of 32";
  if (w.spec.axis != -1 && w.spec.axis != 1) return "W must be blocked along its last axis (K)";
  if (w.spec.asymmetric) return "W must be symmetric (no block offsets)";
  return check_consistent(w);
}

const float* e8m0_values() {
  static const std::array<float, 256> values = [] {
    std::array<float, 256> v{};
    for (int b = 0; b < 256; ++b) v[b] = e8m0_to_float(uint8_t(b));
    return v;
  }();
  return values.data();
}

// x as the exact kernel reads it: float32 rows of whole blocks (zeros past K), each block's 32
// values reordered as its 16 even elements, then its 16 odd ones (the kernels' pair lanes).
template <class T, class ToFloat>
std::vector<float> blocks_in_pair_order(const T* x, int64_t m, int64_t k, ToFloat to_float) {
  const int64_t stride = (k + 31) / 32 * 32;
  std::vector<float> out(m * stride, 0.0f);
  for (int64_t i = 0; i < m; ++i) {
    const T* row = x + i * k;
    float* blocks = out.data() + i * stride;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t slot = j % 32;
      blocks[j - slot + (slot % 2) * 16 + slot / 2] = to_float(row[j]);
    }
  }
  return out;
}

std::vector<float> blocks_in_pair_order(const void* x, DType dtype, int64_t m, int64_t k) {
  if (dtype == DType::kBF16) {
    return blocks_in_pair_order(static_cast<const uint16_t*>(x), m, k, bf16_to_float);
  }
  return blocks_in_pair_order(static_cast<const float*>(x), m, k, [](float v) { return v; });
}

// x quantized to MXINT8 along K, as the fast kernels read it (matmul_kernels.h).
struct QuantizedX {
  std::vector<int8_t> codes;
  std::vector<float> pair_scales;
  std::vector<int32_t> quad_bias;
};

QuantizedX lay_out_by_pairs(const MxTensor& xq, int64_t m, int64_t nb, int weight_quantum) {
  const int64_t pairs = (nb + 1) / 2;
  QuantizedX out;
  out.codes.assign(m * pairs * 64, 0);
  out.pair_scales.assign(m * pairs * 16, 0.0f);
  out.quad_bias.assign(m * pairs * 16, 0);
  const int x_quantum = detail::quantum_exponent(traits(ElementFormat::kInt8));
  const float unit = std::ldexp(1.0f, weight_quantum + x_quantum);
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t b = 0; b < nb; ++b) {
      const auto* codes = reinterpret_cast<const int8_t*>(xq.elements.data()) + (i * nb + b) * 32;
      std::memcpy(out.codes.data() + i * pairs * 64 + b * 32, codes, 32);
      // X * 2^(q_w + q_x) is exact: at least 2^(-127 - 6 - 6) and at most 2^127.
      const float scale = e8m0_to_float(xq.scales[i * nb + b]) * unit;
      const int64_t lane0 = i * pairs * 16 + b * 8;  // block b's eight lanes of its pair
      for (int l = 0; l < 8; ++l) {
        out.pair_scales[lane0 + l] = scale;
        const int sum = codes[4 * l] + codes[4 * l + 1] + codes[4 * l + 2] + codes[4 * l + 3];
        out.quad_bias[lane0 + l] = -128 * sum;
      }
    }
  }
  return out;
}

void run_exact(const detail::MatmulKernels& kernels, const detail::PackedRows& rows,
               const std::vector<float>& x_blocks, int64_t m, float* y, int64_t n, int threads) {
  const detail::ExactMatmulJob job{rows, e8m0_values(), x_blocks.data(), m, y, n};
  parallel_for(n, kRowAlign, threads,
               [&](int64_t begin, int64_t end) { kernels.exact(job, begin, end); });
}

// Fast mode: x to MXINT8 with the library's quantizer, then integer dot products where W's
// elements are int8 integers, else the float32 kernel on the decoded MXINT8 x.
std::string run_fast(const detail::MatmulKernels& kernels, const detail::PackedRows& rows,
                     const void* x, DType x_dtype, int64_t m, int64_t k, float* y, int64_t n,
                     const MatmulOptions& options) {
  Options codec_options;
  codec_options.threads = options.threads;
  codec_options.target = options.target;
  MxTensor xq;
  QuantSpec spec;
  spec.format = ElementFormat::kInt8;
  const int64_t x_shape[] = {m, k};
  if (std::string e = quantize(x, x_dtype, x_shape, spec, &xq, codec_options); !e.empty()) {
    return e;
  }
  const FormatTraits& wf = traits(rows.format);
  if (!detail::has_int8_values(wf)) {
    std::vector<float> decoded(m * k);
    if (std::string e = dequantize(xq, DType::kF32, decoded.data(), codec_options); !e.empty()) {
      return e;
    }
    run_exact(kernels, rows, blocks_in_pair_order(decoded.data(), DType::kF32, m, k), m, y, n,
              options.threads);
    return "";
  }
  const int64_t nb = rows.blocks_per_row;
  const QuantizedX q = lay_out_by_pairs(xq, m, nb, detail::quantum_exponent(wf));
  const detail::FastMatmulJob job{rows,
                                  e8m0_values(),
                                  (nb + 1) / 2,
                                  q.codes.data(),
                                  q.pair_scales.data(),
                                  q.quad_bias.data(),
                                  m,
                                  y,
                                  n};
  parallel_for(n, kRowAlign, options.threads,
               [&](int64_t begin, int64_t end) { kernels.fast(job, begin, end); });
  return "";
}

// The threads that get at least min_bytes_per_thread of W (times the rows of x) each.
int useful_threads(const MxTensor& w, int64_t m, const MatmulOptions& options) {
  const int requested = resolve_thread_count(options.threads);
  if (options.min_bytes_per_thread <= 0) return requested;
  const double bytes = double(w.elements.size() + w.scales.size()) * double(m);
  const auto useful = std::max<int64_t>(1, int64_t(bytes / double(options.min_bytes_per_thread)));
  return int(std::min<int64_t>(requested, useful));
}

}  // namespace

std::string mx_matmul(const MxTensor& w, const void* x, DType x_dtype, int64_t m, float* y,
                      const MatmulOptions& options) {
  if (std::string e = check_weights(w); !e.empty()) return e;
  if (x_dtype == DType::kF16) return "x must be float32 or bfloat16, not float16";
  if (m < 0) return "the number of rows of x must not be negative";
  const int64_t n = w.shape[0], k = w.shape[1];
  if (m == 0 || n == 0) return "";
  if (y == nullptr || (k > 0 && x == nullptr)) return "x and y must not be null";
  detail::MatmulKernels kernels{};
  if (std::string e = select_kernels(options.target, &kernels); !e.empty()) return e;
  const detail::PackedRows rows{w.elements.data(), w.scales.data(), w.spec.format, (k + 31) / 32};
  MatmulOptions split = options;
  split.threads = useful_threads(w, m, options);
  if (options.mode == MatmulMode::kFast && k > 0) {
    return run_fast(kernels, rows, x, x_dtype, m, k, y, n, split);
  }
  run_exact(kernels, rows, blocks_in_pair_order(x, x_dtype, m, k), m, y, n, split.threads);
  return "";
}

}  // namespace mx::cpu
