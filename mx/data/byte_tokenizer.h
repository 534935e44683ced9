// The byte tokenizer: every byte of the UTF-8 text is its own token (vocabulary 256, no BOS or
// EOS). The tiny models train on it, since it needs no vocabulary file and makes the
// next-token loss easy to read (nats per byte).
#pragma once

#include <memory>

#include "mx/data/tokenizer.h"

namespace mx::data {

std::unique_ptr<Tokenizer> make_byte_tokenizer();

}  // namespace mx::data
