#include "mx/kernels/cpu/simd_target.h"

#include <cpuid.h>

#include <cstdlib>
#include <iterator>

namespace mx::cpu {
namespace {

constexpr SimdTarget kAllTargets[] = {SimdTarget::kScalar, SimdTarget::kAvx2, SimdTarget::kAvx512,
                                      SimdTarget::kAvx512Vnni};

}  // namespace

std::string_view target_name(SimdTarget t) {
  switch (t) {
    case SimdTarget::kScalar:
      return "scalar";
    case SimdTarget::kAvx2:
      return "avx2";
    case SimdTarget::kAvx512:
      return "avx512";
    case SimdTarget::kAvx512Vnni:
      return "avx512vnni";
  }
  return "?";
}

std::optional<SimdTarget> parse_target(std::string_view name) {
  for (SimdTarget t : kAllTargets) {
    if (name == target_name(t)) return t;
  }
  return std::nullopt;
}

namespace {

// CPUID leaf 1, ECX: read directly, since clang 14's __builtin_cpu_supports does not know "f16c".
bool has_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
}

bool probe(SimdTarget t) {
  switch (t) {
    case SimdTarget::kScalar:
      return true;
    case SimdTarget::kAvx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("bmi2") && has_f16c();
    case SimdTarget::kAvx512:
      return probe(SimdTarget::kAvx2) && __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512cd");
    case SimdTarget::kAvx512Vnni:
      return probe(SimdTarget::kAvx512) && __builtin_cpu_supports("avx512vnni");
  }
  return false;
}

}  // namespace

// Probed once: CPUID traps to the hypervisor in a virtual machine, and a matrix-vector product
// of a small model, which picks its kernels at every call, takes only tens of microseconds.
bool target_supported(SimdTarget t) {
  static const bool supported[] = {probe(kAllTargets[0]), probe(kAllTargets[1]),
                                   probe(kAllTargets[2]), probe(kAllTargets[3])};
  static_assert(std::size(kAllTargets) == std::size(supported));
  for (size_t i = 0; i < std::size(kAllTargets); ++i) {
    if (kAllTargets[i] == t) return supported[i];
  }
  return false;
}

std::vector<SimdTarget> supported_targets() {
  std::vector<SimdTarget> out;
  for (SimdTarget t : kAllTargets) {
    if (target_supported(t)) out.push_back(t);
  }
  return out;
}

SimdTarget best_target() {
  SimdTarget best = SimdTarget::kScalar;
  for (SimdTarget t : supported_targets()) best = t;
  if (const char* forced = std::getenv("MX_CPU_TARGET")) {
    if (auto t = parse_target(forced); t && target_supported(*t) && *t < best) best = *t;
  }
  return best;
}

}  // namespace mx::cpu
