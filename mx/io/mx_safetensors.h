// MX tensors in safetensors files, in the gpt-oss convention extended to every QuantSpec.
// An MxTensor called NAME is stored as
//   NAME.blocks   U8   its packed element bytes (MxTensor::elements). For MXFP4 in row-wise
//                      blocks of 32 (check_mxfp4_rowwise) the shape is gpt-oss's
//                      [..., N, K/32, 16] (layout_gpt_oss.h); otherwise a 1-D array.
//   NAME.scales   U8   the E8M0 scales, shaped as the block grid's scale_shape
//                      (for MXFP4 row-wise: [..., N, K/32]).
//   NAME.offsets  U16  the bfloat16 offsets, scale_shape, asymmetric specs only.
// and the "__metadata__" key "mx.NAME" holding compact JSON with the logical shape and the
// whole spec, keys in this order:
//   {"shape":[...],"format":"mxfp4_e2m1","block":32,"axis":-1,"tile":[0,0],"scale":"floor",
//    "round":"nearest-even","seed":0,"asym":false,"flush":false,"zero_scale":0}
// Loading reverses this exactly: the same bytes and the same spec.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "mx/core/mx_tensor.h"
#include "mx/io/safetensors.h"

namespace mx::io {

// "mx." + name: the metadata key of an MX tensor.
std::string mx_metadata_key(const std::string& name);

// The metadata JSON for an MxTensor's shape and spec (see above).
std::string mx_spec_json(const MxTensor& t);
// Parses that JSON into shape and spec (unknown or missing keys are errors; "zero_scale" is
// optional and defaults to 0).
std::string parse_mx_spec_json(const std::string& json, std::vector<int64_t>* shape,
                               QuantSpec* spec);

// Appends NAME.blocks, NAME.scales (and NAME.offsets) to `tensors` and "mx.NAME" to `metadata`.
// The appended spans point into `t`, which must outlive the write. Fails (appending nothing)
// when `t` is inconsistent (check_consistent) or a name is already in `tensors`.
std::string add_mx_tensor(const std::string& name, const MxTensor& t,
                          std::vector<TensorToWrite>* tensors,
                          std::map<std::string, std::string>* metadata);

// Loads the MX tensor called `name` (its "mx.NAME" metadata and component tensors), checking
// dtypes, shapes and byte counts.
std::string load_mx_tensor(const SafetensorsFile& file, const std::string& name, MxTensor* out);

// The names of the safetensors tensors that store the MX tensor `name`: NAME.blocks,
// NAME.scales and, for an asymmetric spec, NAME.offsets.
std::vector<std::string> mx_component_names(const std::string& name, const MxTensor& t);

// Loads every MX tensor named by an "mx.*" metadata key, by name.
std::string load_mx_tensors(const SafetensorsFile& file, std::map<std::string, MxTensor>* out);

// "" when every "mx.*" entry of `file` is a whole MX tensor (as load_mx_tensors reads it), else
// the first problem: for readers that copy or skip MX tensors but must refuse a damaged file.
std::string check_mx_tensors(const SafetensorsFile& file);

}  // namespace mx::io
