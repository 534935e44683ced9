// The tokenizers: GPT-2's byte-level BPE reproduces the reference ids, llama2.c's encoder
// makes run.c's choices on tok512.bin, SentencePiece trains deterministically, and each
// decodes what it encodes.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "mx/data/gpt2_pretokenize.h"
#include "mx/data/gpt2_tokenizer.h"
#include "mx/data/llama2c_tokenizer.h"
#include "mx/data/sentencepiece_tokenizer.h"
#include "mx/data/unicode.h"
#include "tests/data_dir.h"

namespace mx::data {
namespace {

namespace fs = std::filesystem;

using testing::data_dir;
using testing::read_file;

TEST(Unicode, ClassifiesLettersNumbersAndWhiteSpaceBeyondAscii) {
  EXPECT_TRUE(is_letter(U'é') && is_letter(U'Ж') && is_letter(U'中') && is_letter(U'ក'));
  EXPECT_FALSE(is_letter(U'1') || is_letter(U'!') || is_letter(U'🚀') || is_letter(U'\u17D2'));
  EXPECT_TRUE(is_number(U'7') && is_number(U'٣') && is_number(U'½') && is_number(U'Ⅻ'));
  EXPECT_FALSE(is_number(U'a'));
  EXPECT_TRUE(is_white_space(U'\t') && is_white_space(U'\u00A0') && is_white_space(U'\u3000'));
  EXPECT_FALSE(is_white_space(U'\u200B'));  // ZERO WIDTH SPACE is not White_Space
}

TEST(Unicode, MalformedUtf8DecodesOneByteAtATime) {
  EXPECT_EQ(decode_utf8("\xC3\xA9", 0).codepoint, U'é');
  EXPECT_EQ(decode_utf8("\xC3\xA9", 0).length, 2);
  for (std::string_view bad : {"\x80", "\xC3", "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80"}) {
    const Utf8Step s = decode_utf8(bad, 0);
    EXPECT_FALSE(s.valid) << bad;
    EXPECT_EQ(s.length, 1);
  }
}

std::vector<std::string> pieces(std::string_view text) {
  std::vector<std::string> out;
  for (std::string_view p : gpt2_pretokenize(text)) out.emplace_back(p);
  return out;
}

TEST(Gpt2Pretokenize, SplitsLikeTheGpt2Pattern) {
  using V = std::vector<std::string>;
  EXPECT_EQ(pieces("Hello, world!"), (V{"Hello", ",", " world", "!"}));
  EXPECT_EQ(pieces("I've 'RE we'll"), (V{"I", "'ve", " '", "RE", " we", "'ll"}));
  EXPECT_EQ(pieces("   Hello"), (V{"  ", " Hello"}));        // the last space joins the word
  EXPECT_EQ(pieces("a \n\tb"), (V{"a", " \n", "\t", "b"}));  // \s+(?!\S), then \s+
  EXPECT_EQ(pieces("x  "), (V{"x", "  "}));                  // trailing white space stays whole
  EXPECT_EQ(pieces("3.14 2x"), (V{"3", ".", "14", " 2", "x"}));
  EXPECT_EQ(pieces("\xFF\xFEok"), (V{"\xFF\xFE", "ok"}));  // invalid bytes are symbols
}

TEST(Gpt2ByteMap, IsABijectionOntoPrintableCharacters) {
  const auto map = gpt2_byte_to_unicode();
  EXPECT_EQ(map['A'], U'A');
  EXPECT_EQ(map[' '], U'\u0120');  // the familiar "Ġ"
  EXPECT_EQ(map['\n'], U'\u010A');
  std::vector<char32_t> sorted(map.begin(), map.end());
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end());
  for (char32_t c : map) EXPECT_FALSE(is_white_space(c));
}

class Gpt2Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (data_dir().empty()) return;
    const fs::path d = data_dir() / "gpt2";
    load_error_ = load_gpt2_tokenizer(d / "encoder.json", d / "vocab.bpe", &tokenizer_);
  }
  void SetUp() override {
    REQUIRE_DATA_DIR();
    ASSERT_EQ(load_error_, "");
  }
  static inline std::unique_ptr<Tokenizer> tokenizer_;
  static inline std::string load_error_;
};

