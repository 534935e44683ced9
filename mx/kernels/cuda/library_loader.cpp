#include "mx/kernels/cuda/library_loader.h"

#include <dlfcn.h>

namespace mx::cuda {

std::vector<std::string> toolkit_library_candidates(const std::string& file) {
  std::vector<std::string> candidates{file};
#ifdef MX_CUDA_TOOLKIT_LIBRARY_DIR
  candidates.push_back(std::string(MX_CUDA_TOOLKIT_LIBRARY_DIR) + "/" + file);
#endif
  return candidates;
}

void* find_symbol(void* library, const char* symbol) {
  return dlsym(library, symbol);
}

void* open_first_library(const std::vector<std::string>& candidates,
                         const std::function<std::string(void* library)>& bind,
                         std::string* reasons) {
  reasons->clear();
  for (const std::string& path : candidates) {
    if (!reasons->empty()) *reasons += "; ";
    void* library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (library == nullptr) {
      const char* why = dlerror();
      *reasons += why != nullptr ? why : path + ": cannot be opened";
      continue;
    }
    const std::string missing = bind(library);
    if (missing.empty()) return library;
    dlclose(library);
    *reasons += path + " has no function " + missing;
  }
  return nullptr;
}

}  // namespace mx::cuda
