#include "mx/core/format.h"

#include <cmath>

namespace mx {
namespace {

constexpr FormatTraits float_format(ElementFormat f, std::string_view name,
                                    std::string_view mx_name, int exp_bits, int man_bits,
                                    bool has_inf, bool has_nan) {
  const int bias = (1 << (exp_bits - 1)) - 1;
  const int emin = 1 - bias;
  const int max_field = (1 << exp_bits) - 1;
  // Codes above the largest finite one are taken by Inf (whole top binade, IEEE style) or by a
  // single NaN code (E4M3: S.1111.111).
  int top_exp_field = has_inf ? max_field - 1 : max_field;
  int top_man = (1 << man_bits) - 1;
  if (has_nan && !has_inf) top_man -= 1;
  const int emax = top_exp_field - bias;
  double max_normal = 1.0 + top_man / double(1 << man_bits);
  for (int i = 0; i < emax; ++i) max_normal *= 2.0;
  double min_normal = 1.0;
  for (int i = 0; i < -emin; ++i) min_normal /= 2.0;
  double min_subnormal = min_normal / double(1 << man_bits);
  const uint8_t max_code = static_cast<uint8_t>((top_exp_field << man_bits) | top_man);
  return {f,
          name,
          mx_name,
          1 + exp_bits + man_bits,
          false,
          exp_bits,
          man_bits,
          bias,
          emax,
          emin,
          max_normal,
          min_normal,
          min_subnormal,
          max_code,
          has_inf,
          has_nan};
}

constexpr FormatTraits int_format(ElementFormat f, std::string_view name, std::string_view mx_name,
                                  int bits) {
  const int frac_bits = bits - 2;
  const int max_payload = (1 << (bits - 1)) - 1;
  const double quantum = 1.0 / double(1 << frac_bits);
  return {f,
          name,
          mx_name,
          bits,
          true,
          0,
          frac_bits,
          0,
          0,
          -frac_bits,
          max_payload * quantum,
          quantum,
          quantum,
          static_cast<uint8_t>(max_payload),
          false,
          false};
}

constexpr std::array<FormatTraits, kElementFormatCount> kTable = {
    float_format(ElementFormat::kE4M3, "e4m3", "mxfp8_e4m3", 4, 3, false, true),
    float_format(ElementFormat::kE5M2, "e5m2", "mxfp8_e5m2", 5, 2, true, true),
    float_format(ElementFormat::kE3M2, "e3m2", "mxfp6_e3m2", 3, 2, false, false),
    float_format(ElementFormat::kE2M3, "e2m3", "mxfp6_e2m3", 2, 3, false, false),
    float_format(ElementFormat::kE2M1, "e2m1", "mxfp4_e2m1", 2, 1, false, false),
    int_format(ElementFormat::kInt8, "int8", "mxint8", 8),
    int_format(ElementFormat::kInt4, "int4", "mxint4", 4),
    int_format(ElementFormat::kInt2, "int2", "mxint2", 2),
    float_format(ElementFormat::kE3M0, "e3m0", "mxfp4_e3m0", 3, 0, false, false),
};

// The OCP table (MX v1.0, Table 1 and §5), restated so a typo in the generator cannot hide.
static_assert(kTable[0].max_normal == 448.0 && kTable[0].emax == 8 &&
              kTable[0].max_magnitude_code == 0x7E);
static_assert(kTable[1].max_normal == 57344.0 && kTable[1].emax == 15 &&
              kTable[1].max_magnitude_code == 0x7B);
static_assert(kTable[2].max_normal == 28.0 && kTable[2].emax == 4 &&
              kTable[2].min_subnormal == 0.0625);
static_assert(kTable[3].max_normal == 7.5 && kTable[3].emax == 2 &&
              kTable[3].min_subnormal == 0.125);
static_assert(kTable[4].max_normal == 6.0 && kTable[4].emax == 2 && kTable[4].min_subnormal == 0.5);
static_assert(kTable[5].max_normal == 127.0 / 64 && kTable[5].emax == 0);
static_assert(kTable[6].max_normal == 7.0 / 4 && kTable[7].max_normal == 1.0);
static_assert(kTable[8].max_normal == 16.0 && kTable[8].emax == 4 && kTable[8].min_normal == 0.25);

}  // namespace

std::span<const FormatTraits, kElementFormatCount> all_formats() {
  return kTable;
}

const FormatTraits& traits(ElementFormat format) {
  return kTable[static_cast<int>(format)];
}

std::optional<ElementFormat> parse_format(std::string_view name) {
  struct Alias {
    std::string_view name;
    ElementFormat format;
  };
  static constexpr Alias kAliases[] = {
      {"mxfp8", ElementFormat::kE4M3},    {"fp8_e4m3", ElementFormat::kE4M3},
      {"fp8_e5m2", ElementFormat::kE5M2}, {"mxfp6", ElementFormat::kE3M2},
      {"fp6_e3m2", ElementFormat::kE3M2}, {"fp6_e2m3", ElementFormat::kE2M3},
      {"mxfp4", ElementFormat::kE2M1},    {"fp4_e2m1", ElementFormat::kE2M1},
      {"fp4_e3m0", ElementFormat::kE3M0}, {"mxe3m0", ElementFormat::kE3M0},
  };
  for (const FormatTraits& t : kTable) {
    if (name == t.name || name == t.mx_name) return t.format;
  }
  for (const Alias& a : kAliases) {
    if (name == a.name) return a.format;
  }
  return std::nullopt;
}

}  // namespace mx