TEST_F(Gpt2Test, ReproducesAll46ReferenceCases) {
  const std::string inputs = read_file(data_dir() / "tokenizer-tests" / "gpt2.inp");
  std::istringstream outputs(read_file(data_dir() / "tokenizer-tests" / "gpt2.out"));
  const std::string separator = "\n__ggml_vocab_test__\n";
  int cases = 0;
  for (size_t pos = 0; pos < inputs.size(); ++cases) {
    size_t end = inputs.find(separator, pos);
    ASSERT_NE(end, std::string::npos);
    const std::string text = inputs.substr(pos, end - pos);
    pos = end + separator.size();
    std::string line;
    ASSERT_TRUE(std::getline(outputs, line));
    std::vector<uint32_t> want;
    std::istringstream ids(line);
    for (uint32_t id; ids >> id;) want.push_back(id);
    const std::vector<uint32_t> got = tokenizer_->encode(text);
    EXPECT_EQ(got, want) << "case " << cases << ": \"" << text << "\"";
    EXPECT_EQ(tokenizer_->decode(got), text) << "case " << cases;
  }
  EXPECT_EQ(cases, 46);
}

TEST_F(Gpt2Test, KnowsItsSizeAndEndOfText) {
  EXPECT_EQ(tokenizer_->vocab_size(), 50257u);
  EXPECT_EQ(tokenizer_->bos_id(), 50256u);
  EXPECT_EQ(tokenizer_->decode(std::vector<uint32_t>{50256}), "<|endoftext|>");
}

TEST_F(Gpt2Test, RoundTripsArbitraryBytes) {
  std::mt19937 rng(7);
  std::string text;
  for (int i = 0; i < 2000; ++i) text.push_back(char(rng() % 256));
  EXPECT_EQ(tokenizer_->decode(tokenizer_->encode(text)), text);
}

// A llama2.c tokenizer file with these pieces and scores.
fs::path write_llama2c_file(const std::string& name,
                            const std::vector<std::pair<std::string, float>>& vocab) {
  const fs::path p = fs::path(::testing::TempDir()) / name;
  std::ofstream out(p, std::ios::binary);
  const int32_t max_len = 8;
  out.write(reinterpret_cast<const char*>(&max_len), 4);
  for (const auto& [piece, score] : vocab) {
    const int32_t len = int32_t(piece.size());
    out.write(reinterpret_cast<const char*>(&score), 4);
    out.write(reinterpret_cast<const char*>(&len), 4);
    out.write(piece.data(), len);
  }
  return p;
}

TEST(Llama2cTokenizer, MergesTheLeftmostOfEqualScoresFirst) {
  // "aba": "ab" and "ba" both score 0; run.c's scan takes the leftmost, "ab".
  Llama2cVocab v;
  ASSERT_EQ(load_llama2c_vocab(write_llama2c_file("ties.bin", {{"<unk>", 0},
                                                               {"\n<s>\n", 0},
                                                               {"\n</s>\n", 0},
                                                               {" ", -1},
                                                               {"a", -1},
                                                               {"b", -1},
                                                               {"ba", 0},
                                                               {"ab", 0}}),
                               &v),
            "");
  EXPECT_FALSE(v.byte_fallback);
  EXPECT_EQ(llama2c_encode(v, "aba"), (std::vector<uint32_t>{3, 7, 4}));
  EXPECT_EQ(llama2c_encode(v, "c"), (std::vector<uint32_t>{3, kLlama2cUnk}));  // no bytes
  EXPECT_EQ(llama2c_encode(v, ""), std::vector<uint32_t>{});  // no dummy prefix either
}

