// How every `mx` subcommand runs its body, so that failure looks the same everywhere: a
// returned error, or anything the body throws (std::bad_alloc included), becomes one line
// "mx NAME: error: ..." on stderr and exit status 2.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace mx::tools {

void run_command(std::string_view name, const std::function<std::string()>& body);

// One line on stderr, "mx NAME: error: MESSAGE", with control characters in MESSAGE (a newline
// in a path given on the command line, say) escaped; sets exit status 2.
void report_error(std::string_view name, const std::string& message);

}  // namespace mx::tools
