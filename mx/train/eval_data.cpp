#include "mx/train/eval_data.h"

#include "mx/data/corpus.h"
#include "mx/data/llmc_shards.h"
#include "mx/data/token_dataset.h"
#include "mx/data/token_shard_folder.h"
#include "mx/io/memory_budget.h"

namespace mx::train {

std::string load_eval_tokens(const std::string& data_spec, const data::Tokenizer& tokenizer,
                             const data::DataPaths& paths, EvalSplit split,
                             std::vector<uint32_t>* out) {
  if (data::is_token_shard_folder(data_spec)) {
    // `mx tokenizer shards`' two splits: the validation one, or both, training first.
    data::TokenShard train, validation;
    if (std::string e =
            data::open_token_shard_folder(data_spec, tokenizer.vocab_size(), &train, &validation);
        !e.empty()) {
      return e;
    }
    const double count = double(validation.header().token_count) +
                         (split == EvalSplit::kAll ? double(train.header().token_count) : 0.0);
    if (std::string e = io::check_memory(4.0 * count, "reading the shards of " + data_spec);
        !e.empty()) {
      return e;
    }
    out->clear();
    for (const data::TokenShard* shard : {&train, &validation}) {
      if (shard == &train && split != EvalSplit::kAll) continue;
      const data::TokenView tokens = shard->tokens();
      for (uint64_t i = 0; i < tokens.size(); ++i) out->push_back(tokens[i]);
    }
    return "";
  }
  if (data::is_llmc_shard_folder(data_spec)) {
    // Already tokenized: the validation shards, or every shard, training ones first.
    data::LlmcShards shards;
    if (std::string e = data::find_llmc_shards(data_spec, &shards); !e.empty()) return e;
    std::vector<std::filesystem::path> files = shards.validation;
    if (split == EvalSplit::kAll)
      files.insert(files.begin(), shards.train.begin(), shards.train.end());
    double count = 0;
    for (const std::filesystem::path& file : files) {
      int64_t n = 0;
      if (std::string e = data::llmc_shard_token_count(file, &n); !e.empty()) return e;
      count += double(n);
    }
    if (std::string e = io::check_memory(4.0 * count, "reading the shards of " + data_spec);
        !e.empty()) {
      return e;
    }
    out->clear();
    for (const std::filesystem::path& file : files) {
      if (std::string e = data::read_llmc_shard(file, tokenizer.vocab_size(), out); !e.empty()) {
        return e;
      }
    }
    return "";
  }
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
