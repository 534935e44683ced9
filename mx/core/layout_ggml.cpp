#include "mx/core/layout_ggml.h"

#include <algorithm>
#include <cstring>

#include "mx/core/block_grid.h"
#include "mx/core/layout_gpt_oss.h"

namespace mx {

namespace {

// Our block: 16 bytes, slot s in byte s / 2, low nibble for even s (a low-first bit stream).
uint8_t our_code(const uint8_t* block, int s) {
  return (block[s / 2] >> (4 * (s % 2))) & 0xF;
}

// ggml's block: slot s in byte s % 16, low nibble for the first half of the block.
uint8_t ggml_code(const uint8_t* qs, int s) {
  return (qs[s % 16] >> (4 * (s / 16))) & 0xF;
}

}  // namespace

std::vector<BlockMxfp4> to_ggml_mxfp4(const MxTensor& t, std::string* error) {
  *error = check_mxfp4_rowwise(t);
  if (!error->empty()) return {};
  std::vector<BlockMxfp4> out(t.scales.size());
  for (size_t b = 0; b < out.size(); ++b) {
    const uint8_t* ours = t.elements.data() + 16 * b;
    out[b].e = t.scales[b];
    for (int j = 0; j < 16; ++j) {
      out[b].qs[j] = static_cast<uint8_t>(our_code(ours, j) | (our_code(ours, j + 16) << 4));
    }
  }
  return out;
}

std::vector<uint8_t> to_ggml_mxfp4_bytes(const MxTensor& t, std::string* error) {
  const std::vector<BlockMxfp4> blocks = to_ggml_mxfp4(t, error);
  std::vector<uint8_t> bytes(blocks.size() * sizeof(BlockMxfp4));
  if (!bytes.empty()) std::memcpy(bytes.data(), blocks.data(), bytes.size());
  return bytes;
}

MxTensor from_ggml_mxfp4(std::span<const BlockMxfp4> blocks, std::span<const int64_t> shape,
                         std::string* error) {
  error->clear();
  if (shape.empty() || shape.back() % 32 != 0) {
    *error = "ggml MXFP4 needs a shape whose last dimension is a multiple of 32";
    return {};
  }
  if (std::any_of(shape.begin(), shape.end(), [](int64_t d) { return d < 0; })) {
    *error = "negative dimension in shape";
    return {};
  }
  const int64_t want = element_count(shape) / 32;
  if (int64_t(blocks.size()) != want) {
    *error = "ggml MXFP4 data has " + std::to_string(blocks.size()) + " blocks, the shape needs " +
             std::to_string(want);
    return {};
  }
  MxTensor t = make_mx_tensor(shape, mxfp4_rowwise_spec(), error);
  if (!error->empty()) return {};
  for (size_t b = 0; b < blocks.size(); ++b) {
    uint8_t* ours = t.elements.data() + 16 * b;
    t.scales[b] = blocks[b].e;
    for (int i = 0; i < 16; ++i) {
      const int s = 2 * i;  // byte i of our block holds slots 2i and 2i + 1
      ours[i] =
          static_cast<uint8_t>(ggml_code(blocks[b].qs, s) | (ggml_code(blocks[b].qs, s + 1) << 4));
    }
  }
  return t;
}

MxTensor from_ggml_mxfp4_bytes(std::span<const uint8_t> bytes, std::span<const int64_t> shape,
                               std::string* error) {
  if (bytes.size() % sizeof(BlockMxfp4) != 0) {
    *error = "ggml MXFP4 data must be 17 bytes per block, got " + std::to_string(bytes.size()) +
             " bytes";
    return {};
  }
  std::vector<BlockMxfp4> blocks(bytes.size() / sizeof(BlockMxfp4));
  if (!bytes.empty()) std::memcpy(blocks.data(), bytes.data(), bytes.size());
  return from_ggml_mxfp4(blocks, shape, error);
}

}  // namespace mx
