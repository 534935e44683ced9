// Element formats of MX blocks and the one table of their traits that all code reads.
//
// A format is either a small float (sign, exp_bits, man_bits, bias) or a two's-complement
// integer whose payload p means p / 2^(bits-2) (INT8: p/64), as in microxcaling.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace mx {

enum class ElementFormat : uint8_t {
  kE4M3,  // OCP MXFP8
  kE5M2,  // OCP MXFP8
  kE3M2,  // OCP MXFP6
  kE2M3,  // OCP MXFP6
  kE2M1,  // OCP MXFP4
  kInt8,  // OCP MXINT8
  kInt4,  // design space (microxcaling, Yang et al.)
  kInt2,  // design space
  kE3M0,  // design space: 4-bit, exponent only
};

inline constexpr int kElementFormatCount = 9;

struct FormatTraits {
  ElementFormat format;
  std::string_view name;       // short name: "e4m3", "int8"
  std::string_view mx_name;    // name of the MX format: "mxfp8_e4m3", "mxint8"
  int bits;                    // storage bits per element
  bool is_integer;             // two's complement payload instead of sign/exponent/mantissa
  int exp_bits;                // 0 for integers
  int man_bits;                // mantissa bits; for integers the fraction bits, bits - 2
  int bias;                    // exponent bias; 0 for integers
  int emax;                    // exponent of the largest power of two the format represents
  int emin;                    // exponent of the smallest normal (integers: the quantum's)
  double max_normal;           // largest finite magnitude
  double min_normal;           // smallest normal magnitude (integers: the quantum)
  double min_subnormal;        // smallest nonzero magnitude
  uint8_t max_magnitude_code;  // code (sign bit clear) of max_normal
  bool has_inf;
  bool has_nan;
};

// The trait table, indexed by ElementFormat.
std::span<const FormatTraits, kElementFormatCount> all_formats();
const FormatTraits& traits(ElementFormat format);

// Accepts the short name ("e2m1"), the MX name ("mxfp4_e2m1") and aliases ("mxfp4", "mxint8",
// "fp8_e4m3"). Case-sensitive, lowercase.
std::optional<ElementFormat> parse_format(std::string_view name);

}  // namespace mx