TEST(Llama2cTokenizer, RejectsATruncatedFileNamingTheOffset) {
  const fs::path p = write_llama2c_file("cut.bin", {{"<unk>", 0}, {"\n<s>\n", 0}});
  fs::resize_file(p, fs::file_size(p) - 2);
  Llama2cVocab v;
  EXPECT_EQ(load_llama2c_vocab(p, &v),
            p.string() + ": token 1 at offset 17 has length 5 beyond the end of the file");
}

// run.c's encoder as written there: rescan every pair after each merge. The oracle for the
// heap version.
std::vector<uint32_t> scan_encode(const Llama2cVocab& v, std::string_view text) {
  std::vector<uint32_t> t;
  if (!text.empty()) t.push_back(v.id_of.at(" "));
  for (size_t i = 0; i < text.size();) {
    size_t n = 1;
    while (i + n < text.size() && (uint8_t(text[i + n]) & 0xC0) == 0x80 && n < 4) ++n;
    auto it = v.id_of.find(std::string(text.substr(i, n)));
    if (it != v.id_of.end()) {
      t.push_back(it->second);
    } else {
      for (size_t k = 0; k < n; ++k) t.push_back(uint8_t(text[i + k]) + 3);
    }
    i += n;
  }
  for (;;) {
    float best = -1e10f;
    size_t at = t.size();
    uint32_t id = 0;
    for (size_t i = 0; i + 1 < t.size(); ++i) {
      auto it = v.id_of.find(v.pieces[t[i]] + v.pieces[t[i + 1]]);
      if (it != v.id_of.end() && v.scores[it->second] > best) {
        best = v.scores[it->second], at = i, id = it->second;
      }
    }
    if (at == t.size()) return t;
    t[at] = id;
    t.erase(t.begin() + at + 1);
  }
}

class Llama2cTok512Test : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_DATA_DIR();
    ASSERT_EQ(load_llama2c_vocab(data_dir() / "stories260K" / "tok512.bin", &vocab_), "");
  }
  Llama2cVocab vocab_;
};

TEST_F(Llama2cTok512Test, EncodesAHandDerivedExample) {
  // Pieces " "=410 "a"=412 "c"=429 "t"=413; merges " a"=261 (score -2), " c"=280 (-21),
  // "at"=294 (-35); "a ", "ca", " a c", " cat" do not exist. So " a" " c" "a" "t" merges
  // " a" first, then " c", then "at": 261 280 294.
  ASSERT_EQ(vocab_.pieces.size(), 512u);
  EXPECT_TRUE(vocab_.byte_fallback);
  EXPECT_EQ(llama2c_encode(vocab_, "a cat"), (std::vector<uint32_t>{261, 280, 294}));
  EXPECT_EQ(llama2c_encode(vocab_, "Once upon a time"),
            (std::vector<uint32_t>{403, 407, 261, 378}));
}

TEST_F(Llama2cTok512Test, FallsBackToByteTokensAndDecodesThemAsRawBytes) {
  // U+1F600 is not in the vocabulary: its four bytes become ids byte + 3.
  const std::vector<uint32_t> ids = llama2c_encode(vocab_, "a\xF0\x9F\x98\x80\n");
  EXPECT_EQ(ids, (std::vector<uint32_t>{261, 0xF0 + 3, 0x9F + 3, 0x98 + 3, 0x80 + 3, 0x0A + 3}));
  EXPECT_EQ(llama2c_decode(vocab_, ids), "a\xF0\x9F\x98\x80\n");
}

TEST_F(Llama2cTok512Test, StripsTheLeadingSpaceOnlyRightAfterBos) {
  EXPECT_EQ(llama2c_decode_piece(vocab_, kLlama2cBos, 403), "Once");
  EXPECT_EQ(llama2c_decode_piece(vocab_, 261, 403), " Once");
  EXPECT_EQ(llama2c_decode(vocab_, std::vector<uint32_t>{kLlama2cBos, 403, 407, kLlama2cEos}),
            "Once upon");
}

