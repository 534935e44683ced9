// The all-2^32 float32 sweep (label "exhaustive", run by `make exhaustive`;
// kept out of `make test` for its length). For every element format, every
// finite float32 bit pattern v:
//   1. the reference codec at scale 2^0 with nearest-even equals the
//   independent oracle;
//   2. the fast CPU path equals the oracle in all four rounding modes: the
//   patterns are fed as
//      tensors of 32-element blocks whose first slot holds the anchor 2^emax,
//      so each block's scale is 2^0 and every other slot exercises one input
//      (inputs above the anchor are folded below it with fmod).
// Threads split the patterns; runtime is printed per format (see README for the
// total).
#include <gtest/gtest.h>

#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "mx/core/bitpack.h"
#include "mx/core/element_ref.h"
#include "mx/core/quantize_ref.h"
#include "mx/kernels/cpu/quantize.h"
#include "tests/oracle.h"

namespace mx {
namespace {

// MX_EXHAUSTIVE_LIMIT=N sweeps only the first N patterns (to estimate the full
// runtime).
const uint64_t kPatterns = [] {
  const char* limit = std::getenv("MX_EXHAUSTIVE_LIMIT");
  return limit ? std::strtoull(limit, nullptr, 10) : uint64_t{1} << 32;
}();
constexpr uint64_t kChunk = uint64_t{1} << 20;  // patterns per work item

int worker_count() {
  return int(std::max(1u, std::thread::hardware_concurrency()));
}

// Runs fn(first, last) over all patterns in chunks, on every hardware thread.
template <class Fn>
void for_all_patterns(Fn fn) {
  std::atomic<uint64_t> next{0};
  std::vector<std::thread> pool;
  for (int w = 0; w < worker_count(); ++w) {
    pool.emplace_back([&] {
      for (uint64_t first; (first = next.fetch_add(kChunk)) < kPatterns;) {
        fn(first, std::min(first + kChunk, kPatterns));
      }
    });
  }
  for (auto& t : pool) t.join();
}

TEST(Float32Exhaustive, ReferenceMatchesTheOracleOnEveryFloat32) {
  for (const FormatTraits& f : all_formats()) {
    const auto start = std::chrono::steady_clock::now();
    const testing::OracleFormat o = testing::oracle_format(f);
    std::atomic<uint64_t> failures{0};
    for_all_patterns([&](uint64_t first, uint64_t last) {
      uint64_t bad = 0;
      for (uint64_t b = first; b < last; ++b) {
        const float v = std::bit_cast<float>(uint32_t(b));
        if (!std::isfinite(v)) continue;
        bad += encode_element_ref(f, v, 0, Rounding::kNearestEven) !=
               testing::oracle_encode(o, v, Rounding::kNearestEven);
      }
      failures += bad;
    });
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("reference vs oracle, %s: %.0f s\n", std::string(f.name).c_str(), s);
    EXPECT_EQ(failures.load(), 0u) << f.name;
  }
}

TEST(Float32Exhaustive, FastPathMatchesTheOracleOnEveryFloat32InEveryMode) {
  for (const FormatTraits& f : all_formats()) {
    const auto start = std::chrono::steady_clock::now();
    const testing::OracleFormat o = testing::oracle_format(f);
    // Slot 0 of each 32-element block is an anchor whose FLOOR scale is 2^0;
    // the 31 others are inputs, so each is encoded at scale 1 and can be
    // checked against the oracle alone.
    const float anchor = std::ldexp(1.0f, f.emax);
    std::atomic<uint64_t> failures{0};
    for (Rounding mode : {Rounding::kNearestEven, Rounding::kNearestAway, Rounding::kTowardZero,
                          Rounding::kStochastic}) {
      QuantSpec spec;
      spec.format = f.format;
      spec.rounding = mode;
      const uint64_t key = stochastic_stream_key(spec.seed);
      for_all_patterns([&](uint64_t first, uint64_t last) {
        std::vector<float> v;
        v.reserve((last - first) / 31 * 32 + 64);
        for (uint64_t b = first; b < last;) {
          v.push_back(anchor);
          for (int s = 0; s < 31; ++s, ++b) {
            float x = b < last ? std::bit_cast<float>(uint32_t(b)) : 0.0f;
            // Values above the anchor would move the scale; fold them below it.
            if (!std::isfinite(x) || std::fabs(x) > anchor) x = std::fmod(x, anchor);
            v.push_back(std::isfinite(x) ? x : 0.0f);
          }
        }
        const std::vector<int64_t> shape = {int64_t(v.size())};
        MxTensor got;
        cpu::Options one_thread;
        one_thread.threads = 1;
        cpu::quantize(v.data(), DType::kF32, shape, spec, &got, one_thread);
        std::vector<uint8_t> codes(v.size());
        unpack_codes(got.elements, f.bits, 0, codes);
        uint64_t bad = 0;
        for (size_t i = 0; i < v.size(); ++i) {
          const uint32_t u = stochastic_dither(key, i);
          bad += got.scales[i / 32] != 0x7F || codes[i] != testing::oracle_encode(o, v[i], mode, u);
        }
        failures += bad;
      });
    }
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("fast path vs oracle, %s, 4 modes: %.0f s\n", std::string(f.name).c_str(), s);
    EXPECT_EQ(failures.load(), 0u) << f.name;
  }
}

}  // namespace
}  // namespace mx
