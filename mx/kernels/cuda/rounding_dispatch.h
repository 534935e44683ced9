// The kernels are templates over the rounding mode and integer-vs-float formats (NOTES.md);
// dispatch picks the instance for the values known at run time. Each kernel file calls it from
// its launch functions, so the file that defines a kernel also instantiates it.
#pragma once

#include "mx/core/rounding.h"

namespace mx::cuda {

// Calls Launch<mode, integer>::run(args...).
template <template <Rounding, bool> class Launch, class... Args>
void dispatch(Rounding mode, bool integer, Args&&... args) {
  auto go = [&]<Rounding M>() {
    if (integer) {
      Launch<M, true>::run(args...);
    } else {
      Launch<M, false>::run(args...);
    }
  };
  switch (mode) {
    case Rounding::kNearestEven:
      go.template operator()<Rounding::kNearestEven>();
      break;
    case Rounding::kNearestAway:
      go.template operator()<Rounding::kNearestAway>();
      break;
    case Rounding::kTowardZero:
      go.template operator()<Rounding::kTowardZero>();
      break;
    case Rounding::kStochastic:
      go.template operator()<Rounding::kStochastic>();
      break;
  }
}

}  // namespace mx::cuda
