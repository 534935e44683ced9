// GPT-2's pre-tokenizer, written out by hand instead of with a regex engine. It splits text
// into the pieces that the pattern
//
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// matches with leftmost-first alternation, as Python's `regex` module does for GPT-2's
// encoder.py. BPE then runs inside each piece only.
//
// Classes: \p{L} and \p{N} are Unicode general categories L* and N*, \s is the White_Space
// property (unicode.h). Bytes that are not valid UTF-8 count as [^\s\p{L}\p{N}], so no byte is
// ever lost. The contractions are case-sensitive, as in the original pattern.
#pragma once

#include <string_view>
#include <vector>

namespace mx::data {

// Consecutive, non-empty views into `text` that concatenate back to it.
std::vector<std::string_view> gpt2_pretokenize(std::string_view text);

}  // namespace mx::data
