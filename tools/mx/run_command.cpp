#include "tools/mx/run_command.h"

#include <fmt/format.h>

#include <exception>
#include <new>
#include <stdexcept>

#include "mx/io/cat.h"
#include "tools/mx/commands.h"

namespace mx::tools {

void report_error(std::string_view name, const std::string& message) {
  fmt::print(stderr, "mx {}: error: {}\n", name, io::one_line(message));
  set_exit_code(2);
}

void run_command(std::string_view name, const std::function<std::string()>& body) {
  std::string error;
  try {
    error = body();
  } catch (const std::bad_alloc&) {
    error = "out of memory";
  } catch (const std::length_error&) {
    error = "out of memory (a size beyond what this machine can allocate)";
  } catch (const std::exception& e) {
    error = io::cat("internal error: ", e.what());
  }
  if (!error.empty()) report_error(name, error);
}

}  // namespace mx::tools
