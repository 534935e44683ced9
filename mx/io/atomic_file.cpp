#include "mx/io/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <string_view>

#include "mx/io/cat.h"

namespace mx::io {
namespace {

namespace fs = std::filesystem;

// "cannot VERB NAME: reason". The default argument reads errno before the message is built,
// since building it may call into the allocator.
std::string failure(std::string_view verb, const std::string& name, int err = errno) {
  return cat("cannot ", verb, " ", name, ": ", std::strerror(err));
}

std::string folder_of(const fs::path& path) {
  return path.parent_path().empty() ? "." : path.parent_path().string();
}

// `path` with symbolic links followed to the name they finally give (which need not exist).
std::string follow_links(const std::string& path, std::string* error) {
  fs::path p = path;
  for (int hops = 0; hops < 40; ++hops) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return p.string();
    std::error_code ec;
    const fs::path target = fs::read_symlink(p, ec);
    if (ec) {
      *error = cat("cannot follow the link ", path, ": ", ec.message());
      return "";
    }
    p = target.is_absolute() ? target : p.parent_path() / target;
  }
  *error = cat("cannot follow the link ", path, ": too many levels of symbolic links");
  return "";
}

// What kind of output an existing `target` is: "" for a regular file or a name not yet taken,
// "in place" for a device or FIFO, else the reason it cannot be an output.
std::string output_kind(const std::string& target, const std::string& shown) {
  struct stat st {};
  if (::stat(target.c_str(), &st) != 0) return "";
  if (S_ISREG(st.st_mode)) return "";
  if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) return "in place";
  const char* what = S_ISDIR(st.st_mode)    ? "a folder"
                     : S_ISBLK(st.st_mode)  ? "a block device"
                     : S_ISSOCK(st.st_mode) ? "a socket"
                                            : "not a regular file";
  return cat("cannot write ", shown, ": it is ", what);
}

// ---- Removing temporaries when a signal ends the process ----

// A fixed table, since a signal handler may neither allocate nor lock. A slot is free (0),
// being filled (1), or holds the name of a live temporary file (2) or of a folder made for
// outputs (3).
constexpr int kSlots = 64;
constexpr int kFreeSlot = 0, kFillingSlot = 1, kFileSlot = 2, kFolderSlot = 3;
struct Slot {
  std::atomic<int> state{kFreeSlot};
  char path[PATH_MAX];
};
Slot g_slots[kSlots];

int claim_slot(const std::string& path, int kind) {
  if (path.size() >= PATH_MAX) return -1;
  for (int i = 0; i < kSlots; ++i) {
    int expected = kFreeSlot;
    if (g_slots[i].state.compare_exchange_strong(expected, kFillingSlot)) {
      std::memcpy(g_slots[i].path, path.c_str(), path.size() + 1);
      g_slots[i].state.store(kind);
      return i;
    }
  }
  return -1;  // too many outputs open at once: those beyond the table go without cleanup
}

void release_slot(int slot) {
  if (slot >= 0 && slot < kSlots) g_slots[slot].state.store(kFreeSlot);
}

void remove_temporaries_and_die(int signal_number) {
  for (Slot& s : g_slots) {
    if (s.state.load() == kFileSlot) ::unlink(s.path);
  }
  // Folders once their files are gone; a folder inside another empties it, so sweep again while
  // any goes (a folder holding anything else stays).
  for (bool removed = true; removed;) {
    removed = false;
    for (Slot& s : g_slots) {
      if (s.state.load() == kFolderSlot && ::rmdir(s.path) == 0) {
        s.state.store(kFreeSlot);
        removed = true;
      }
    }
  }
  ::signal(signal_number, SIG_DFL);
  ::raise(signal_number);
}

std::string temp_name(const fs::path& target, int attempt) {
  static std::atomic<unsigned> counter{0};
  // Appended piecewise: GCC 12 warns falsely (-Wrestrict) on "." + std::string.
  std::string name = ".";
  name += target.filename().string();
  name += cat(".tmp.", ::getpid(), ".", counter++, ".", attempt);
  return (target.parent_path().empty() ? fs::path(name) : target.parent_path() / name).string();
}

// The process id in a temporary's name, or 0 when `name` is not one of ours.
pid_t temp_owner(const std::string& name) {
  if (name.size() < 2 || name[0] != '.') return 0;
  const size_t tag = name.rfind(".tmp.");
  if (tag == std::string::npos || tag == 0) return 0;
  // After the tag: PID.N.M, all digits.
  std::string_view rest = std::string_view(name).substr(tag + 5);
  long long fields[3] = {0, 0, 0};
  for (int f = 0; f < 3; ++f) {
    size_t digits = 0;
    while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') {
      fields[f] = fields[f] * 10 + (rest[digits] - '0');
      if (fields[f] > INT_MAX) return 0;
      ++digits;
    }
    if (digits == 0) return 0;
    rest.remove_prefix(digits);
    if (f < 2) {
      if (rest.empty() || rest[0] != '.') return 0;
      rest.remove_prefix(1);
    }
  }
  return rest.empty() && fields[0] > 0 ? static_cast<pid_t>(fields[0]) : 0;
}

