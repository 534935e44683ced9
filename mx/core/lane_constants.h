// The constants of a format that the element encoders read per lane, computed on the host the
// same way for the CPU's SIMD lanes (kernels/cpu/block_codec_impl.h, LaneFormat) and the CUDA
// kernels (kernels/cuda/device_common.cuh, DevFormat), which add constants of their own.
#pragma once

#include <bit>
#include <cstdint>

#include "mx/core/element_ref.h"
#include "mx/core/format.h"

namespace mx {

// Fills bits, man_bits, emin, emax, max_code (the largest magnitude code), max_sig24 and
// max_floor_log2 (the largest normal as sig24 * 2^(max_floor_log2 - 23), for RCEIL) and
// decode[256] (each code's value; codes past the format's width read 0).
template <class Lane>
void fill_lane_constants(const FormatTraits& f, Lane& p) {
  p.bits = f.bits;
  p.man_bits = f.man_bits;
  p.emin = f.emin;
  p.emax = f.emax;
  p.max_code = f.max_magnitude_code;
  const uint32_t max_bits = std::bit_cast<uint32_t>(static_cast<float>(f.max_normal));
  p.max_sig24 = (max_bits & 0x7FFFFFu) | 0x800000u;
  p.max_floor_log2 = int(max_bits >> 23) - 127;
  for (int c = 0; c < 256; ++c) {
    p.decode[c] = c < (1 << f.bits) ? static_cast<float>(decode_element(f, uint8_t(c))) : 0.0f;
  }
}

}  // namespace mx
