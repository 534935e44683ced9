// Shared libraries opened at run time instead of linked (cuBLASLt, NCCL): the first of a list of
// places that loads and has every function the caller binds, opened once per process.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace mx::cuda {

// `file` for the system's search path, then the same file in the toolkit's library folder found
// at configure time (programs carry no RUNPATH to it, since nothing links these libraries).
std::vector<std::string> toolkit_library_candidates(const std::string& file);

// Tries each of `candidates` in order with dlopen; `bind` fills the caller's function pointers
// from an opened library and returns the first symbol it could not find, or "". Returns the
// first library that binds completely (it stays open for the life of the process), or nullptr
// with *reasons listing, in one line, why each place failed ("" when there was none to try).
void* open_first_library(const std::vector<std::string>& candidates,
                         const std::function<std::string(void* library)>& bind,
                         std::string* reasons);

// dlsym, for bind functions: sets `slot` to `symbol` in `library`, and *missing to the symbol's
// name if it is absent and nothing is missing yet.
void* find_symbol(void* library, const char* symbol);
template <class Fn>
void bind_symbol(void* library, Fn& slot, const char* symbol, std::string* missing) {
  slot = reinterpret_cast<Fn>(find_symbol(library, symbol));
  if (slot == nullptr && missing->empty()) *missing = symbol;
}

// An Api (a struct of function pointers) from the first of `candidates` that `bind(library,
// api)` fills completely; nullopt with "cannot load WHAT (FILE): reasons" in *error otherwise.
template <class Api, class Bind>
std::optional<Api> open_api(const char* what, const std::string& file,
                            const std::vector<std::string>& candidates, Bind bind,
                            std::string* error) {
  Api api;
  std::string reasons;
  if (open_first_library(
          candidates, [&](void* library) { return bind(library, api); }, &reasons)) {
    return api;
  }
  if (error != nullptr) {
    *error = std::string("cannot load ") + what + " (" + file +
             "): " + (reasons.empty() ? "no place to look for it" : reasons);
  }
  return std::nullopt;
}

// open() -> std::optional<Api> (filling its error argument) run once per process, safe from any
// thread: the Api, or nullptr with the reason in *error.
template <class Api, class Open>
const Api* open_once(Open open, std::string* error) {
  struct Loaded {
    std::optional<Api> api;
    std::string error;
  };
  static const Loaded loaded = [&] {
    Loaded l;
    l.api = open(&l.error);
    return l;
  }();
  if (!loaded.api && error != nullptr) *error = loaded.error;
  return loaded.api ? &*loaded.api : nullptr;
}

}  // namespace mx::cuda
