// Output files: readers see the old file or the whole new one, never a part; devices, FIFOs and
// links are written where they point rather than replaced; bad outputs are refused before any
// work; no temporary outlives a failure, a signal or a killed process; and an output folder
// that a failed command was filling is left as it was found.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <thread>

#include "mx/io/atomic_file.h"
#include "mx/io/output_folder.h"

namespace mx::io {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

Bytes bytes_of(std::string_view s) {
  return Bytes(s.begin(), s.end());
}

Bytes read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void write_raw(const fs::path& p, const Bytes& b) {
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), b.size());
}

class OutputFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::path(::testing::TempDir()) / "mx_output_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(dir_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(dir_, ec);
  }
  // Every name in the folder (the test's by default), sorted: a leftover temporary shows up here.
  std::vector<std::string> names(const fs::path& dir = {}) const {
    std::vector<std::string> n;
    for (const auto& e : fs::directory_iterator(dir.empty() ? dir_ : dir)) {
      n.push_back(e.path().filename().string());
    }
    std::sort(n.begin(), n.end());
    return n;
  }
  // Runs `work` in a child that removes temporaries on signals (the signal ends a process, so
  // not this one), and expects the child to die of `signal_number`, which `work` raises while
  // its outputs are open; `work` returns false if it could not get that far.
  static void expect_death_by_signal(int signal_number, const std::function<bool()>& work) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      remove_temporaries_on_signals();
      ::_exit(work() ? 4 : 3);  // 4: the signal did not end it
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << "exit status " << WEXITSTATUS(status);
    EXPECT_EQ(WTERMSIG(status), signal_number);
  }
  fs::path dir_;
};

TEST_F(OutputFileTest, ReplacesWithUmaskPermissionsAndLeavesNoTemporary) {
  const fs::path p = dir_ / "f.bin";
  write_raw(p, bytes_of("old contents"));
  const mode_t old_mask = ::umask(022);
  const std::string e = write_file_atomically(p.string(), bytes_of("new"));
  ::umask(old_mask);
  ASSERT_EQ(e, "");
  EXPECT_EQ(read_all(p), bytes_of("new"));
  struct stat st {};
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  EXPECT_EQ(names(), std::vector<std::string>{"f.bin"});
}

TEST_F(OutputFileTest, MissingFolderOrFileAsFolderIsRefused) {
  std::string e = write_file_atomically((dir_ / "no" / "f.bin").string(), bytes_of("x"));
  EXPECT_EQ(e, "cannot create a file in " + (dir_ / "no").string() + ": No such file or directory");
  write_raw(dir_ / "plain", bytes_of("x"));
  e = write_file_atomically((dir_ / "plain" / "f.bin").string(), bytes_of("x"));
  EXPECT_EQ(e.rfind("cannot create a file in ", 0), 0u) << e;
  EXPECT_EQ(names(), std::vector<std::string>{"plain"});
}

TEST_F(OutputFileTest, FolderAsDestinationIsLeftAlone) {
  fs::create_directory(dir_ / "d");
  write_raw(dir_ / "d" / "inside", bytes_of("keep"));
  const std::string e = write_file_atomically((dir_ / "d").string(), bytes_of("x"));
  EXPECT_EQ(e, "cannot write " + (dir_ / "d").string() + ": it is a folder");
  EXPECT_EQ(names(), std::vector<std::string>{"d"});
  EXPECT_EQ(read_all(dir_ / "d" / "inside"), bytes_of("keep"));
}

// A write that fails part-way (the file-size limit stands in for a full disk) keeps the old
// file, and the message names the output the user asked for, not the hidden temporary.
TEST_F(OutputFileTest, FailedWriteKeepsTheOldFileAndNamesTheOutput) {
  const fs::path p = dir_ / "a.bin";
  write_raw(p, bytes_of("the previous contents"));
  const Bytes big(1 << 16, 7);
  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  rlimit small = saved;
  small.rlim_cur = 4096;
  void (*old_handler)(int) = ::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string e = write_file_atomically(p.string(), big);
  ::setrlimit(RLIMIT_FSIZE, &saved);
  ::signal(SIGXFSZ, old_handler);
  EXPECT_EQ(e, "cannot write " + p.string() + ": File too large");
  EXPECT_EQ(read_all(p), bytes_of("the previous contents"));
  EXPECT_EQ(names(), std::vector<std::string>{"a.bin"});
}

