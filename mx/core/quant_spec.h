// QuantSpec: every choice that defines how a tensor becomes MX blocks.
#pragma once

#include <cstdint>
#include <string>

#include "mx/core/format.h"
#include "mx/core/rounding.h"
#include "mx/core/scale_rule.h"

namespace mx {

struct QuantSpec {
  ElementFormat format = ElementFormat::kE4M3;
  // 1-D blocks of `block_size` elements along `axis` (negative counts from the end)...
  int block_size = 32;
  int axis = -1;
  // ...or, when both are positive, 2-D tiles of tile_rows x tile_cols over the last two axes.
  int tile_rows = 0;
  int tile_cols = 0;
  ScaleRule scale_rule = ScaleRule::kFloor;
  Rounding rounding = Rounding::kNearestEven;
  uint64_t seed = 0;  // stochastic rounding stream
  // Asymmetric: each block also stores a bfloat16 offset m (the block's mid-range) and
  // quantizes v - m; decoding gives X * P + m. See docs/NUMERICS.md.
  bool asymmetric = false;
  // Treat float32 subnormal inputs as zero before anything else.
  bool flush_subnormals = false;
  // Scale byte written for a block whose values are all zero (0x00, i.e. 2^-127, by default).
  uint8_t zero_block_scale = 0;

  bool is_tiled() const { return tile_rows > 0 && tile_cols > 0; }
  int elements_per_block() const { return is_tiled() ? tile_rows * tile_cols : block_size; }
  friend bool operator==(const QuantSpec&, const QuantSpec&) = default;
};

// Named presets for compatibility with peer libraries.
// microxcaling: ties away from zero; MXINT8's all-zero block gets scale byte 1 (2^-126).
QuantSpec microxcaling_preset(ElementFormat format);
// torchao / TransformerEngine training recipes: RCEIL scales.
QuantSpec rceil_preset(ElementFormat format);

// Empty when the spec is usable on its own (sizes positive), else a one-line reason.
std::string validate(const QuantSpec& spec);

// One-line description, e.g. "mxfp8_e4m3 block=32 axis=-1 scale=floor round=nearest-even".
std::string describe(const QuantSpec& spec);

}  // namespace mx
