// A 64-bit checksum of a safetensors file's whole contents, stored in the file's own metadata,
// so that a damaged file is refused wherever it is read rather than used. It covers every tensor
// (name, dtype, shape and bytes, in name order) and every metadata entry but its own, in key
// order. It guards against damage, not against a forger, who can recompute it.
#pragma once

#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mx/io/safetensors.h"

namespace mx::io {

inline constexpr std::string_view kChecksumKey = "mxkit.checksum";

// Sets metadata[kChecksumKey] to the checksum of `tensors` and the rest of `metadata`.
void add_checksum(std::span<const TensorToWrite> tensors,
                  std::map<std::string, std::string>* metadata);

// For writers whose metadata was copied from another file: a checksum that came with it no
// longer matches the new contents. Recomputes it over `tensors` when `metadata` carries one;
// leaves metadata without one as it is.
void refresh_checksum(std::span<const TensorToWrite> tensors,
                      std::map<std::string, std::string>* metadata);

// "" when the file carries no checksum (files that other programs wrote) or a matching one.
// open_safetensors and parse_safetensors call it: every reader gets the check.
std::string verify_checksum(const SafetensorsFile& file);

}  // namespace mx::io
