// Re-encodes a parsed safetensors file with a checksum that matches (io/content_checksum.h), as a
// hostile writer can: the model-file and checkpoint targets then reach the checks behind it.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "mx/io/content_checksum.h"
#include "mx/io/safetensors.h"

namespace mx::fuzz {

// False when the file cannot be re-encoded (the encoder refuses some names the parser takes).
inline bool seal(const io::SafetensorsFile& f, std::vector<uint8_t>* out) {
  std::vector<io::TensorToWrite> tensors;
  for (const io::SafetensorsTensor& t : f.tensors()) {
    tensors.push_back({t.name, t.dtype, t.shape, t.bytes});
  }
  std::map<std::string, std::string> metadata = f.metadata();
  io::add_checksum(tensors, &metadata);
  return io::encode_safetensors(tensors, metadata, out).empty();
}

}  // namespace mx::fuzz
