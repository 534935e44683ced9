// Shared libraries opened at run time instead of linked (cuBLASLt, NCCL): the first of a list of
// places that loads and has every function the caller binds.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace mx::cuda {

// Tries each of `candidates` in order with dlopen; `bind` fills the caller's function pointers
// from an opened library and returns the first symbol it could not find, or "". Returns the
// first library that binds completely (it stays open for the life of the process), or nullptr
// with *reasons listing, in one line, why each place failed ("" when there was none to try).
void* open_first_library(const std::vector<std::string>& candidates,
                         const std::function<std::string(void* library)>& bind,
                         std::string* reasons);

}  // namespace mx::cuda
