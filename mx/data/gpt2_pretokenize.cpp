#include "mx/data/gpt2_pretokenize.h"

#include <cstdint>

#include "mx/data/unicode.h"

namespace mx::data {
namespace {

enum class CharClass : uint8_t { kLetter, kNumber, kSpace, kOther };

struct Char {
  size_t offset;  // byte offset in the text
  char32_t codepoint;
  CharClass cls;
};

std::vector<Char> classify(std::string_view text) {
  std::vector<Char> chars;
  chars.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    const Utf8Step s = decode_utf8(text, pos);
    CharClass cls = CharClass::kOther;
    if (s.valid) {
      if (is_letter(s.codepoint)) {
        cls = CharClass::kLetter;
      } else if (is_number(s.codepoint)) {
        cls = CharClass::kNumber;
      } else if (is_white_space(s.codepoint)) {
        cls = CharClass::kSpace;
      }
    }
    // An invalid byte must not pass for the ASCII character with its value (e.g. 0xA0 is not
    // NO-BREAK SPACE here), so only valid characters keep their code point.
    chars.push_back({pos, s.valid ? s.codepoint : char32_t{0xFFFFFFFF}, cls});
    pos += s.length;
  }
  return chars;
}

// End of the contraction 's 't 're 've 'm 'll 'd starting at i, or i when there is none.
size_t contraction_end(const std::vector<Char>& c, size_t i) {
  const size_t n = c.size();
  if (c[i].codepoint != '\'' || i + 1 >= n) return i;
  const char32_t a = c[i + 1].codepoint;
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
  if (i + 2 >= n) return i;
  const char32_t b = c[i + 2].codepoint;
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
  return i;
}

size_t run_end(const std::vector<Char>& c, size_t i, CharClass cls) {
  while (i < c.size() && c[i].cls == cls) ++i;
  return i;
}

// End of the piece that starts at i: the first alternative of the pattern that matches there.
size_t piece_end(const std::vector<Char>& c, size_t i) {
  if (size_t j = contraction_end(c, i); j != i) return j;
  // ` ?\p{L}+`, ` ?\p{N}+` and ` ?[^\s\p{L}\p{N}]+`: an optional U+0020, then a run of one
  // class. The space is taken only when a non-space follows it.
  const bool space_prefix =
      c[i].codepoint == ' ' && i + 1 < c.size() && c[i + 1].cls != CharClass::kSpace;
  const size_t start = i + (space_prefix ? 1 : 0);
  if (c[start].cls != CharClass::kSpace) return run_end(c, start + 1, c[start].cls);
  // `\s+(?!\S)`: a white-space run that is not followed by a non-space, i.e. the whole run at
  // the end of the text, else the run less its last character, which then starts the next
  // piece (so " word" keeps its space). A run of one character before a non-space fails that
  // and falls to `\s+`.
  const size_t end = run_end(c, i, CharClass::kSpace);
  if (end < c.size() && end - i > 1) return end - 1;
  return end;
}

}  // namespace

std::vector<std::string_view> gpt2_pretokenize(std::string_view text) {
  const std::vector<Char> chars = classify(text);
  std::vector<std::string_view> pieces;
  for (size_t i = 0; i < chars.size();) {
    const size_t j = piece_end(chars, i);
    const size_t begin = chars[i].offset;
    const size_t end = j < chars.size() ? chars[j].offset : text.size();
    pieces.push_back(text.substr(begin, end - begin));
    i = j;
  }
  return pieces;
}

}  // namespace mx::data
