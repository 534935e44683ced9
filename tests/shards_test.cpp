// Token shards and training batches: what is written reads back, every malformed file is
// refused with its offset named, and batches depend on the seed and the draw count alone.
#include <gtest/gtest.h>

#include <fstream>

#include "mx/data/batch_prefetch.h"
#include "mx/data/batch_sampler.h"
#include "mx/data/token_dataset.h"
#include "mx/data/token_shard.h"

namespace mx::data {
namespace {

namespace fs = std::filesystem;

fs::path temp_path(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / "mx_shards_test";
  fs::create_directories(dir);
  return dir / name;
}

std::vector<uint32_t> ramp(size_t n, uint32_t modulo) {
  std::vector<uint32_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = uint32_t((i * 7919) % modulo);
  return v;
}

std::vector<uint32_t> read_back(const TokenShard& shard) {
  std::vector<uint32_t> v;
  const TokenView t = shard.tokens();
  for (uint64_t i = 0; i < t.size(); ++i) v.push_back(t[i]);
  return v;
}

TEST(TokenShard, RoundTripsTwoAndFourByteTokens) {
  for (uint32_t vocab : {512u, 65536u, 70000u}) {
    const fs::path p = temp_path("round_trip.bin");
    const std::vector<uint32_t> tokens = ramp(1000, vocab);
    ASSERT_EQ(write_shard(p, tokens, vocab), "");
    TokenShard shard;
    ASSERT_EQ(open_shard(p, &shard), "");
    EXPECT_EQ(shard.header().token_bytes, vocab <= 65536 ? 2u : 4u);
    EXPECT_EQ(shard.header().vocab_size, vocab);
    EXPECT_EQ(fs::file_size(p), kShardHeaderBytes + 1000 * shard.header().token_bytes);
    EXPECT_EQ(read_back(shard), tokens);
  }
}

TEST(TokenShard, HoldsZeroTokens) {
  const fs::path p = temp_path("empty.bin");
  ASSERT_EQ(write_shard(p, {}, 10), "");
  TokenShard shard;
  ASSERT_EQ(open_shard(p, &shard), "");
  EXPECT_EQ(shard.tokens().size(), 0u);
}

TEST(TokenShard, WritesAtomicallyAndLeavesNoTemporaryFile) {
  const fs::path dir = temp_path("atomic");
  fs::remove_all(dir);
  fs::create_directories(dir);
  ASSERT_EQ(write_shard(dir / "s.bin", ramp(10, 50), 50), "");
  ASSERT_EQ(write_shard(dir / "s.bin", ramp(20, 50), 50), "");  // replaces
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  EXPECT_EQ(fs::file_size(dir / "s.bin"), kShardHeaderBytes + 40);
  EXPECT_NE(write_shard(dir / "missing" / "s.bin", ramp(10, 50), 50), "");
}

TEST(TokenShard, RefusesToWriteATokenOutsideTheVocabulary) {
  EXPECT_EQ(write_shard(temp_path("bad.bin"), std::vector<uint32_t>{1, 2, 9}, 9),
            "cannot write " + temp_path("bad.bin").string() +
                ": token 9 at index 2 is not below the vocab size 9");
}

// Writes a valid shard of tokens 0..9 (vocab 16), lets `damage` edit its bytes, opens it.
std::string open_damaged(const std::function<void(std::string*)>& damage) {
  const fs::path p = temp_path("damaged.bin");
  EXPECT_EQ(write_shard(p, ramp(10, 10), 16), "");
  std::string bytes;
  {
    std::ifstream in(p, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  damage(&bytes);
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
  TokenShard shard;
  const std::string e = open_shard(p, &shard);
  const std::string prefix = p.string() + ": ";
  return e.starts_with(prefix) ? e.substr(prefix.size()) : e;
}

template <typename T>
void put(std::string* bytes, size_t offset, T v) {
  std::memcpy(bytes->data() + offset, &v, sizeof(T));
}

TEST(TokenShard, RefusesEachMalformedFileNamingTheOffset) {
  EXPECT_EQ(open_damaged([](std::string* b) { b->clear(); }),
            "truncated header: the file ends at offset 0, the header needs 40 bytes");
  EXPECT_EQ(open_damaged([](std::string* b) { b->resize(39); }),
            "truncated header: the file ends at offset 39, the header needs 40 bytes");
  EXPECT_EQ(open_damaged([](std::string* b) { (*b)[0] = 'X'; }),
            "bad magic at offset 0 (expected \"MXTOKENS\"): not a token shard");
  EXPECT_EQ(open_damaged([](std::string* b) { put<uint32_t>(b, 8, 2); }),
            "unsupported version 2 at offset 8 (this build reads 1)");
  EXPECT_EQ(open_damaged([](std::string* b) { put<uint32_t>(b, 12, 3); }),
            "token width 3 at offset 12 (must be 2 or 4)");
  EXPECT_EQ(open_damaged([](std::string* b) { put<uint32_t>(b, 24, 70000); }),
            "vocab size 70000 at offset 24 does not fit 2-byte tokens");
  EXPECT_EQ(open_damaged([](std::string* b) { put<uint32_t>(b, 28, 1); }),
            "reserved field at offset 28 is 1, expected 0");
  EXPECT_EQ(open_damaged([](std::string* b) { b->resize(b->size() - 1); }),
            "truncated: the header (offset 16) says 10 tokens, 20 bytes from offset 40, but the "
            "file ends at offset 59");
  EXPECT_EQ(open_damaged([](std::string* b) { put<uint64_t>(b, 16, uint64_t(1) << 63); }),
            "truncated: the header (offset 16) says 9223372036854775808 tokens, more than any "
            "file holds");
  EXPECT_EQ(open_damaged([](std::string* b) { b->append("\0\0", 2); }),
            "token count mismatch: the header (offset 16) says 10 tokens, which end at offset 60, "
            "but the file goes on to offset 62");
  const std::string checksum = open_damaged([](std::string* b) { (*b)[45] ^= 1; });
  EXPECT_TRUE(checksum.starts_with("checksum mismatch: the header (offset 32) says 0x"))
      << checksum;
  EXPECT_NE(checksum.find(", the payload at offsets 40..60 hashes to 0x"), std::string::npos);
  // A token at or above the vocab size, behind a valid checksum (the header is not hashed).
  EXPECT_EQ(open_damaged([](std::string* b) { put<uint32_t>(b, 24, 7); }),
            "token 9 at offset 42 (index 1) is not below the vocab size 7");
}

TEST(SamplerRandom, IsSplitMix64CountedFromTheSeed) {
  // The published first outputs of SplitMix64 seeded with 0: checkpoints depend on them.
  SamplerState s{0, 0};
  EXPECT_EQ(next_random(&s), 0xE220A8397B1DCDAFull);
  EXPECT_EQ(next_random(&s), 0x6E789E6AA1B965F4ull);
  EXPECT_EQ(next_random(&s), 0x06C45D188009454Full);
  EXPECT_EQ(s.draws, 3u);
  SamplerState jump{0, 2};  // the state alone decides the next draw
  EXPECT_EQ(next_random(&jump), 0x06C45D188009454Full);
}

TEST(SamplerRandom, DrawsBelowABoundReachEveryValue) {
  SamplerState s{42, 0};
  std::vector<int> seen(7);
  for (int i = 0; i < 700; ++i) ++seen[next_below(&s, 7)];
  for (int c : seen) EXPECT_GT(c, 60);
}

TEST(SampleBatch, TargetsAreInputsShiftedByOneInsideTheShard) {
  const std::vector<uint32_t> tokens = ramp(100, 1 << 20);  // distinct: positions are visible
  SamplerState s{1, 0};
  Batch b;
  ASSERT_EQ(sample_batch(TokenView::of(tokens), 8, 16, &s, &b), "");
  ASSERT_EQ(b.inputs.size(), 8u * 16);
  for (int row = 0; row < 8; ++row) {
    const auto start = std::find(tokens.begin(), tokens.end(), b.inputs[row * 16]);
    ASSERT_LE(start + 17, tokens.end());
    for (int t = 0; t < 16; ++t) {
      EXPECT_EQ(b.inputs[row * 16 + t], start[t]);
      EXPECT_EQ(b.targets[row * 16 + t], start[t + 1]);
    }
  }
}

TEST(SampleBatch, DependsOnlyOnTheSeedAndResumesFromASavedState) {
  const std::vector<uint32_t> tokens = ramp(5000, 300);
  const TokenView view = TokenView::of(tokens);
  SamplerState a{123, 0}, b{123, 0}, other{124, 0};
  Batch x, y, z;
  for (int step = 0; step < 3; ++step) {
    ASSERT_EQ(sample_batch(view, 4, 32, &a, &x), "");
    ASSERT_EQ(sample_batch(view, 4, 32, &b, &y), "");
    ASSERT_EQ(sample_batch(view, 4, 32, &other, &z), "");
    EXPECT_EQ(x.inputs, y.inputs);
    EXPECT_NE(x.inputs, z.inputs);
  }
  const SamplerState saved = a;  // a checkpoint
  std::vector<std::vector<uint32_t>> continued, resumed;
  for (int step = 0; step < 3; ++step) {
    ASSERT_EQ(sample_batch(view, 4, 32, &a, &x), "");
    continued.push_back(x.inputs);
  }
  SamplerState restored = saved;
  for (int step = 0; step < 3; ++step) {
    ASSERT_EQ(sample_batch(view, 4, 32, &restored, &x), "");
    resumed.push_back(x.inputs);
  }
  EXPECT_EQ(continued, resumed);
  EXPECT_EQ(restored.draws, a.draws);
}

TEST(SampleBatch, NeedsOneSequenceAndItsTargets) {
  const std::vector<uint32_t> tokens(16);
  SamplerState s;
  Batch b;
  EXPECT_EQ(sample_batch(TokenView::of(tokens), 2, 16, &s, &b),
            "16 tokens cannot fill one sequence of 16 inputs and its targets");
  EXPECT_EQ(sample_batch(TokenView::of(tokens), 2, 15, &s, &b), "");
  EXPECT_EQ(sample_batch(TokenView::of(tokens), 0, 4, &s, &b),
            "batch 0 and sequence length 4 must both be at least 1");
}

TEST(BatchPrefetcher, GivesSampleBatchsBatchesAndStatesInTurn) {
  const std::vector<uint32_t> tokens = ramp(5000, 300);
  const TokenView view = TokenView::of(tokens);
  SamplerState in_turn{77, 5};
  BatchPrefetcher ahead(view, 4, 32, in_turn);
  for (int step = 0; step < 20; ++step) {
    Batch expected, got;
    SamplerState after;
    ASSERT_EQ(sample_batch(view, 4, 32, &in_turn, &expected), "");
    ASSERT_EQ(ahead.next(&got, &after), "");
    EXPECT_EQ(got.rows, 4);
    EXPECT_EQ(got.seq_len, 32);
    EXPECT_EQ(got.inputs, expected.inputs);
    EXPECT_EQ(got.targets, expected.targets);
    EXPECT_EQ(after.seed, in_turn.seed);
    EXPECT_EQ(after.draws, in_turn.draws);
  }
  // Destroyed here with batches drawn ahead and not taken.
}

TEST(BatchPrefetcher, RepeatsSampleBatchsErrorAtEveryCall) {
  const std::vector<uint32_t> tokens(16);
  BatchPrefetcher ahead(TokenView::of(tokens), 2, 16, SamplerState{});
  Batch b;
  SamplerState after{9, 9};
  for (int call = 0; call < 2; ++call) {
    EXPECT_EQ(ahead.next(&b, &after),
              "16 tokens cannot fill one sequence of 16 inputs and its targets");
  }
  EXPECT_EQ(after.draws, 9u);  // untouched on failure
}

TEST(EvalBatch, CoversEveryTargetOnceInOrder) {
  std::vector<uint32_t> tokens(103);
  for (uint32_t i = 0; i < tokens.size(); ++i) tokens[i] = i;
  const TokenView view = TokenView::of(tokens);
  // 102 targets / 10 per window = 10 windows; batches of 4: 4, 4, 2.
  ASSERT_EQ(eval_window_count(view, 10), 10);
  ASSERT_EQ(eval_batch_count(view, 4, 10), 3);
  std::vector<uint32_t> targets;
  for (int64_t i = 0; i < 3; ++i) {
    Batch b;
    ASSERT_EQ(eval_batch(view, 4, 10, i, &b), "");
    EXPECT_EQ(b.rows, i < 2 ? 4 : 2);
    for (size_t k = 0; k < b.inputs.size(); ++k) EXPECT_EQ(b.targets[k], b.inputs[k] + 1);
    targets.insert(targets.end(), b.targets.begin(), b.targets.end());
  }
  for (uint32_t k = 0; k < targets.size(); ++k) EXPECT_EQ(targets[k], k + 1);
  Batch b;
  EXPECT_EQ(eval_batch(view, 4, 10, 3, &b), "evaluation batch 3 does not exist: there are 3");
}

// A batch larger than the split is one batch of every window: its count once overflowed to zero
// for a batch near 2^63, and evaluation reported NaN for zero tokens.
TEST(EvalBatch, ABatchBeyondTheSplitIsOneBatchOfEveryWindow) {
  std::vector<uint32_t> tokens(103);
  for (uint32_t i = 0; i < tokens.size(); ++i) tokens[i] = i;
  const TokenView view = TokenView::of(tokens);
  for (const int64_t batch : {int64_t{10}, int64_t{11}, int64_t{1} << 40, INT64_MAX}) {
    ASSERT_EQ(eval_batch_count(view, batch, 10), 1) << batch;
    Batch b;
    ASSERT_EQ(eval_batch(view, batch, 10, 0, &b), "");
    EXPECT_EQ(b.rows, 10);
  }
}

// Every byte its own token; BOS is 256.
class ByteTokenizer final : public Tokenizer {
 public:
  std::string_view kind() const override { return "bytes"; }
  uint32_t vocab_size() const override { return 257; }
  std::vector<uint32_t> encode(std::string_view text) const override {
    return {text.begin(), text.end()};
  }
  std::string decode(std::span<const uint32_t> ids) const override {
    return {ids.begin(), ids.end()};
  }
  std::optional<uint32_t> bos_id() const override { return 256; }
  std::optional<uint32_t> eos_id() const override { return std::nullopt; }
};

TEST(TokenDataset, HoldsOutTheLastTenthOrTheValidationFiles) {
  const fs::path dir = temp_path("dataset");
  fs::create_directories(dir / "corpus");
  std::ofstream(dir / "corpus" / "a.txt") << std::string(59, 'a');
  std::ofstream(dir / "corpus" / "b.txt") << std::string(39, 'b');
  std::ofstream(dir / "held_out.txt") << "zz";
  Corpus corpus{"test", {dir / "corpus" / "a.txt", dir / "corpus" / "b.txt"}, {}};
  TokenDatasetSummary s;
  ASSERT_EQ(write_token_dataset(corpus, ByteTokenizer(), dir / "out", &s), "");
  EXPECT_EQ(s.train_tokens, 90u);  // 60 + 40 tokens with BOS; the last 10 held out
  EXPECT_EQ(s.validation_tokens, 10u);
  TokenShard train, val;
  ASSERT_EQ(open_shard(dir / "out" / "train.bin", &train), "");
  ASSERT_EQ(open_shard(dir / "out" / "val.bin", &val), "");
  EXPECT_EQ(train.tokens()[0], 256u);
  EXPECT_EQ(train.tokens()[60], 256u);
  EXPECT_EQ(val.tokens()[9], uint32_t('b'));
  EXPECT_EQ(val.header().vocab_size, 257u);

  corpus.validation_files = {dir / "held_out.txt"};
  ASSERT_EQ(write_token_dataset(corpus, ByteTokenizer(), dir / "out", &s), "");
  EXPECT_EQ(s.train_tokens, 100u);
  EXPECT_EQ(s.validation_tokens, 3u);
}

}  // namespace
}  // namespace mx::data
