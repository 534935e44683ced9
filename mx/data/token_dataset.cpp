#include "mx/data/token_dataset.h"

#include "mx/data/token_shard.h"
#include "mx/io/output_folder.h"

namespace mx::data {

std::vector<uint32_t> encode_documents(const Tokenizer& tokenizer,
                                       std::span<const std::string> documents) {
  std::vector<uint32_t> tokens;
  const std::optional<uint32_t> bos = tokenizer.bos_id();
  for (const std::string& doc : documents) {
    if (bos) tokens.push_back(*bos);
    const std::vector<uint32_t> ids = tokenizer.encode(doc);
    tokens.insert(tokens.end(), ids.begin(), ids.end());
  }
  return tokens;
}

uint64_t tail_validation_count(uint64_t total, double fraction) {
  if (!(fraction > 0)) return 0;
  if (fraction >= 1) return total;
  return uint64_t(double(total) * fraction);
}

std::string encode_splits(const Corpus& corpus, const Tokenizer& tokenizer,
                          std::vector<uint32_t>* train, std::vector<uint32_t>* validation) {
  std::vector<std::string> docs;
  if (std::string e = read_documents(corpus.train_files, &docs); !e.empty()) return e;
  *train = encode_documents(tokenizer, docs);
  if (!corpus.validation_files.empty()) {
    if (std::string e = read_documents(corpus.validation_files, &docs); !e.empty()) return e;
    *validation = encode_documents(tokenizer, docs);
  } else {
    const uint64_t n = tail_validation_count(train->size(), kValidationFraction);
    validation->assign(train->end() - int64_t(n), train->end());
    train->resize(train->size() - n);
  }
  return "";
}

std::string write_token_dataset(const Corpus& corpus, const Tokenizer& tokenizer,
                                const std::filesystem::path& out_dir,
                                TokenDatasetSummary* summary) {
  std::vector<uint32_t> train, validation;
  if (std::string e = encode_splits(corpus, tokenizer, &train, &validation); !e.empty()) return e;
  io::OutputFolder folder;
  if (std::string e = folder.open(out_dir.string()); !e.empty()) return e;
  TokenDatasetSummary s;
  s.train_path = out_dir / "train.bin";
  s.validation_path = out_dir / "val.bin";
  s.train_tokens = train.size();
  s.validation_tokens = validation.size();
  s.vocab_size = tokenizer.vocab_size();
  if (std::string e = write_shard(folder.file("train.bin"), train, s.vocab_size); !e.empty()) {
    return folder.named(e);
  }
  if (std::string e = write_shard(folder.file("val.bin"), validation, s.vocab_size); !e.empty()) {
    return folder.named(e);
  }
  if (std::string e = folder.commit(); !e.empty()) return e;
  *summary = s;
  return "";
}

}  // namespace mx::data
