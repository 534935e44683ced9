#include "mx/nn/packed_operands.h"

#include "mx/core/format.h"

namespace mx::nn {

bool cast_reaches_products_packed(const OperandCast& cast) {
  if (cast.kind != OperandCast::Kind::kMx || cast.is_rotated()) return false;
  const QuantSpec& s = cast.spec;
  const int bits = traits(s.format).bits;
  return s.block_size == 32 && !s.asymmetric && !s.is_tiled() &&
         (bits == 4 || bits == 6 || bits == 8);
}

bool product_takes_packed_operands(const OperandCast& a, const OperandCast& b,
                                   std::initializer_list<int64_t> dims) {
  if (!cast_reaches_products_packed(a) || !cast_reaches_products_packed(b)) return false;
  for (const int64_t d : dims) {
    if (d <= 0 || d % 32 != 0) return false;
  }
  return true;
}

}  // namespace mx::nn
