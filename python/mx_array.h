// MxArray: the Python face of an MxTensor. It owns the tensor; .packed, .scales() and
// .offsets() are read-only numpy views of its buffers, .codes() and .dequantize() new arrays.
#pragma once

#include <cstdint>
#include <vector>

#include "mx/core/block_grid.h"
#include "mx/core/mx_tensor.h"
#include "python/binding.h"

namespace mx::python {

struct MxArray {
  MxTensor tensor;
  BlockGrid grid;  // make_block_grid(tensor.shape, tensor.spec)
};

// An MxArray taking over `t`, which must be consistent (check_consistent); ValueError if not.
MxArray make_mx_array(MxTensor&& t);

// The decoded values of `a` as a new numpy array of `dtype`.
py::array dequantize(const MxArray& a, DType dtype);

// A spec as the keywords of quantize() that give it (and its zero_block_scale), as MxArray.spec
// shows it.
py::dict spec_dict(const QuantSpec& spec);

}  // namespace mx::python
