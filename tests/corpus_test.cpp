// Corpus names, files and folders resolve to the files to read, and a missing corpus says how
// to get it. Built on a fake data folder, so these run without MX_DATA_DIR.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "mx/data/corpus.h"

namespace mx::data {
namespace {

namespace fs = std::filesystem;

class CorpusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // One folder per test: ctest runs the tests of this suite as parallel processes.
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = fs::path(::testing::TempDir()) / (std::string("mx_corpus_test_") + info->name());
    fs::remove_all(root_);
    paths_ = {root_ / "data", root_ / "cache"};
    write(paths_.data_dir / "tinyshakespeare" / "input.txt", "First Citizen:\n");
    write(paths_.data_dir / "wikitext-2" / "valid.txt", " = Valid = \n");
    write(paths_.data_dir / "wikitext-2" / "test.txt", " = Test = \n");
  }
  void write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
  }
  fs::path root_;
  DataPaths paths_;
};

TEST_F(CorpusTest, NamesResolveUnderTheDataFolder) {
  Corpus c;
  ASSERT_EQ(resolve_corpus("tinyshakespeare", paths_, &c), "");
  EXPECT_EQ(c.train_files, (std::vector{paths_.data_dir / "tinyshakespeare" / "input.txt"}));
  EXPECT_TRUE(c.validation_files.empty());
  ASSERT_EQ(resolve_corpus("wikitext2", paths_, &c), "");
  EXPECT_EQ(c.train_files, (std::vector{paths_.data_dir / "wikitext-2" / "valid.txt"}));
  EXPECT_EQ(c.validation_files, (std::vector{paths_.data_dir / "wikitext-2" / "test.txt"}));
}

TEST_F(CorpusTest, SotuSaysHowToFetchItUntilItIsThere) {
  Corpus c;
  EXPECT_EQ(resolve_corpus("sotu", paths_, &c), "corpus 'sotu' not found in " +
                                                    (paths_.cache_dir / "sotu").string() +
                                                    "; run scripts/fetch-corpora.sh");
  write(paths_.cache_dir / "sotu" / "data" / "1791_george_washington_n.txt", "b");
  write(paths_.cache_dir / "sotu" / "data" / "1790_george_washington_n.txt", "a");
  ASSERT_EQ(resolve_corpus("sotu", paths_, &c), "");
  ASSERT_EQ(c.train_files.size(), 2u);
  EXPECT_EQ(c.train_files[0].filename(), "1790_george_washington_n.txt");
}

TEST_F(CorpusTest, StudySaysHowToBuildItUntilBothSplitsAreThere) {
  Corpus c;
  const std::string missing = "corpus 'study' not found in " +
                              (paths_.cache_dir / "study").string() +
                              "; run scripts/build-study-corpus.sh, or unpack "
                              "study-corpus.tar.xz into " +
                              paths_.cache_dir.string();
  EXPECT_EQ(resolve_corpus("study", paths_, &c), missing);
  write(paths_.cache_dir / "study" / "train" / "kjv.Genesis.txt", "In the beginning\n");
  write(paths_.cache_dir / "study" / "train" / "gcide.00001.txt", "Abacus\n");
  EXPECT_EQ(resolve_corpus("study", paths_, &c), missing);  // no validation documents yet
  write(paths_.cache_dir / "study" / "validation" / "sotu.1790.txt", "Fellow-Citizens\n");
  write(paths_.cache_dir / "study" / "documents.tsv", "split\tfile\n");
  ASSERT_EQ(resolve_corpus("study", paths_, &c), "");
  EXPECT_EQ(c.name, "study");
  EXPECT_EQ(c.train_files, (std::vector{paths_.cache_dir / "study" / "train" / "gcide.00001.txt",
                                        paths_.cache_dir / "study" / "train" / "kjv.Genesis.txt"}));
  EXPECT_EQ(c.validation_files,
            (std::vector{paths_.cache_dir / "study" / "validation" / "sotu.1790.txt"}));
  // Only the cache folder matters: no MX_DATA_DIR needed.
  ASSERT_EQ(resolve_corpus("study", DataPaths{{}, paths_.cache_dir}, &c), "");
  EXPECT_EQ(resolve_corpus("study", DataPaths{paths_.data_dir, {}}, &c),
            "corpus 'study' needs a cache folder: set MX_CACHE_DIR or HOME, then run "
            "scripts/build-study-corpus.sh");
}

TEST_F(CorpusTest, MissingDataFolderOrFileIsOneLineSayingWhat) {
  Corpus c;
  EXPECT_EQ(resolve_corpus("tinyshakespeare", DataPaths{}, &c),
            "corpus 'tinyshakespeare' is read from MX_DATA_DIR, which is not set (point it at "
            "the shared data folder)");
  fs::remove(paths_.data_dir / "wikitext-2" / "test.txt");
  EXPECT_EQ(
      resolve_corpus("wikitext2", paths_, &c),
      "corpus 'wikitext2' not found: " + (paths_.data_dir / "wikitext-2" / "test.txt").string() +
          " is missing (check MX_DATA_DIR)");
  EXPECT_EQ(resolve_corpus("no_such_corpus", paths_, &c),
            "corpus 'no_such_corpus' is neither a file, a folder nor a known name (sotu, "
            "study, tinyshakespeare, wikitext2)");
}