TEST_F(Llama2cTok512Test, RoundTripsTheSampleStoriesAndMatchesRunCsScan) {
  const std::string sample = read_file(data_dir() / "stories260K" / "tinystories_sample.txt");
  std::istringstream lines(sample);
  int checked = 0;
  for (std::string line; std::getline(lines, line); ++checked) {
    const std::vector<uint32_t> ids = llama2c_encode(vocab_, line);
    EXPECT_EQ(ids, scan_encode(vocab_, line)) << line;
    EXPECT_EQ(llama2c_decode(vocab_, ids), line);
  }
  EXPECT_GT(checked, 5);
  const std::string story = sample.substr(0, 2000);  // newlines and quotes in one string
  EXPECT_EQ(llama2c_decode(vocab_, llama2c_encode(vocab_, story)), story);
}

TEST_F(Llama2cTok512Test, MatchesRunCsScanOnRandomText) {
  // Frequent letters, a missing character, a known two-byte one, stray continuation bytes.
  const std::vector<std::string> parts = {"a",        "t",
                                          "h",        "e",
                                          " ",        "  ",
                                          "\n",       "The",
                                          "\xC3\xA9", "\xF0\x9F\x98\x80",
                                          "\x80",     "\xBF\xBF\xBF\xBF\xBF",
                                          "."};
  std::mt19937 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    std::string text;
    for (int i = 0, n = int(rng() % 40); i < n; ++i) text += parts[rng() % parts.size()];
    const std::vector<uint32_t> ids = llama2c_encode(vocab_, text);
    ASSERT_EQ(ids, scan_encode(vocab_, text)) << trial;
    EXPECT_EQ(llama2c_decode(vocab_, ids), text) << trial;
  }
}

// Small text to train on: the start of Tiny Shakespeare, or generated sentences without it.
std::string training_text() {
  if (!data_dir().empty()) {
    return read_file(data_dir() / "tinyshakespeare" / "input.txt").substr(0, 24000);
  }
  const char* words[] = {"the",  "king", "shall", "speak", "of",     "war", "and", "peace", "my",
                         "lord", "good", "night", "sweet", "prince", "to",  "be",  "or",    "not"};
  std::mt19937 rng(1);
  std::string text;
  for (int line = 0; line < 800; ++line) {
    for (int w = 0; w < 8; ++w) text += std::string(w ? " " : "") + words[rng() % 18];
    text += line % 7 ? ".\n" : ", 1603!\n";
  }
  return text;
}

TEST(SentencePiece, TrainsTheSameModelTwiceAndRoundTripsText) {
  SentencePieceTrainOptions o;
  o.vocab_size = 400;
  const std::string text = training_text();
  std::string a, b;
  ASSERT_EQ(train_sentencepiece(text, o, &a), "");
  ASSERT_EQ(train_sentencepiece(text, o, &b), "");
  EXPECT_EQ(a, b);
  std::unique_ptr<Tokenizer> t;
  ASSERT_EQ(load_sentencepiece_tokenizer_from_bytes(a, &t), "");
  EXPECT_EQ(t->kind(), "sentencepiece");
  EXPECT_LE(t->vocab_size(), 400u);
  EXPECT_EQ(t->bos_id(), 1u);
  EXPECT_EQ(t->eos_id(), 2u);
  // Unseen characters, digits, tabs and newlines come back through byte fallback.
  for (std::string s : {std::string("the king shall speak"), text.substr(0, 500),
                        std::string("  Zwölf  \t🚀 42\nnew line ")}) {
    const std::vector<uint32_t> ids = t->encode(s);
    EXPECT_LT(ids.size(), s.size() + 2);
    EXPECT_EQ(t->decode(ids), s);
  }
}

TEST(SentencePiece, RefusesAVocabularyWithoutRoomForTheBytePieces) {
  SentencePieceTrainOptions o;
  o.vocab_size = 100;
  std::string model;
  EXPECT_EQ(train_sentencepiece("some text\n", o, &model),
            "vocab size 100 is too small: 3 special and 256 byte pieces come first");
  EXPECT_NE(train_sentencepiece("", SentencePieceTrainOptions{}, &model), "");
}

