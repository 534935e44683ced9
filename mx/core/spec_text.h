// A QuantSpec from the words people type: the values of the `mx` flags --format, --block,
// --axis, --tile, --scale, --round, --seed, --asym, --flush-subnormals and --preset, and the
// keyword arguments of the Python module, which take the same values. Both front ends pass the
// text here, so a mistake gets the same one-line message in both, naming the flag.
#pragma once

#include <string>

#include "mx/core/quant_spec.h"

namespace mx {

struct SpecText {
  std::string format = "mxfp8_e4m3";   // any name parse_format accepts
  std::string block = "32";            // elements per 1-D block
  std::string axis = "-1";             // axis of the blocks, negative from the end
  std::string tile;                    // "RxC": 2-D tiles over the last two axes
  std::string scale = "floor";         // floor | ceil | even | rceil
  std::string round = "nearest-even";  // nearest-even | nearest-away | toward-zero | stochastic
  std::string seed = "0";              // stochastic rounding stream
  bool asym = false;                   // a bfloat16 offset per block
  bool flush_subnormals = false;
  std::string preset;  // microxcaling | torchao | te; explicit scale and round still win

  // Whether a value was given rather than left at its default: a tile excludes an explicit
  // block or axis, and an explicit scale or rounding overrides the preset's.
  bool block_given = false;
  bool axis_given = false;
  bool tile_given = false;  // even as "", which is then a bad tile
  bool scale_given = false;
  bool round_given = false;
};

// The spec `text` describes, or a one-line reason naming the bad value's flag. Whether the spec
// fits a particular array (axis range, tile size) is checked by make_block_grid.
std::string parse_spec_text(const SpecText& text, QuantSpec* spec);

}  // namespace mx
