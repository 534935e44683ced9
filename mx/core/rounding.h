// Element rounding modes, and the counter-based generator behind stochastic rounding.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace mx {

enum class Rounding : uint8_t {
  kNearestEven,  // OCP default: round to nearest, ties to even
  kNearestAway,  // ties away from zero (microxcaling's round="nearest")
  kTowardZero,   // truncate the magnitude
  kStochastic,   // round up with probability equal to the discarded fraction (16-bit resolution)
};

std::string_view rounding_name(Rounding r);
std::optional<Rounding> parse_rounding(std::string_view name);

// Stochastic rounding adds a uniform 16-bit dither d to the discarded fraction and truncates:
// the magnitude rounds up iff floor(fraction * 2^16) + d >= 2^16, so with probability equal to
// the fraction truncated to 16 bits. (16 bits keep the dither add exact in float32 for every
// element format, which lets the GPU round with one float add; see docs/NUMERICS.md.)
//
// d is drawn from a counter-based generator keyed by the seed and the element's flat index in
// the input tensor, so any backend, any thread split and any block order reproduces the same
// bits. Elements 2m and 2m + 1 take the low and high halves of one 32-bit hash of m: Wellons'
// lowbias32 of m * golden + a key. The key is per window of 2^32 pairs, from SplitMix64's
// finalizer (Steele, Lea, Flood 2014) of the hashed seed plus the window number.
constexpr uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

constexpr uint64_t stochastic_stream_key(uint64_t seed) {
  return splitmix64_mix(seed);
}

// lowbias32 without its last step, y ^ (y >> 16), which leaves the high half as it is: the GPU
// kernels compute these steps themselves (right shifts as multiply-highs) and take a pair's
// high dither as y >> 16 and the low one as (y ^ (y >> 16)) & 0xFFFF.
constexpr uint32_t lowbias32_before_last_step(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7FEB352Du;
  x ^= x >> 15;
  return x * 0x846CA68Bu;
}

constexpr uint32_t lowbias32(uint32_t x) {
  const uint32_t y = lowbias32_before_last_step(x);
  return y ^ (y >> 16);
}

constexpr uint32_t kStochasticPairStep = 0x9E3779B9u;  // 2^32 / golden ratio

// Key of the window of pairs [w * 2^32, (w + 1) * 2^32).
constexpr uint32_t stochastic_window_key(uint64_t stream_key, uint64_t window) {
  return static_cast<uint32_t>(splitmix64_mix(stream_key + window) >> 32);
}

// The 32 random bits of pair m = window * 2^32 + low.
constexpr uint32_t stochastic_pair_bits(uint32_t window_key, uint32_t low) {
  return lowbias32(low * kStochasticPairStep + window_key);
}

// An element's half of its pair's bits: the low half for even indices, the high for odd.
constexpr uint32_t dither_half(uint32_t pair_bits, uint64_t element_index) {
  return (element_index & 1) ? pair_bits >> 16 : pair_bits & 0xFFFFu;
}

// The 16-bit dither of one element.
constexpr uint32_t stochastic_dither(uint64_t stream_key, uint64_t element_index) {
  const uint64_t pair = element_index >> 1;
  return dither_half(stochastic_pair_bits(stochastic_window_key(stream_key, pair >> 32),
                                          static_cast<uint32_t>(pair)),
                     element_index);
}

// Dithers of consecutive flat indices, with the window key computed once per window.
class StochasticDithers {
 public:
  explicit StochasticDithers(uint64_t stream_key)
      : stream_key_(stream_key), window_key_(stochastic_window_key(stream_key, 0)) {}
  uint32_t operator()(uint64_t element_index) {
    const uint64_t pair = element_index >> 1;
    if ((pair >> 32) != window_) {
      window_ = pair >> 32;
      window_key_ = stochastic_window_key(stream_key_, window_);
    }
    return dither_half(stochastic_pair_bits(window_key_, static_cast<uint32_t>(pair)),
                       element_index);
  }

 private:
  uint64_t stream_key_;
  uint64_t window_ = 0;
  uint32_t window_key_;
};

// Whether stochastic rounding rounds up: `fraction16` is floor(discarded fraction * 2^16).
constexpr bool stochastic_rounds_up(uint32_t fraction16, uint32_t dither) {
  return fraction16 + dither >= 0x10000u;
}

}  // namespace mx