TEST_F(OutputFileTest, ReadOnlyFolderKeepsTheOldFile) {
  const fs::path p = dir_ / "a.bin";
  write_raw(p, bytes_of("old"));
  fs::permissions(dir_, fs::perms::owner_read | fs::perms::owner_exec);
  if (::access(dir_.c_str(), W_OK) == 0) {
    GTEST_SKIP() << "running with privileges that ignore folder permissions";
  }
  EXPECT_EQ(write_file_atomically(p.string(), bytes_of("new")),
            "cannot create a file in " + dir_.string() + ": Permission denied");
  EXPECT_EQ(check_output_file(p.string()),
            "cannot write in " + dir_.string() + ": Permission denied");
  EXPECT_EQ(read_all(p), bytes_of("old"));
}

// Renaming over /dev/null would replace the device node with a regular file (as root).
TEST_F(OutputFileTest, CharacterDeviceIsWrittenInPlace) {
  ASSERT_EQ(check_output_file("/dev/null"), "");
  ASSERT_EQ(write_file_atomically("/dev/null", bytes_of("discarded")), "");
  struct stat st {};
  ASSERT_EQ(::stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  if (fs::exists("/dev/full")) {
    EXPECT_EQ(write_file_atomically("/dev/full", bytes_of("x")),
              "cannot write /dev/full: No space left on device");
    ASSERT_EQ(::stat("/dev/full", &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
  }
}

TEST_F(OutputFileTest, FifoIsWrittenInPlace) {
  const fs::path fifo = dir_ / "pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  Bytes received;
  std::thread reader([&] { received = read_all(fifo); });
  const std::string e = write_file_atomically(fifo.string(), bytes_of("through the pipe"));
  reader.join();
  EXPECT_EQ(e, "");
  EXPECT_EQ(received, bytes_of("through the pipe"));
  EXPECT_TRUE(fs::is_fifo(fifo));
  EXPECT_EQ(names(), std::vector<std::string>{"pipe"});
}

TEST_F(OutputFileTest, SymbolicLinkIsFollowedAndStaysALink) {
  fs::create_directory(dir_ / "real");
  write_raw(dir_ / "real" / "target.bin", bytes_of("old"));
  fs::create_symlink("real/target.bin", dir_ / "link.bin");
  ASSERT_EQ(write_file_atomically((dir_ / "link.bin").string(), bytes_of("new")), "");
  EXPECT_TRUE(fs::is_symlink(dir_ / "link.bin"));
  EXPECT_EQ(read_all(dir_ / "real" / "target.bin"), bytes_of("new"));
  // A dangling link gets its target created.
  fs::create_symlink("real/later.bin", dir_ / "dangling.bin");
  ASSERT_EQ(write_file_atomically((dir_ / "dangling.bin").string(), bytes_of("made")), "");
  EXPECT_TRUE(fs::is_symlink(dir_ / "dangling.bin"));
  EXPECT_EQ(read_all(dir_ / "real" / "later.bin"), bytes_of("made"));
  EXPECT_EQ(names(), (std::vector<std::string>{"dangling.bin", "link.bin", "real"}));
}

TEST_F(OutputFileTest, LinkLoopIsRefused) {
  fs::create_symlink("b", dir_ / "a");
  fs::create_symlink("a", dir_ / "b");
  const std::string e = write_file_atomically((dir_ / "a").string(), bytes_of("x"));
  EXPECT_EQ(
      e, "cannot follow the link " + (dir_ / "a").string() + ": too many levels of symbolic links");
}

TEST_F(OutputFileTest, UncommittedOutputLeavesNoTemporary) {
  write_raw(dir_ / "kept.bin", bytes_of("old"));
  {
    OutputFile out;
    ASSERT_EQ(out.open((dir_ / "kept.bin").string()), "");
    ASSERT_EQ(out.write(bytes_of("half")), "");
    EXPECT_EQ(names().size(), 2u);  // the temporary exists while writing
  }
  EXPECT_EQ(names(), std::vector<std::string>{"kept.bin"});
  EXPECT_EQ(read_all(dir_ / "kept.bin"), bytes_of("old"));
}

TEST_F(OutputFileTest, ChecksBeforeWorkNameWhatIsWrong) {
  EXPECT_EQ(check_output_file((dir_ / "new.bin").string()), "");
  EXPECT_EQ(check_output_file((dir_ / "no" / "x.bin").string()),
            "cannot write " + (dir_ / "no" / "x.bin").string() + ": folder " +
                (dir_ / "no").string() + " does not exist");
  EXPECT_EQ(check_output_file(dir_.string()), "cannot write " + dir_.string() + ": it is a folder");
  EXPECT_EQ(check_output_file(""), "empty output path");
  write_raw(dir_ / "file", bytes_of("x"));
  EXPECT_EQ(check_output_folder((dir_ / "file").string()),
            (dir_ / "file").string() + " exists and is not a folder");
  EXPECT_EQ(check_output_folder((dir_ / "new_folder").string()), "");
  EXPECT_EQ(check_output_folder((dir_ / "no" / "sub").string()), "");  // made with its parents
  EXPECT_EQ(check_output_folder((dir_ / "file" / "sub" / "deeper").string()),
            "cannot create " + (dir_ / "file" / "sub" / "deeper").string() + ": " +
                (dir_ / "file").string() + " is not a folder");
  EXPECT_EQ(names(), std::vector<std::string>{"file"});  // checking creates nothing
}

// /proc takes no new file, even from root: a folder's existence alone does not pass the check.
TEST_F(OutputFileTest, AFolderThatTakesNoFilesIsRefusedEvenWithPrivileges) {
  if (!fs::is_directory("/proc")) GTEST_SKIP() << "no /proc on this system";
  EXPECT_EQ(
      check_output_folder("/proc/mx_output_test/sub").rfind("cannot create a file in /proc: ", 0),
      0u);
}

TEST_F(OutputFileTest, AReadOnlyOutputFolderIsRefusedBeforeWork) {
  fs::create_directories(dir_ / "out");
  fs::permissions(dir_, fs::perms::owner_read | fs::perms::owner_exec);
  fs::permissions(dir_ / "out", fs::perms::owner_read | fs::perms::owner_exec);
  if (::access(dir_.c_str(), W_OK) == 0) {
    GTEST_SKIP() << "running with privileges that ignore folder permissions";
  }
  EXPECT_EQ(check_output_folder((dir_ / "out").string()),
            "cannot create a file in " + (dir_ / "out").string() + ": Permission denied");
  EXPECT_EQ(check_output_folder((dir_ / "new" / "sub").string()),
            "cannot create a file in " + dir_.string() + ": Permission denied");
}

// A command that fails part-way leaves its output folder as it found it: files there before keep
// their contents (the new ones wait under staging names), its staged files go, and so do the
// folders it made. One that commits gives every file its name.
TEST_F(OutputFileTest, AnOutputFolderLeftUncommittedIsAsItWasFound) {
  {
    OutputFolder out;
    ASSERT_EQ(out.open((dir_ / "made" / "deeper").string()), "");
    ASSERT_EQ(write_text_atomically(out.file("a.txt"), "a"), "");
  }
  EXPECT_EQ(names(), std::vector<std::string>{});
  fs::create_directories(dir_ / "existing");
  write_raw(dir_ / "existing" / "old.txt", bytes_of("old"));
  write_raw(dir_ / "existing" / "b.txt", bytes_of("old b"));
  {
    OutputFolder out;
    ASSERT_EQ(out.open((dir_ / "existing").string()), "");
    ASSERT_EQ(write_text_atomically(out.file("a.txt"), "a"), "");
    ASSERT_EQ(write_text_atomically(out.file("b.txt"), "new b"), "");
    EXPECT_EQ(read_all(dir_ / "existing" / "b.txt"), bytes_of("old b"));  // until committed
  }
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(dir_ / "existing")) {
    left.push_back(e.path().filename().string());
  }
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"b.txt", "old.txt"}));
  EXPECT_EQ(read_all(dir_ / "existing" / "b.txt"), bytes_of("old b"));
  {
    OutputFolder out;
    ASSERT_EQ(out.open((dir_ / "existing").string()), "");
    ASSERT_EQ(write_text_atomically(out.file("a.txt"), "a"), "");
    ASSERT_EQ(write_text_atomically(out.file("b.txt"), "new b"), "");
    ASSERT_EQ(out.commit(), "");
  }
  EXPECT_EQ(read_all(dir_ / "existing" / "a.txt"), bytes_of("a"));
  EXPECT_EQ(read_all(dir_ / "existing" / "b.txt"), bytes_of("new b"));
  EXPECT_EQ(read_all(dir_ / "existing" / "old.txt"), bytes_of("old"));
  {
    OutputFolder out;
    ASSERT_EQ(out.open((dir_ / "existing").string()), "");
    const std::string staged = out.file("c.txt");
    // A writer's error names the file, not its staging path; a file never written fails the
    // commit.
    EXPECT_EQ(out.named("cannot write " + staged + ": full"),
              "cannot write " + (dir_ / "existing" / "c.txt").string() + ": full");
    EXPECT_EQ(out.commit(),
              "cannot write " + (dir_ / "existing" / "c.txt").string() + ": it was not written");
  }
  EXPECT_FALSE(fs::exists(dir_ / "existing" / "c.txt"));
  OutputFolder over_a_file;
  EXPECT_EQ(over_a_file.open((dir_ / "existing" / "old.txt").string()),
            (dir_ / "existing" / "old.txt").string() + " exists and is not a folder");
}

