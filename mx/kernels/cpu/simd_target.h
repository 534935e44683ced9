// The instruction sets the CPU fast path is compiled for, chosen at run time.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace mx::cpu {

// In increasing order. avx512vnni is avx512 plus the VNNI int8 dot product, which only the
// matrix product's fast mode uses.
enum class SimdTarget { kScalar, kAvx2, kAvx512, kAvx512Vnni };

std::string_view target_name(SimdTarget t);
std::optional<SimdTarget> parse_target(std::string_view name);
bool target_supported(SimdTarget t);
// Best target this CPU supports; the MX_CPU_TARGET environment variable (scalar, avx2,
// avx512, avx512vnni) may force a lower one.
SimdTarget best_target();
std::vector<SimdTarget> supported_targets();

}  // namespace mx::cpu
