// The tokens a model is evaluated on: a corpus (corpus.h) tokenized with the model's tokenizer,
// either its validation split (the validation files, else the last 10% of the tokens, as
// training holds out) or all of it (for a model that never saw the text, e.g. stories260K on
// a TinyStories sample).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mx/data/paths.h"
#include "mx/data/tokenizer.h"

namespace mx::train {

enum class EvalSplit { kValidation, kAll };

std::string load_eval_tokens(const std::string& data_spec, const data::Tokenizer& tokenizer,
                             const data::DataPaths& paths, EvalSplit split,
                             std::vector<uint32_t>* out);

}  // namespace mx::train
