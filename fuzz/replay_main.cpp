// Runs one fuzz target (its LLVMFuzzerTestOneInput) without libFuzzer: on every seed file of a
// folder as written, then on deterministic mutations of each (mutate.h), mutation by mutation
// across the seeds so that a time cap cuts all seeds alike. The test suite runs it in the
// ordinary build and under the sanitizers (ctest fuzz.replay); `make fuzz` (scripts/fuzz.sh,
// libFuzzer) remains the long search.
//
//   mx_fuzz_replay_<target> SEED_DIR [--mutations N] [--seconds S] [--input-seconds S]
//                                    [--seed-file NAME] [--only N] [--save PATH]
//
// A crash, an abort (fuzz::fail), a sanitizer report, an exit from inside the target or an input
// that runs past --input-seconds prints the seed, the mutation and the command that runs that
// input alone; --save writes that input to a file (for fuzz_<target> of `make fuzz`).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fuzz/mutate.h"

#if defined(__SANITIZE_ADDRESS__)
#define MX_REPLAY_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MX_REPLAY_SANITIZED 1
#endif
#endif
#ifdef MX_REPLAY_SANITIZED
#include <sanitizer/common_interface_defs.h>
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

namespace fs = std::filesystem;
using mx::fuzz::Seed;

struct Options {
  fs::path seed_dir;
  uint64_t mutations = 1000;
  double seconds = 0;  // 0: no cap
  unsigned input_seconds = 10;
  std::string seed_file;
  std::optional<uint64_t> only;
  std::string save;
};

// What runs now, written before each input for the failure handlers to print as is (they may
// not allocate). g_inside is set while the target runs.
char g_report[2048];
volatile sig_atomic_t g_inside = 0;

void write_all(const char* text) {
  size_t left = std::strlen(text);
  while (left > 0) {
    const ssize_t n = write(STDERR_FILENO, text, left);
    if (n <= 0) return;
    text += n;
    left -= size_t(n);
  }
}

void report_failure(const char* why) {
  write_all("\nfuzz replay FAILED (");
  write_all(why);
  write_all("): ");
  write_all(g_report);
}

extern "C" void on_fatal_signal(int signal_number) {
  char why[64] = "signal ";
  char digits[16];
  int n = 0;
  for (int s = signal_number; s > 0 && n < 15; s /= 10) digits[n++] = char('0' + s % 10);
  size_t at = std::strlen(why);
  while (n > 0) why[at++] = digits[--n];
  why[at] = '\0';
  report_failure(signal_number == SIGALRM ? "an input ran past --input-seconds" : why);
  signal(signal_number, SIG_DFL);
  raise(signal_number);
}

extern "C" void on_exit_inside_target() {
  if (g_inside) report_failure("an exit from inside the target");
}

#ifdef MX_REPLAY_SANITIZED
extern "C" void on_sanitizer_report() {
  // A leak is reported at exit, after the inputs: the last one is only a hint then.
  report_failure(g_inside ? "the sanitizer report above"
                          : "the sanitizer report above, after the last input run");
}
#endif

void install_failure_handlers() {
  // Under the sanitizers their own handlers report memory faults, and the death callback adds
  // the input; elsewhere the faults are caught here.
#ifdef MX_REPLAY_SANITIZED
  __sanitizer_set_death_callback(on_sanitizer_report);
  const int signals[] = {SIGABRT, SIGALRM, SIGTERM};
#else
  const int signals[] = {SIGABRT, SIGALRM, SIGTERM, SIGSEGV, SIGBUS, SIGFPE, SIGILL};
#endif
  for (const int s : signals) {
    struct sigaction action {};
    action.sa_handler = on_fatal_signal;
    action.sa_flags = SA_RESETHAND;
    sigaction(s, &action, nullptr);
  }
  std::atexit(on_exit_inside_target);
}

[[noreturn]] void usage_error(const std::string& what) {
  std::fprintf(stderr, "error: %s\n", what.c_str());
  std::exit(2);
}

uint64_t parse_count(const char* flag, const char* text) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || text[0] == '-') {
    usage_error(std::string(flag) + " takes a whole number, not '" + text + "'");
  }
  return v;
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) {
      if (!o.seed_dir.empty()) usage_error("one seed folder only, got a second: " + arg);
      o.seed_dir = arg;
      continue;
    }
    if (i + 1 >= argc) usage_error(arg + " needs a value");
    const char* value = argv[++i];
    if (arg == "--mutations") {
      o.mutations = parse_count("--mutations", value);
    } else if (arg == "--seconds") {
      o.seconds = double(parse_count("--seconds", value));
    } else if (arg == "--input-seconds") {
      o.input_seconds = unsigned(std::min<uint64_t>(parse_count("--input-seconds", value), 3600));
    } else if (arg == "--seed-file") {
      o.seed_file = value;
    } else if (arg == "--only") {
      o.only = parse_count("--only", value);
    } else if (arg == "--save") {
      o.save = value;
    } else {
      usage_error("unknown flag " + arg);
    }
  }
  if (o.seed_dir.empty()) {
    usage_error(
        "no seed folder (usage: mx_fuzz_replay_<target> SEED_DIR [--mutations N] "
        "[--seconds S] [--input-seconds S] [--seed-file NAME] [--only N] [--save PATH])");
  }
  if (!o.save.empty() && (o.seed_file.empty() || !o.only)) {
    usage_error("--save needs --seed-file and --only (it writes one input)");
  }
  return o;
}

