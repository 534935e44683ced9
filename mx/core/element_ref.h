// Reference element codec: the project's definition of how one value becomes one element code.
// Written for a reader checking it against the spec; the fast paths are held to it bit for bit.
#pragma once

#include <cstdint>

#include "mx/core/format.h"
#include "mx/core/rounding.h"

namespace mx {

// Code of v / 2^scale_exp in `format`, rounded by `mode` and saturated to ±max_normal.
// v must be finite. `dither` (16 bits) is used by stochastic rounding only: the value rounds up
// in magnitude when floor(fraction * 2^16) + dither >= 2^16, fraction being the discarded part
// in units of the element's quantum. Signed zeros keep their sign in the float formats.
uint8_t encode_element_ref(const FormatTraits& format, float v, int scale_exp, Rounding mode,
                           uint32_t dither = 0);

// Exact value of a code: NaN and ±Inf for the codes that mean them (E4M3, E5M2).
double decode_element(const FormatTraits& format, uint8_t code);

// Code of +0 and of -0 (the same for integer formats).
uint8_t zero_code(const FormatTraits& format, bool negative);

}  // namespace mx
