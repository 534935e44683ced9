// Rules that choose a block's shared power-of-two scale from its largest magnitude, amax.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "mx/core/format.h"

namespace mx {

enum class ScaleRule : uint8_t {
  kFloor,  // 2^(floor(log2 amax) - emax): OCP §6.3; clips the top of the block
  kCeil,   // 2^(ceil(log2 amax) - emax)
  kEven,   // amax rounded to the element's mantissa width (ties to even), then FLOOR
  kRceil,  // 2^ceil(log2(amax / max_normal)): cuBLAS, TransformerEngine; never clips
};

std::string_view scale_rule_name(ScaleRule r);
std::optional<ScaleRule> parse_scale_rule(std::string_view name);

// The unclamped shared exponent for a block with largest magnitude `amax` (finite, > 0),
// computed exactly from amax's bits. Reference definition: written for reading, not speed.
int shared_exponent_ref(const FormatTraits& format, float amax, ScaleRule rule);

// Clamps a shared exponent to an E8M0 byte: below -127 -> byte 0 (2^-127); above 127 -> NaN.
uint8_t scale_byte_for_exponent(int exponent);

}  // namespace mx