// Makes the rename itself durable. Best effort: by now the destination has been replaced, so
// reporting a failure here would wrongly suggest that it had not.
void sync_folder(const fs::path& path) {
  const int fd = ::open(folder_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

}  // namespace

std::string check_output_file(const std::string& path) {
  if (path.empty()) return "empty output path";
  std::string error;
  const std::string target = follow_links(path, &error);
  if (!error.empty()) return error;
  const std::string kind = output_kind(target, path);
  if (kind == "in place") return "";
  if (!kind.empty()) return kind;
  const std::string folder = folder_of(target);
  struct stat st {};
  if (::stat(folder.c_str(), &st) != 0) {
    return cat("cannot write ", path, ": folder ", folder, " does not exist");
  }
  if (!S_ISDIR(st.st_mode)) return cat("cannot write ", path, ": ", folder, " is not a folder");
  if (::access(folder.c_str(), W_OK | X_OK) != 0) return failure("write in", folder);
  return "";
}

std::string check_output_folder(const std::string& path) {
  if (path.empty()) return "empty output folder";
  std::error_code ec;
  if (fs::exists(path, ec) && !fs::is_directory(path, ec)) {
    return cat(path, " exists and is not a folder");
  }
  // Made with its parents: the nearest part of the path that exists must be a folder, and one
  // that takes new files (not read-only, nor another user's), found now rather than after the
  // command's work.
  fs::path existing = fs::path(path).lexically_normal();
  while (!existing.empty() && !fs::exists(existing, ec)) existing = existing.parent_path();
  if (existing.empty()) existing = ".";
  if (!fs::is_directory(existing, ec)) {
    return cat("cannot create ", path, ": ", existing.string(), " is not a folder");
  }
  OutputFile probe;
  return probe.open((existing / ".mx-write-check").string());
}

OutputFile::~OutputFile() {
  discard();
}

void OutputFile::discard() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!in_place_ && !temp_.empty()) ::unlink(temp_.c_str());
  release_slot(slot_);
  slot_ = -1;
  temp_.clear();
}

std::string OutputFile::open(const std::string& path) {
  discard();
  if (path.empty()) return "empty output path";
  shown_ = path;
  std::string error;
  target_ = follow_links(path, &error);
  if (!error.empty()) return error;
  const std::string kind = output_kind(target_, path);
  in_place_ = kind == "in place";
  if (!kind.empty() && !in_place_) return kind;
  if (in_place_) {
    fd_ = ::open(target_.c_str(), O_WRONLY | O_CLOEXEC);
    return fd_ < 0 ? failure("write", shown_) : "";
  }
  for (int attempt = 0; fd_ < 0; ++attempt) {
    temp_ = temp_name(target_, attempt);
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    const int err = errno;
    if (fd_ < 0 && (err != EEXIST || attempt >= 100)) {
      temp_.clear();
      return failure("create a file in", folder_of(target_), err);
    }
  }
  slot_ = claim_slot(temp_, kFileSlot);
  return "";
}

std::string OutputFile::write(std::span<const uint8_t> bytes) {
  if (fd_ < 0) return cat("cannot write ", shown_, ": not open");
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    const int err = errno;
    if (n < 0 && err == EINTR) continue;
    if (n < 0) return failure("write", shown_, err);
    if (n == 0) return cat("cannot write ", shown_, ": no progress");
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
  return "";
}

std::string OutputFile::commit() {
  if (fd_ < 0) return cat("cannot write ", shown_, ": not open");
  // Devices and FIFOs cannot be synced (EINVAL): their data is gone by the time write returns.
  if (!in_place_ && ::fsync(fd_) != 0) return failure("write", shown_);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) return failure("write", shown_);
  if (!in_place_) {
    if (::rename(temp_.c_str(), target_.c_str()) != 0) return failure("replace", shown_);
    temp_.clear();
    sync_folder(target_);
  }
  release_slot(slot_);
  slot_ = -1;
  return "";
}

std::string write_file_atomically(const std::string& path,
                                  std::span<const std::span<const uint8_t>> parts) {
  OutputFile out;
  if (std::string e = out.open(path); !e.empty()) return e;
  for (std::span<const uint8_t> part : parts) {
    if (std::string e = out.write(part); !e.empty()) return e;
  }
  return out.commit();
}

std::string write_file_atomically(const std::string& path, std::span<const uint8_t> bytes) {
  const std::span<const uint8_t> parts[] = {bytes};
  return write_file_atomically(path, parts);
}

std::string write_text_atomically(const std::string& path, std::string_view text) {
  return write_file_atomically(path, {reinterpret_cast<const uint8_t*>(text.data()), text.size()});
}

void remove_temporaries_on_signals() {
  for (const int s : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old {};
    if (::sigaction(s, nullptr, &old) != 0 || old.sa_handler != SIG_DFL)
      continue;  // kept if ignored
    struct sigaction action {};
    action.sa_handler = remove_temporaries_and_die;
    sigemptyset(&action.sa_mask);
    ::sigaction(s, &action, nullptr);
  }
}

int remove_on_signals(const std::string& path, bool is_folder) {
  return claim_slot(path, is_folder ? kFolderSlot : kFileSlot);
}

void keep_on_signals(int handle) {
  release_slot(handle);
}

int remove_stale_temporaries(const std::string& folder) {
  std::error_code ec;
  int removed = 0;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    const pid_t owner = temp_owner(it->path().filename().string());
    if (owner == 0 || owner == ::getpid()) continue;
    if (::kill(owner, 0) == 0 || errno != ESRCH) continue;  // alive, or not ours to judge
    std::error_code remove_error;
    if (fs::remove(it->path(), remove_error)) ++removed;
  }
  return removed;
}

}  // namespace mx::io
