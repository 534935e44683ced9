#include "mx/io/memory_budget.h"

#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <limits>
#include <string>

#include "mx/io/cat.h"

namespace mx::io {
namespace {

// MemAvailable from /proc/meminfo, in bytes; -1 when absent.
int64_t meminfo_available() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  int64_t kilobytes = 0;
  std::string unit;
  while (in >> key >> kilobytes >> unit) {
    if (key == "MemAvailable:") return kilobytes * 1024;
  }
  return -1;
}

// The address space this process already uses, in bytes (the first field of /proc/self/statm).
int64_t address_space_in_use() {
  std::ifstream in("/proc/self/statm");
  int64_t pages = 0;
  if (!(in >> pages)) return 0;
  return pages * ::sysconf(_SC_PAGESIZE);
}

}  // namespace

int64_t available_memory_bytes() {
  int64_t budget = std::numeric_limits<int64_t>::max();
  if (const int64_t available = meminfo_available(); available >= 0) budget = available;
  rlimit limit{};
  if (::getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY &&
      limit.rlim_cur < static_cast<rlim_t>(std::numeric_limits<int64_t>::max())) {
    const int64_t left = static_cast<int64_t>(limit.rlim_cur) - address_space_in_use();
    budget = std::min(budget, std::max<int64_t>(left, 0));
  }
  return budget;
}

int64_t peak_resident_bytes() {
  rusage usage{};
  if (::getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return int64_t(usage.ru_maxrss) * 1024;  // kilobytes on Linux
}

int64_t resident_bytes() {
  std::ifstream in("/proc/self/statm");
  int64_t size = 0, resident = 0;
  if (!(in >> size >> resident)) return 0;
  return resident * ::sysconf(_SC_PAGESIZE);
}

void release_pages(void* p, int64_t bytes) {
  const auto page = uintptr_t(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (uintptr_t(p) + page - 1) / page * page;
  const uintptr_t end = (uintptr_t(p) + uintptr_t(bytes)) / page * page;
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

std::string format_bytes(double bytes) {
  char text[64];
  if (bytes >= 1e12) {
    std::snprintf(text, sizeof text, "%.1f TB", bytes / 1e12);
  } else if (bytes >= 1e9) {
    std::snprintf(text, sizeof text, "%.1f GB", bytes / 1e9);
  } else if (bytes >= 1e6) {
    std::snprintf(text, sizeof text, "%.0f MB", bytes / 1e6);
  } else {
    std::snprintf(text, sizeof text, "%.0f kB", bytes / 1e3);
  }
  return text;
}

std::string check_memory(double bytes, const std::string& what) {
  const int64_t available = available_memory_bytes();
  if (bytes <= static_cast<double>(available)) return "";
  return cat(what, " needs ", format_bytes(bytes), ", more than the ",
             format_bytes(double(available)), " available");
}

}  // namespace mx::io