// What `mx corpus build` writes (train/, validation/ and documents.tsv) is read as its two
// splits, and an empty validation split leaves the tail of the training tokens to validate.
TEST_F(CorpusTest, ABuiltCorpusFolderIsReadAsItsSplits) {
  const fs::path dir = root_ / "built";
  write(dir / "train" / "src.b.txt", "second\n");
  write(dir / "train" / "src.a.txt", "first\n");
  write(dir / "validation" / "src.c.txt", "held out\n");
  write(dir / "documents.tsv", "split\tfile\tbytes\tfnv1a64\tsame_as\n");
  Corpus c;
  ASSERT_EQ(resolve_corpus(dir.string(), paths_, &c), "");
  EXPECT_EQ(c.train_files, (std::vector{dir / "train" / "src.a.txt", dir / "train" / "src.b.txt"}));
  EXPECT_EQ(c.validation_files, (std::vector{dir / "validation" / "src.c.txt"}));
  fs::remove(dir / "validation" / "src.c.txt");
  ASSERT_EQ(resolve_corpus(dir.string(), paths_, &c), "");
  EXPECT_TRUE(c.validation_files.empty());
  fs::remove(dir / "train" / "src.a.txt");
  fs::remove(dir / "train" / "src.b.txt");
  EXPECT_EQ(resolve_corpus(dir.string(), paths_, &c),
            "corpus " + dir.string() + ": no .txt files in " + (dir / "train").string());
}

TEST_F(CorpusTest, AFolderIsItsTxtFilesInNameOrder) {
  const fs::path dir = root_ / "mine";
  write(dir / "b.txt", "second\n");
  write(dir / "a.txt", "first\n");
  write(dir / "B.txt", "upper case sorts first\n");
  write(dir / "notes.md", "ignored");
  Corpus c;
  ASSERT_EQ(resolve_corpus(dir.string(), paths_, &c), "");
  ASSERT_EQ(c.train_files.size(), 3u);
  EXPECT_EQ(c.train_files[0].filename(), "B.txt");
  EXPECT_EQ(c.train_files[2].filename(), "b.txt");
  std::vector<std::string> docs;
  ASSERT_EQ(read_documents(c.train_files, &docs), "");
  EXPECT_EQ(docs[1], "first\n");
  ASSERT_EQ(resolve_corpus((dir / "a.txt").string(), paths_, &c), "");
  EXPECT_EQ(c.train_files, (std::vector{dir / "a.txt"}));
  fs::create_directories(root_ / "empty");
  EXPECT_EQ(
      resolve_corpus((root_ / "empty").string(), paths_, &c),
      "corpus " + (root_ / "empty").string() + ": no .txt files in " + (root_ / "empty").string());
}

TEST_F(CorpusTest, ReadTextJoinsFilesAndStopsAtALineWithinTheLimit) {
  write(root_ / "x.txt", "one\ntwo");  // no final newline: one is added between files
  write(root_ / "y.txt", "three\nfour\n");
  const std::vector<fs::path> files = {root_ / "x.txt", root_ / "y.txt"};
  std::string text;
  ASSERT_EQ(read_text(files, 0, &text), "");
  EXPECT_EQ(text, "one\ntwo\nthree\nfour\n");
  ASSERT_EQ(read_text(files, 15, &text), "");
  EXPECT_EQ(text, "one\ntwo\nthree\n");
}

TEST(DataPaths, ComeFromTheEnvironment) {
  const auto saved = [](const char* n) {
    const char* v = std::getenv(n);
    return v ? std::optional<std::string>(v) : std::nullopt;
  };
  const auto data = saved("MX_DATA_DIR"), cache = saved("MX_CACHE_DIR"),
             xdg = saved("XDG_CACHE_HOME");
  setenv("MX_DATA_DIR", "/d", 1);
  setenv("XDG_CACHE_HOME", "/x", 1);
  unsetenv("MX_CACHE_DIR");
  EXPECT_EQ(data_paths_from_environment().data_dir, "/d");
  EXPECT_EQ(data_paths_from_environment().cache_dir, "/x/mxkit");
  setenv("MX_CACHE_DIR", "/c", 1);
  EXPECT_EQ(data_paths_from_environment().cache_dir, "/c");
  const auto restore = [](const char* n, const std::optional<std::string>& v) {
    v ? setenv(n, v->c_str(), 1) : unsetenv(n);
  };
  restore("MX_DATA_DIR", data);
  restore("MX_CACHE_DIR", cache);
  restore("XDG_CACHE_HOME", xdg);
}

}  // namespace
}  // namespace mx::data