// The temporary of a write interrupted by SIGTERM is removed, and the process still dies of the
// signal, as a shell expects. Run in a child, since the signal ends the process.
TEST_F(OutputFileTest, SignalDuringAWriteRemovesTheTemporary) {
  const fs::path p = dir_ / "big.bin";
  expect_death_by_signal(SIGTERM, [&] {
    OutputFile out;
    if (!out.open(p.string()).empty() || !out.write(bytes_of("partial")).empty()) return false;
    ::raise(SIGTERM);
    return true;
  });
  EXPECT_TRUE(names().empty()) << names().front();
}

// A command filling an output folder that SIGINT stops leaves the folder as it found it: the
// files it staged and the folders it made are gone, what was there before stays.
TEST_F(OutputFileTest, SignalWhileFillingAnOutputFolderLeavesItAsItWasFound) {
  fs::create_directories(dir_ / "existing");
  write_raw(dir_ / "existing" / "old.txt", bytes_of("old"));
  expect_death_by_signal(SIGINT, [&] {
    OutputFolder made, existing;
    OutputFile unfinished;
    if (!made.open((dir_ / "made" / "deeper").string()).empty() ||
        !write_text_atomically(made.file("a.txt"), "a").empty() ||
        !unfinished.open(made.file("b.txt")).empty() ||
        !existing.open((dir_ / "existing").string()).empty() ||
        !write_text_atomically(existing.file("old.txt"), "new").empty() ||
        !fs::exists(dir_ / "made" / "deeper")) {
      return false;
    }
    ::raise(SIGINT);
    return true;
  });
  EXPECT_EQ(names(), std::vector<std::string>{"existing"});
  EXPECT_EQ(names(dir_ / "existing"), std::vector<std::string>{"old.txt"});
  EXPECT_EQ(read_all(dir_ / "existing" / "old.txt"), bytes_of("old"));
}

// After SIGKILL nothing runs, so the next run in that folder sweeps what the dead process left.
TEST_F(OutputFileTest, StaleTemporariesOfDeadProcessesAreSwept) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);  // `child` is now a process id no one holds
  const std::string dead = std::to_string(child), alive = std::to_string(::getpid());
  for (const std::string& name :
       std::vector<std::string>{".model.bin.tmp." + dead + ".0.0", ".log.csv.tmp." + alive + ".3.0",
                                "model.bin", ".hidden.tmp.x.1.2", "notes.tmp." + dead + ".0.0"}) {
    write_raw(dir_ / name, bytes_of("x"));
  }
  EXPECT_EQ(remove_stale_temporaries(dir_.string()), 1);
  EXPECT_EQ(names(),
            (std::vector<std::string>{".hidden.tmp.x.1.2", ".log.csv.tmp." + alive + ".3.0",
                                      "model.bin", "notes.tmp." + dead + ".0.0"}));
}

}  // namespace
}  // namespace mx::io