TEST(LoadTokenizer, PicksTheKindFromTheFileAndExplainsUnknownOnes) {
  std::unique_ptr<Tokenizer> t;
  EXPECT_EQ(load_tokenizer("/nonexistent/tok.model", {}, &t),
            "tokenizer /nonexistent/tok.model not found");
  EXPECT_EQ(load_tokenizer("gpt2", {}, &t),
            "tokenizer 'gpt2' is looked up in MX_DATA_DIR, which is not set");
  const fs::path odd = fs::path(::testing::TempDir()) / "vocab.txt";
  std::ofstream(odd) << "x";
  EXPECT_NE(load_tokenizer(odd.string(), {}, &t).find("unknown kind"), std::string::npos);
  REQUIRE_DATA_DIR();
  ASSERT_EQ(load_tokenizer((data_dir() / "stories260K" / "tok512.bin").string(), {}, &t), "");
  EXPECT_EQ(t->kind(), "llama2c");
  EXPECT_EQ(check_ids(*t, std::vector<uint32_t>{1, 512}),
            "token id 512 (position 1) is not below the vocabulary size 512");
  ASSERT_EQ(load_tokenizer("gpt2", {data_dir(), {}}, &t), "");
  EXPECT_EQ(t->kind(), "gpt2");
}

// A file that is no SentencePiece model says so, without the library's source locations.
TEST(SentencePiece, AFileThatIsNoModelIsNamedInWords) {
  const fs::path junk = fs::path(::testing::TempDir()) / "junk.model";
  std::ofstream(junk, std::ios::binary) << "\x01\xff\x07 these bytes are no protobuf";
  const fs::path empty = fs::path(::testing::TempDir()) / "empty.model";
  std::ofstream(empty, std::ios::binary).flush();
  std::unique_ptr<Tokenizer> t;
  EXPECT_EQ(load_tokenizer(junk.string(), {}, &t),
            junk.string() + ": not a SentencePiece model (its bytes are not a model's protobuf)");
  EXPECT_EQ(load_tokenizer(empty.string(), {}, &t),
            empty.string() + ": an empty file, not a SentencePiece model");
}

// A llama2.c tokenizer file holds no count: cut at a piece's end it loads as a smaller
// vocabulary, and only the model it serves can tell. Each piece is one of the model's ids, so
// the counts must be equal; other tokenizers may leave a model's padded ids unused.
TEST(LoadTokenizer, ALlamaTwoCTokenizerMustHoldOnePiecePerModelId) {
  std::unique_ptr<Tokenizer> bytes;
  ASSERT_EQ(load_tokenizer("bytes", {}, &bytes), "");
  EXPECT_EQ(check_tokenizer_fits_model(*bytes, 256), "");
  EXPECT_EQ(check_tokenizer_fits_model(*bytes, 320), "");
  EXPECT_EQ(check_tokenizer_fits_model(*bytes, 255),
            "the tokenizer has 256 tokens, more than the model's 255");
  REQUIRE_DATA_DIR();
  const fs::path full = data_dir() / "stories260K" / "tok512.bin";
  std::unique_ptr<Tokenizer> t;
  ASSERT_EQ(load_tokenizer(full.string(), {}, &t), "");
  EXPECT_EQ(check_tokenizer_fits_model(*t, 512), "");
  EXPECT_NE(check_tokenizer_fits_model(*t, 520), "");
  // The first 100 bytes end at a piece's end: seven pieces.
  std::ifstream in(full, std::ios::binary);
  std::string head(100, '\0');
  in.read(head.data(), 100);
  const fs::path cut = fs::path(::testing::TempDir()) / "tok_cut.bin";
  std::ofstream(cut, std::ios::binary) << head;
  ASSERT_EQ(load_tokenizer(cut.string(), {}, &t), "");
  EXPECT_EQ(check_tokenizer_fits_model(*t, 512),
            "the llama2.c tokenizer has 7 pieces and the model 512 ids; such a tokenizer holds "
            "one piece per id (a truncated file?)");
}

}  // namespace
}  // namespace mx::data
