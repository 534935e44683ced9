// Input generators shared by the tests: random values with the boundary cases mixed in.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace mx::testing {

// Values that stress block scaling: normal and heavy-tailed draws at random magnitudes, exact
// powers of two, values next to binade edges, float32 subnormals, zeros of both signs.
inline std::vector<float> stress_values(size_t n, uint64_t seed, bool with_nonfinite = false) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> kind(0, 9);
  std::uniform_int_distribution<int> exponent(-140, 126);
  std::uniform_int_distribution<uint32_t> any_bits;
  std::vector<float> v(n);
  // A per-block magnitude so that blocks differ in scale, as real tensors do.
  float block_scale = 1.0f;
  for (size_t i = 0; i < n; ++i) {
    if (i % 32 == 0) block_scale = std::ldexp(1.0f, exponent(rng) / 2);
    switch (kind(rng)) {
      case 0:
        v[i] = std::ldexp(1.0f, exponent(rng));
        break;
      case 1: {  // any finite bit pattern
        uint32_t b = any_bits(rng);
        if (((b >> 23) & 0xFF) == 0xFF) b &= 0xBFFFFFFFu;
        v[i] = std::bit_cast<float>(b);
        break;
      }
      case 2:
        v[i] = std::bit_cast<float>(any_bits(rng) & 0x807FFFFFu);
        break;  // subnormal
      case 3:
        v[i] = (i % 2) ? -0.0f : 0.0f;
        break;
      case 4:
        v[i] = block_scale * std::nextafter(1.5f, 2.0f) * (i % 3 ? 1 : -1);
        break;
      case 5:
        v[i] = normal(rng) * block_scale * 1000.0f;
        break;  // outlier
      default:
        v[i] = normal(rng) * block_scale;
        break;
    }
    if (with_nonfinite && kind(rng) == 0 && (i % 97) == 5) {
      v[i] = (i % 2) ? INFINITY : NAN;
    }
  }
  return v;
}

}  // namespace mx::testing
