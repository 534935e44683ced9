// A library to preload into any CUDA program (LD_PRELOAD) that records when each kernel, copy and
// memset ran on the GPU, through CUPTI's activity records, and writes them when the program ends:
// one line per record, "start_ns end_ns name", in the file MX_KERNEL_TRACE names
// (kernel_trace.txt if unset). bench/cuda/kernel_gaps.py reads it. Tracing records timestamps only,
// without serializing kernels, so the program runs as it would untraced.
#include <cupti.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

namespace {

struct Record {
  uint64_t start, end;
  std::string name;
};

constexpr size_t kBufferBytes = size_t{8} << 20;

// Leaked on purpose: the writer runs from a static destructor, after others may be gone.
std::vector<Record>& records() {
  static auto* all = new std::vector<Record>;
  return *all;
}
std::mutex& records_mutex() {
  static auto* m = new std::mutex;
  return *m;
}

void CUPTIAPI give_buffer(uint8_t** buffer, size_t* size, size_t* max_records) {
  *buffer = static_cast<uint8_t*>(std::aligned_alloc(8, kBufferBytes));
  *size = *buffer != nullptr ? kBufferBytes : 0;
  *max_records = 0;  // as many as fit
}

void CUPTIAPI take_buffer(CUcontext, uint32_t, uint8_t* buffer, size_t, size_t valid) {
  std::lock_guard<std::mutex> lock(records_mutex());
  CUpti_Activity* record = nullptr;
  while (cuptiActivityGetNextRecord(buffer, valid, &record) == CUPTI_SUCCESS) {
    if (record->kind == CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) {
      const auto* k = reinterpret_cast<const CUpti_ActivityKernel10*>(record);
      records().push_back({k->start, k->end, k->name != nullptr ? k->name : "kernel"});
    } else if (record->kind == CUPTI_ACTIVITY_KIND_MEMCPY) {
      const auto* c = reinterpret_cast<const CUpti_ActivityMemcpy6*>(record);
      records().push_back({c->start, c->end, "memcpy"});
    } else if (record->kind == CUPTI_ACTIVITY_KIND_MEMSET) {
      const auto* m = reinterpret_cast<const CUpti_ActivityMemset4*>(record);
      records().push_back({m->start, m->end, "memset"});
    }
  }
  std::free(buffer);
}

struct Tracer {
  bool on = false;
  Tracer() {
    on = cuptiActivityRegisterCallbacks(give_buffer, take_buffer) == CUPTI_SUCCESS &&
         cuptiActivityEnable(CUPTI_ACTIVITY_KIND_CONCURRENT_KERNEL) == CUPTI_SUCCESS &&
         cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMCPY) == CUPTI_SUCCESS &&
         cuptiActivityEnable(CUPTI_ACTIVITY_KIND_MEMSET) == CUPTI_SUCCESS;
    if (!on) std::fprintf(stderr, "kernel_trace: CUPTI would not record activity\n");
  }
  ~Tracer() {
    if (!on) return;
    cuptiActivityFlushAll(CUPTI_ACTIVITY_FLAG_FLUSH_FORCED);
    const char* env = std::getenv("MX_KERNEL_TRACE");
    const std::string path = env != nullptr && *env != '\0' ? env : "kernel_trace.txt";
    const std::string partial = path + ".partial";
    std::FILE* f = std::fopen(partial.c_str(), "w");
    if (f == nullptr) {
      std::fprintf(stderr, "kernel_trace: cannot write %s\n", partial.c_str());
      return;
    }
    std::lock_guard<std::mutex> lock(records_mutex());
    for (const Record& r : records()) {
      std::fprintf(f, "%llu %llu %s\n", static_cast<unsigned long long>(r.start),
                   static_cast<unsigned long long>(r.end), r.name.c_str());
    }
    if (std::fclose(f) != 0 || std::rename(partial.c_str(), path.c_str()) != 0) {
      std::fprintf(stderr, "kernel_trace: cannot write %s\n", path.c_str());
      std::remove(partial.c_str());
    }
  }
};

const Tracer tracer;

}  // namespace
