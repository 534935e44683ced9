#include "mx/core/quantize_ref.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <memory>

#include "mx/core/bitpack.h"
#include "mx/core/e8m0.h"
#include "mx/core/element_ref.h"
#include "mx/core/half.h"
#include "mx/core/rounding.h"
#include "mx/core/scale_rule.h"

namespace mx {
namespace {

bool is_subnormal(float v) {
  return v != 0 && std::fabs(v) < 0x1p-126f;
}

float flushed(const QuantSpec& spec, float v) {
  return spec.flush_subnormals && is_subnormal(v) ? std::copysign(0.0f, v) : v;
}

}  // namespace

BlockResult choose_block_scale_ref(const QuantSpec& spec, std::span<const float> values,
                                   std::span<const bool> is_real) {
  const FormatTraits& f = traits(spec.format);
  const size_t n = values.size();
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = flushed(spec, values[i]);
  for (size_t i = 0; i < n; ++i) {
    if (is_real[i] && !std::isfinite(v[i])) {
      return {kE8m0Nan, spec.asymmetric ? float_to_bf16(NAN) : uint16_t{0}, true};
    }
  }

  uint16_t offset = 0;
  if (spec.asymmetric) {
    float lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; ++i) {
      if (!is_real[i]) continue;
      lo = std::min(lo, v[i]);
      hi = std::max(hi, v[i]);
    }
    if (lo > hi) lo = hi = 0;  // a block of padding only
    offset = float_to_bf16(hi * 0.5f + lo * 0.5f);
    const float m = bf16_to_float(offset);
    for (size_t i = 0; i < n; ++i) {
      if (is_real[i]) v[i] = v[i] - m;
    }
  }

  float amax = 0;
  for (size_t i = 0; i < n; ++i) {
    if (is_real[i]) amax = std::max(amax, std::fabs(v[i]));
  }
  // An all-zero block: encoding its ±0 values at any scale gives the signed zero codes.
  if (amax == 0) return {spec.zero_block_scale, offset, false};
  const uint8_t scale = scale_byte_for_exponent(shared_exponent_ref(f, amax, spec.scale_rule));
  return {scale, offset, scale == kE8m0Nan};
}

uint8_t encode_block_element_ref(const QuantSpec& spec, const BlockResult& block, float value,
                                 int64_t index) {
  if (block.nan_block) return 0;
  float v = flushed(spec, value);
  if (spec.asymmetric) v = v - bf16_to_float(block.offset);
  const uint32_t dither = spec.rounding == Rounding::kStochastic
                              ? stochastic_dither(stochastic_stream_key(spec.seed), uint64_t(index))
                              : 0;
  return encode_element_ref(traits(spec.format), v, e8m0_exponent(block.scale), spec.rounding,
                            dither);
}

BlockResult quantize_block_ref(const QuantSpec& spec, std::span<const float> values,
                               std::span<const bool> is_real, std::span<const int64_t> indices,
                               std::span<uint8_t> codes) {
  const BlockResult r = choose_block_scale_ref(spec, values, is_real);
  for (size_t i = 0; i < values.size(); ++i) {
    codes[i] = is_real[i] ? encode_block_element_ref(spec, r, values[i], indices[i]) : 0;
  }
  return r;
}

MxTensor quantize_ref(std::span<const float> values, std::span<const int64_t> shape,
                      const QuantSpec& spec, std::string* error) {
  MxTensor t = make_mx_tensor(shape, spec, error);
  if (!error->empty()) return {};
  const BlockGrid grid = make_block_grid(shape, spec, error);
  if (int64_t(values.size()) != element_count(shape)) {
    *error = "value count does not match shape";
    return {};
  }
  const int k = grid.block_elems();
  const int bits = traits(spec.format).bits;
  std::vector<float> block(k);
  std::vector<int64_t> indices(k);
  std::unique_ptr<bool[]> is_real(new bool[k]);
  std::vector<uint8_t> codes(k);
  for (int64_t b = 0; b < grid.num_blocks(); ++b) {
    for (int s = 0; s < k; ++s) {
      const int64_t idx = grid.flat_index(b, s);
      indices[s] = idx;
      is_real[s] = idx >= 0;
      block[s] = idx >= 0 ? values[idx] : 0.0f;
    }
    const BlockResult r =
        quantize_block_ref(spec, block, std::span(is_real.get(), k), indices, codes);
    t.scales[b] = r.scale;
    if (spec.asymmetric) t.offsets[b] = r.offset;
    pack_codes(codes, bits, b * k, t.elements);
  }
  return t;
}

float decode_value(const FormatTraits& format, uint8_t code, uint8_t scale, bool asymmetric,
                   uint16_t offset) {
  if (scale == kE8m0Nan) return NAN;
  const float product = static_cast<float>(decode_element(format, code)) * e8m0_to_float(scale);
  return asymmetric ? product + bf16_to_float(offset) : product;
}

std::vector<float> dequantize_ref(const MxTensor& t) {
  std::string error;
  const BlockGrid grid = make_block_grid(t.shape, t.spec, &error);
  std::vector<float> out(element_count(t.shape), 0.0f);
  if (!error.empty()) return out;
  const FormatTraits& f = traits(t.spec.format);
  const int k = grid.block_elems();
  std::vector<uint8_t> codes(k);
  for (int64_t b = 0; b < grid.num_blocks(); ++b) {
    unpack_codes(t.elements, f.bits, b * k, codes);
    const uint16_t offset = t.spec.asymmetric ? t.offsets[b] : 0;
    for (int s = 0; s < k; ++s) {
      const int64_t idx = grid.flat_index(b, s);
      if (idx >= 0) out[idx] = decode_value(f, codes[s], t.scales[b], t.spec.asymmetric, offset);
    }
  }
  return out;
}

}  // namespace mx