// Every regular file of `dir`, by name, so that seed indices (and splices) are the same on
// every run.
std::vector<Seed> read_seeds(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) usage_error("no seed folder " + dir.string());
  std::vector<Seed> seeds;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    seeds.push_back({e.path().filename().string(),
                     {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()}});
    if (!in && !in.eof()) usage_error("cannot read seed " + e.path().string());
  }
  if (ec) usage_error("cannot list " + dir.string() + ": " + ec.message());
  if (seeds.empty()) usage_error("no seed files in " + dir.string());
  std::sort(seeds.begin(), seeds.end(),
            [](const Seed& a, const Seed& b) { return a.name < b.name; });
  return seeds;
}

class Replay {
 public:
  Replay(const Options& o, std::string target, std::string program)
      : options_(o), target_(std::move(target)), program_(std::move(program)) {}

  // Runs `bytes` through the target from a buffer of exactly its size, so that AddressSanitizer
  // sees a read past the end.
  void run(const std::vector<uint8_t>& bytes, const std::string& seed, std::optional<uint64_t> n,
           const std::string& what) {
    const std::string again = n ? "--only " + std::to_string(*n) : "--mutations 0";
    const std::string input = (n ? "mutation " + std::to_string(*n) : std::string("as written")) +
                              (what.empty() ? "" : " (" + what + ")");
    std::snprintf(g_report, sizeof g_report,
                  "%s, seed %s, %s\n  run it alone: %s %s --seed-file %s %s\n", target_.c_str(),
                  seed.c_str(), input.c_str(), program_.c_str(), options_.seed_dir.c_str(),
                  seed.c_str(), again.c_str());
    std::unique_ptr<uint8_t[]> copy(new uint8_t[std::max<size_t>(bytes.size(), 1)]);
    std::copy(bytes.begin(), bytes.end(), copy.get());
    alarm(options_.input_seconds);
    g_inside = 1;
    LLVMFuzzerTestOneInput(copy.get(), bytes.size());
    g_inside = 0;
    alarm(0);
    ++inputs_;
  }

  uint64_t inputs() const { return inputs_; }

 private:
  const Options& options_;
  std::string target_, program_;
  uint64_t inputs_ = 0;
};

// "npy" from ".../mx_fuzz_replay_npy".
std::string target_name(const char* program) {
  const std::string base = fs::path(program).filename().string();
  const std::string prefix = "mx_fuzz_replay_";
  return base.rfind(prefix, 0) == 0 ? base.substr(prefix.size()) : base;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_options(argc, argv);
  const std::vector<Seed> seeds = read_seeds(o.seed_dir);
  std::vector<size_t> chosen;
  for (size_t i = 0; i < seeds.size(); ++i) {
    if (o.seed_file.empty() || seeds[i].name == o.seed_file) chosen.push_back(i);
  }
  if (chosen.empty()) usage_error("no seed " + o.seed_file + " in " + o.seed_dir.string());

  if (!o.save.empty()) {
    const mx::fuzz::Mutation m = mx::fuzz::mutate(seeds, chosen[0], *o.only);
    std::ofstream out(o.save, std::ios::binary);
    out.write(reinterpret_cast<const char*>(m.bytes.data()), std::streamsize(m.bytes.size()));
    if (!out.flush()) usage_error("cannot write " + o.save);
    std::printf("%s: mutation %llu (%s) written to %s\n", seeds[chosen[0]].name.c_str(),
                static_cast<unsigned long long>(*o.only), m.description.c_str(), o.save.c_str());
  }

  install_failure_handlers();
  Replay replay(o, target_name(argv[0]), argv[0]);
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  if (!o.only) {
    for (const size_t i : chosen) replay.run(seeds[i].bytes, seeds[i].name, std::nullopt, "");
  }
  const uint64_t first = o.only ? *o.only : 0;
  const uint64_t end = o.only ? *o.only + 1 : o.mutations;
  uint64_t n = first;
  bool capped = false;
  for (; n < end && !capped; ++n) {
    for (const size_t i : chosen) {
      const mx::fuzz::Mutation m = mx::fuzz::mutate(seeds, i, n);
      replay.run(m.bytes, seeds[i].name, n, m.description);
    }
    capped = o.seconds > 0 && elapsed() > o.seconds;
  }
  const std::string ran =
      n == first ? "no mutations"
                 : "mutations " + std::to_string(first) + ".." + std::to_string(n - 1) + " of each";
  std::printf("%s: %llu inputs from %zu seed(s), %s%s, in %.1f s\n", target_name(argv[0]).c_str(),
              static_cast<unsigned long long>(replay.inputs()), chosen.size(), ran.c_str(),
              capped ? " (stopped at the --seconds cap)" : "", elapsed());
  return 0;
}
