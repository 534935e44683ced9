#include "mx/train/eval_data.h"

#include "mx/data/corpus.h"
#include "mx/data/token_dataset.h"

namespace mx::train {

std::string load_eval_tokens(const std::string& data_spec, const data::Tokenizer& tokenizer,
                             const data::DataPaths& paths, EvalSplit split,
                             std::vector<uint32_t>* out) {
  data::Corpus corpus;
  if (std::string e = data::resolve_corpus(data_spec, paths, &corpus); !e.empty()) return e;
  if (split != EvalSplit::kAll && !corpus.validation_files.empty()) {
    // Validation files of their own (wikitext2, study): the train files need not be encoded.
    std::vector<std::string> docs;
    if (std::string e = data::read_documents(corpus.validation_files, &docs); !e.empty()) return e;
    *out = data::encode_documents(tokenizer, docs);
    return "";
  }
  std::vector<uint32_t> train, validation;
  if (std::string e = data::encode_splits(corpus, tokenizer, &train, &validation); !e.empty()) {
    return e;
  }
  if (split == EvalSplit::kAll) {
    // Train then validation tokens: for a held-out tail, the corpus in its order.
    train.insert(train.end(), validation.begin(), validation.end());
    *out = std::move(train);
  } else {
    *out = std::move(validation);
  }
  return "";
}

}  // namespace mx::train
