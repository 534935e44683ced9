#include "tools/mx/direct_cast_table.h"

#include <fmt/format.h>

#include <cmath>

namespace mx::tools {

void print_direct_cast_table(
    const std::vector<std::pair<std::string, train::DirectCastResult>>& rows) {
  fmt::print("  {:<16} {:>10} {:>10} {:>10} {:>7}\n", "recipe", "loss", "ppl", "KL", "top-1");
  if (rows.empty()) return;
  const double ref = rows.front().second.reference_loss;
  fmt::print("  {:<16} {:>10.4f} {:>10.3f} {:>10} {:>7}\n", "fp32", ref, std::exp(ref), "-", "-");
  for (const auto& [name, r] : rows) {
    fmt::print("  {:<16} {:>10.4f} {:>10.3f} {:>10.2e} {:>6.1f}%\n", name, r.loss, r.ppl, r.kl,
               100 * r.top1);
  }
}

}  // namespace mx::tools
