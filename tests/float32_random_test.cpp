// Ten million random and boundary float32 inputs per format: the reference element codec agrees
// with the oracle (nearest-even), and the fast path with the reference on large tensors.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <random>
#include <thread>

#include "mx/core/element_ref.h"
#include "mx/core/quantize_ref.h"
#include "mx/kernels/cpu/quantize.h"
#include "tests/oracle.h"
#include "tests/test_data.h"

namespace mx {
namespace {

constexpr int64_t kPerFormat = 10'000'000;

// Inputs near the format's range: representable values, midpoints, midpoints one float32 ulp
// either side, and random bit patterns whose exponent lies a few binades around the range.
float boundary_or_random(const testing::OracleFormat& o, std::mt19937_64& rng) {
  const auto& m = o.magnitudes;
  const size_t i = rng() % (m.size() - 1);
  const float mid = float((m[i] + m[i + 1]) / 2);  // exact: a few significant bits
  const float sign = (rng() & 1) ? -1.0f : 1.0f;
  switch (rng() % 6) {
    case 0:
      return sign * float(m[i]);
    case 1:
      return sign * mid;
    case 2:
      return sign * std::nextafter(mid, 0.0f);
    case 3:
      return sign * std::nextafter(mid, INFINITY);
    default: {
      const int lo = o.f->emin - o.f->man_bits - 4, hi = o.f->emax + 3;
      const uint32_t exponent = uint32_t(127 + lo + int(rng() % uint64_t(hi - lo + 1)));
      const uint32_t bits = (uint32_t(rng()) & 0x807FFFFFu) | (exponent << 23);
      return std::bit_cast<float>(bits);
    }
  }
}

TEST(Float32Random, TenMillionInputsPerFormatMatchTheOracle) {
  const int workers = int(std::max(1u, std::thread::hardware_concurrency()));
  for (const FormatTraits& f : all_formats()) {
    const testing::OracleFormat o = testing::oracle_format(f);
    std::vector<int64_t> failures(workers, 0);
    std::vector<std::thread> pool;
    for (int w = 0; w < workers; ++w) {
      pool.emplace_back([&, w] {
        std::mt19937_64 rng(1000 + w);
        for (int64_t i = w; i < kPerFormat; i += workers) {
          const float v = boundary_or_random(o, rng);
          const uint8_t got = encode_element_ref(f, v, 0, Rounding::kNearestEven);
          failures[w] += got != testing::oracle_encode(o, v, Rounding::kNearestEven);
        }
      });
    }
    for (auto& t : pool) t.join();
    int64_t total = 0;
    for (int64_t n : failures) total += n;
    EXPECT_EQ(total, 0) << f.name;
  }
}

TEST(Float32Random, FastPathEqualsReferenceOnAMillionStressValuesPerFormat) {
  const std::vector<float> values = testing::stress_values(1 << 20, 77, true);
  const std::vector<int64_t> shape = {1 << 10, 1 << 10};
  for (const FormatTraits& f : all_formats()) {
    QuantSpec spec;
    spec.format = f.format;
    std::string error;
    const MxTensor want = quantize_ref(values, shape, spec, &error);
    MxTensor got;
    ASSERT_EQ(cpu::quantize(values.data(), DType::kF32, shape, spec, &got), "");
    EXPECT_TRUE(got.elements == want.elements && got.scales == want.scales) << f.name;
  }
}

}  // namespace
}  // namespace mx
