// The little Unicode the tokenizers need: UTF-8 decoding that never fails, and the letter,
// number and white-space classes of the GPT-2 pre-tokenizer's \p{L}, \p{N} and \s.
//
// The class tables come from the Unicode Character Database shipped by Debian (unicode-data,
// Unicode 15.0.0) through scripts/gen_unicode_tables.py; unicode_tables.cpp is that script's
// output.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace mx::data {

struct CodepointRange {
  char32_t first;
  char32_t last;  // inclusive
};

// Sorted, disjoint, non-adjacent ranges (unicode_tables.cpp).
std::span<const CodepointRange> letter_ranges();       // general category L*
std::span<const CodepointRange> number_ranges();       // general category N*
std::span<const CodepointRange> white_space_ranges();  // property White_Space

bool is_letter(char32_t c);
bool is_number(char32_t c);
bool is_white_space(char32_t c);

// One step of UTF-8 decoding at `pos`. Malformed input (a stray continuation byte, a truncated
// or overlong sequence, a surrogate, > U+10FFFF) decodes as one byte with `valid` false, so
// that byte-level tokenizers keep every input byte.
struct Utf8Step {
  char32_t codepoint;  // the byte value itself when !valid
  int length;          // bytes consumed, 1..4
  bool valid;
};
Utf8Step decode_utf8(std::string_view text, size_t pos);

void append_utf8(char32_t codepoint, std::string* out);

}  // namespace mx::data
