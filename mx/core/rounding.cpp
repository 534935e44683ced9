#include "mx/core/rounding.h"

namespace mx {

std::string_view rounding_name(Rounding r) {
  switch (r) {
    case Rounding::kNearestEven:
      return "nearest-even";
    case Rounding::kNearestAway:
      return "nearest-away";
    case Rounding::kTowardZero:
      return "toward-zero";
    case Rounding::kStochastic:
      return "stochastic";
  }
  return "?";
}

std::optional<Rounding> parse_rounding(std::string_view name) {
  for (Rounding r : {Rounding::kNearestEven, Rounding::kNearestAway, Rounding::kTowardZero,
                     Rounding::kStochastic}) {
    if (name == rounding_name(r)) return r;
  }
  if (name == "rne" || name == "even") return Rounding::kNearestEven;
  if (name == "sr") return Rounding::kStochastic;
  return std::nullopt;
}

}  // namespace mx
