// The text steps of building a corpus: the cleaning pass, exact-duplicate removal, the split
// by document name, dictd dictionaries as documents, and the corpus folder they make.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "mx/data/corpus_build.h"

namespace mx::data {
namespace {

namespace fs = std::filesystem;

TEST(CleanDocument, NormalizesLineEndsAndBlankLines) {
  EXPECT_EQ(clean_document("a\r\nb\rc\n"), "a\nb\nc\n");
  EXPECT_EQ(clean_document("\n\n  \nfirst  \t\n\n\n\nsecond\n\n\n"), "first\n\nsecond\n");
  EXPECT_EQ(clean_document("no final newline"), "no final newline\n");
  EXPECT_EQ(clean_document("page one\fpage two"), "page one\npage two\n");
  EXPECT_EQ(clean_document("  indented\n\tand tabbed\n"), "  indented\n\tand tabbed\n");
  EXPECT_EQ(clean_document(""), "");
  EXPECT_EQ(clean_document(" \n\t\r\n\f"), "");
}

TEST(CleanDocument, DropsControlCharactersAndKeepsText) {
  EXPECT_EQ(clean_document(std::string("a\0b\x1b[1mc\x7f", 9)), "ab[1mc\n");
  EXPECT_EQ(clean_document("\xEF\xBB\xBFtitle"), "title\n");  // byte-order mark
  EXPECT_EQ(clean_document("x\xC2\xA0y"), "x y\n");           // no-break space
  EXPECT_EQ(clean_document("\xC2\x85z"), "z\n");              // C1 control, as UTF-8
  EXPECT_EQ(clean_document("caf\xC3\xA9 \xE2\x80\x94 ok"), "caf\xC3\xA9 \xE2\x80\x94 ok\n");
}

TEST(CleanDocument, ReadsBytesThatAreNotUtf8AsWindows1252) {
  EXPECT_EQ(clean_document("caf\xE9"), "caf\xC3\xA9\n");  // Latin-1 e acute
  EXPECT_EQ(clean_document("\x93quoted\x94"), "\xE2\x80\x9Cquoted\xE2\x80\x9D\n");
  EXPECT_EQ(clean_document("a\x81"
                           "b"),
            "ab\n");  // unassigned in 1252: a C1 control, dropped
  EXPECT_EQ(clean_document("\xE2\x82"), "\xC3\xA2\xE2\x80\x9A\n");  // truncated sequence
}

TEST(CleanDocument, IsIdempotent) {
  const std::string raw = "\r\n\x93Hi\x94  \r\n\r\n\r\n\tthere\x01\n\n";
  const std::string once = clean_document(raw);
  EXPECT_EQ(clean_document(once), once);
}

TEST(Fnv1a64, MatchesPublishedValues) {
  EXPECT_EQ(fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a64("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(fnv1a64("foobar"), 0x85944171f73967e8ull);
}

TEST(GoesToValidation, FollowsTheHashOfTheName) {
  EXPECT_FALSE(goes_to_validation("any/name", 0));
  EXPECT_TRUE(goes_to_validation("any/name", 1000));
  // About per_mille of many names, and the same names every time.
  int held = 0;
  for (int i = 0; i < 100000; ++i) held += goes_to_validation("src/" + std::to_string(i), 10);
  EXPECT_GT(held, 850);
  EXPECT_LT(held, 1150);
  for (int i = 0; i < 1000; ++i) {
    const std::string id = "src/" + std::to_string(i);
    EXPECT_EQ(goes_to_validation(id, 10), fnv1a64(id) % 1000 < 10);
  }
}

TEST(ExactDuplicates, PointAtTheFirstCopy) {
  const std::vector<std::string> docs = {"a\n", "b\n", "a\n", "a \n", "b\n", "a\n"};
  const size_t none = std::string::npos;
  EXPECT_EQ(exact_duplicates(docs), (std::vector<size_t>{none, none, 0, none, 1, 0}));
  EXPECT_TRUE(exact_duplicates({}).empty());
}

TEST(DocumentName, IsASafeFileName) {
  EXPECT_TRUE(is_document_name("Genesis"));
  EXPECT_TRUE(is_document_name("man2.ptrace.2"));
  EXPECT_TRUE(is_document_name("easy-ham_1"));
  EXPECT_FALSE(is_document_name(""));
  EXPECT_FALSE(is_document_name(".hidden"));
  EXPECT_FALSE(is_document_name("a/b"));
  EXPECT_FALSE(is_document_name("a b"));
  EXPECT_FALSE(is_document_name("caf\xC3\xA9"));
}

TEST(Dictd, IndexNumbersAreBase64Digits) {
  std::vector<DictdEntry> entries;
  ASSERT_EQ(parse_dictd_index("apple\tA\tB\nbig tree\tBA\t/\n", &entries), "");
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].headword, "apple");
  EXPECT_EQ(entries[0].offset, 0u);
  EXPECT_EQ(entries[0].length, 1u);
  EXPECT_EQ(entries[1].headword, "big tree");
  EXPECT_EQ(entries[1].offset, 64u);
  EXPECT_EQ(entries[1].length, 63u);
  EXPECT_EQ(parse_dictd_index("x\tA\n", &entries),
            "dictd index line 1: expected a headword, an offset and a length separated by tabs");
  EXPECT_EQ(parse_dictd_index("ok\tA\tB\nx\tA\t!\n", &entries),
            "dictd index line 2: expected a headword, an offset and a length separated by tabs");
  EXPECT_EQ(parse_dictd_index("x\tA\tB\tC\n", &entries),
            "dictd index line 1: expected a headword, an offset and a length separated by tabs");
}

TEST(Dictd, DefinitionsInFileOrderOnceEachJoinedIntoDocuments) {
  // Offsets: "INFO\n" 0-5, "apple\n fruit\n" 5-18, "bee\n insect\n" 18-30, "cat\n pet\n" 30-39.
  const std::string dict = "INFO\napple\n fruit\nbee\n insect\ncat\n pet\n";
  // Base 64: 5 = F, 13 = N, 18 = S, 12 = M, 30 = e, 9 = J.
  const std::string index =
      "00-database-info\tA\tF\ncat\te\tJ\napple\tF\tN\nbee\tS\tM\nhoney bee\tS\tM\n";
  std::vector<std::string> docs;
  ASSERT_EQ(dictd_documents(index, dict, 1, &docs), "");
  EXPECT_EQ(docs, (std::vector<std::string>{"apple\n fruit\n", "bee\n insect\n", "cat\n pet\n"}));
  ASSERT_EQ(dictd_documents(index, dict, 20, &docs), "");
  EXPECT_EQ(docs, (std::vector<std::string>{"apple\n fruit\n\nbee\n insect\n", "cat\n pet\n"}));
  ASSERT_EQ(dictd_documents(index, dict, 1000, &docs), "");
  ASSERT_EQ(docs.size(), 1u);
  EXPECT_EQ(dictd_documents("word\tA\tBA\n", dict, 1, &docs),
            "dictd index entry 'word' points past the end of the 39-byte dictionary");
  EXPECT_EQ(dictd_documents("", dict, 1, &docs), "the dictd index lists no definition");
  EXPECT_EQ(dictd_documents("00-database-info\tA\tF\n", dict, 1, &docs),
            "the dictd index lists no definition");
}

// "dN.txt", built without operator+ on a literal (GCC 12 warns falsely about it).
std::string fmt_name(const std::string& n) {
  std::string name = "d";
  name += n;
  name += ".txt";
  return name;
}

class BuildCorpusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = fs::path(::testing::TempDir()) / (std::string("mx_corpus_build_") + info->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  void write(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
  }
  static std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }
  fs::path root_;
};

TEST_F(BuildCorpusTest, CleansDropsDuplicatesAndSplitsByName) {
  write(root_ / "in" / "books" / "b.txt", "Second book.\r\n");
  write(root_ / "in" / "books" / "a.txt", "First book.\n\n\n\nEnd.\n");
  write(root_ / "in" / "books" / "blank.txt", "  \n\n");
  write(root_ / "in" / "books" / "notes.md", "not a document");
  write(root_ / "in" / "mail" / "m1.txt", "Second book.\n");  // a copy after cleaning
  write(root_ / "in" / "mail" / "m2.txt", "Hello.\n");
  const std::vector<fs::path> sources = {root_ / "in" / "books", root_ / "in" / "mail/"};
  std::vector<CorpusSourceSummary> summary;
  CorpusBuildOptions options;
  options.validation_per_mille = 0;
  ASSERT_EQ(build_corpus(sources, root_ / "out", options, &summary), "");
  ASSERT_EQ(summary.size(), 2u);
  EXPECT_EQ(summary[0].name, "books");
  EXPECT_EQ(summary[0].documents, 3u);
  EXPECT_EQ(summary[0].empty, 1u);
  EXPECT_EQ(summary[0].train_documents, 2u);
  EXPECT_EQ(summary[0].train_bytes, 31u);
  EXPECT_EQ(summary[1].name, "mail");
  EXPECT_EQ(summary[1].duplicates, 1u);
  EXPECT_EQ(summary[1].train_documents, 1u);
  EXPECT_EQ(read(root_ / "out" / "train" / "books.a.txt"), "First book.\n\nEnd.\n");
  EXPECT_EQ(read(root_ / "out" / "train" / "books.b.txt"), "Second book.\n");
  EXPECT_FALSE(fs::exists(root_ / "out" / "train" / "mail.m1.txt"));
  EXPECT_TRUE(fs::is_directory(root_ / "out" / "validation"));
  EXPECT_FALSE(fs::exists(root_ / ".out.partial"));
  const std::string table = read(root_ / "out" / "documents.tsv");
  EXPECT_EQ(table.substr(0, table.find('\n')), "split\tfile\tbytes\tfnv1a64\tsame_as");
  EXPECT_NE(table.find("empty\tbooks.blank.txt\t0\t-\t-\n"), std::string::npos);
  EXPECT_NE(table.find("duplicate\tmail.m1.txt\t13\t"), std::string::npos);
  EXPECT_NE(table.find("\tbooks.b.txt\n"), std::string::npos);

  // Every document held out: the same names, under validation/.
  options.validation_per_mille = 1000;
  ASSERT_EQ(build_corpus(sources, root_ / "all", options, &summary), "");
  EXPECT_EQ(summary[0].validation_documents, 2u);
  EXPECT_TRUE(fs::exists(root_ / "all" / "validation" / "mail.m2.txt"));
}

TEST_F(BuildCorpusTest, SameInputSameBytes) {
  for (int i = 0; i < 300; ++i) {
    const std::string n = std::to_string(i), text = std::to_string(i % 250);
    write(root_ / "src" / fmt_name(n), "text " + text);
  }
  const std::vector<fs::path> sources = {root_ / "src"};
  std::vector<CorpusSourceSummary> s1, s2;
  CorpusBuildOptions options;
  options.validation_per_mille = 100;
  ASSERT_EQ(build_corpus(sources, root_ / "one", options, &s1), "");
  ASSERT_EQ(build_corpus(sources, root_ / "two", options, &s2), "");
  EXPECT_EQ(read(root_ / "one" / "documents.tsv"), read(root_ / "two" / "documents.tsv"));
  EXPECT_EQ(s1[0].duplicates, 50u);
  EXPECT_EQ(s1[0].train_documents + s1[0].validation_documents, 250u);
  EXPECT_GT(s1[0].validation_documents, 5u);  // about 25 of 250
  EXPECT_LT(s1[0].validation_documents, 50u);
  for (const auto& e : fs::directory_iterator(root_ / "one" / "validation")) {
    const std::string name = e.path().filename().string();  // src.dN.txt
    EXPECT_TRUE(goes_to_validation("src/" + name.substr(4, name.size() - 8), 100)) << name;
  }
}

TEST_F(BuildCorpusTest, BadInputIsOneLineAndWritesNothing) {
  write(root_ / "src" / "ok.txt", "fine\n");
  write(root_ / "src" / "bad name.txt", "x\n");
  std::vector<CorpusSourceSummary> s;
  const std::vector<fs::path> bad = {root_ / "src"};
  EXPECT_EQ(build_corpus(bad, root_ / "out", {}, &s),
            "document name 'bad name' in " + (root_ / "src").string() +
                " has characters other than letters, digits, '.', '_' and '-'");
  EXPECT_FALSE(fs::exists(root_ / "out"));
  fs::remove(root_ / "src" / "bad name.txt");
  const std::vector<fs::path> twice = {root_ / "src", root_ / "src"};
  EXPECT_EQ(build_corpus(twice, root_ / "out", {}, &s), "source 'src' is given twice");
  const std::vector<fs::path> missing = {root_ / "nope"};
  EXPECT_EQ(build_corpus(missing, root_ / "out", {}, &s),
            "source " + (root_ / "nope").string() + " is not a folder");
  write(root_ / "a.b" / "x.txt", "x\n");
  const std::vector<fs::path> dotted = {root_ / "a.b"};
  EXPECT_EQ(build_corpus(dotted, root_ / "out", {}, &s),
            "source folder name 'a.b' must be letters, digits, '_' and '-' (it prefixes the "
            "document names)");
  fs::create_directories(root_ / "out");
  const std::vector<fs::path> good = {root_ / "src"};
  EXPECT_EQ(build_corpus(good, root_ / "out", {}, &s),
            (root_ / "out").string() + " already exists");
  EXPECT_FALSE(fs::exists(root_ / ".out.partial"));
  // Sources of nothing but empty documents (or none at all) make no corpus.
  write(root_ / "blank" / "a.txt", "\n\n");
  fs::create_directories(root_ / "none");
  for (const char* source : {"blank", "none"}) {
    const std::vector<fs::path> nothing = {root_ / source};
    EXPECT_EQ(build_corpus(nothing, root_ / "out2", {}, &s),
              "no document to keep: the sources hold no .txt file that is neither empty nor a "
              "duplicate");
    EXPECT_FALSE(fs::exists(root_ / "out2"));
    EXPECT_FALSE(fs::exists(root_ / ".out2.partial"));
  }
}

TEST_F(BuildCorpusTest, NumberedDocumentsAreWrittenWhole) {
  const std::vector<std::string> texts = {"one\n", "two\n"};
  ASSERT_EQ(write_numbered_documents(root_ / "d", texts), "");
  EXPECT_EQ(read(root_ / "d" / "00000.txt"), "one\n");
  EXPECT_EQ(read(root_ / "d" / "00001.txt"), "two\n");
  EXPECT_EQ(write_numbered_documents(root_ / "d", texts),
            (root_ / "d").string() + " already exists");
}

}  // namespace
}  // namespace mx::data
