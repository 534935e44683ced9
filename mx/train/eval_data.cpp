#include "mx/train/eval_data.h"

#include "mx/data/corpus.h"
#include "mx/data/token_dataset.h"

namespace mx::train {

std::string load_eval_tokens(const std::string& data_spec, const data::Tokenizer& tokenizer,
                             const data::DataPaths& paths, EvalSplit split,
                             std::vector<uint32_t>* out) {
  data::Corpus corpus;
  if (std::string e = data::resolve_corpus(data_spec, paths, &corpus); !e.empty()) return e;
  std::vector<std::string> docs;
  const bool validation_files = !corpus.validation_files.empty();
  if (split == EvalSplit::kValidation && validation_files) {
    if (std::string e = data::read_documents(corpus.validation_files, &docs); !e.empty()) {
      return e;
    }
    *out = data::encode_documents(tokenizer, docs);
    return "";
  }
  if (std::string e = data::read_documents(corpus.train_files, &docs); !e.empty()) return e;
  std::vector<uint32_t> tokens = data::encode_documents(tokenizer, docs);
  if (split == EvalSplit::kAll) {
    if (validation_files) {
      if (std::string e = data::read_documents(corpus.validation_files, &docs); !e.empty()) {
        return e;
      }
      const std::vector<uint32_t> more = data::encode_documents(tokenizer, docs);
      tokens.insert(tokens.end(), more.begin(), more.end());
    }
    *out = std::move(tokens);
    return "";
  }
  const uint64_t n = data::tail_validation_count(tokens.size(), data::kValidationFraction);
  out->assign(tokens.end() - static_cast<std::ptrdiff_t>(n), tokens.end());
  return "";
}

}  // namespace mx::train
