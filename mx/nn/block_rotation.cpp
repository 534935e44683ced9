#include "mx/nn/block_rotation.h"

#include <cmath>

namespace mx::nn {

void hadamard_rotate_blocks(float* data, std::span<const int64_t> shape, int axis, int block) {
  const int rank = int(shape.size());
  if (axis < 0) axis += rank;
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= shape[size_t(d)];
  for (int d = axis + 1; d < rank; ++d) inner *= shape[size_t(d)];
  const int64_t length = shape[size_t(axis)];
  const int64_t whole = length / block * block;
  // 1/sqrt(block) rounded once to float32: H / sqrt(block) is orthonormal and its own inverse.
  const float norm = float(1.0 / std::sqrt(double(block)));
  // A block is `block` rows of `inner` contiguous values, rotated row against row, so that the
  // butterflies run along contiguous memory whatever the axis.
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t start = 0; start < whole; start += block) {
      float* rows = data + (o * length + start) * inner;
      for (int64_t half = 1; half < block; half *= 2) {
        for (int64_t pair = 0; pair < block; pair += 2 * half) {
          for (int64_t r = pair; r < pair + half; ++r) {
            float* a = rows + r * inner;
            float* b = rows + (r + half) * inner;
            for (int64_t i = 0; i < inner; ++i) {
              const float x = a[i], y = b[i];
              a[i] = x + y;
              b[i] = x - y;
            }
          }
        }
      }
      for (int64_t i = 0; i < block * inner; ++i) rows[i] *= norm;
    }
  }
}

}  // namespace mx::nn
