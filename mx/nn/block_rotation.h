// Block rotations: an orthonormal transform of each MX block, applied before the block is cast
// and undone after, so that a matrix product sees the cast of the rotated operand.
//
// For a product reducing over K, rotating both operands' blocks along K with the same
// orthonormal R leaves the product as it was, (x R)(w R)^T = x w^T, while each block's values
// are spread evenly over the block before its shared scale is chosen: one large value no
// longer flushes its 31 neighbours to zero. The normalized Walsh-Hadamard matrix of the block
// size is such an R, and is its own inverse. Egiazarian et al. 2025 (MR-GPTQ, arXiv 2509.23202)
// and Shao et al. 2025 (BRQ, arXiv 2511.04214) rotate MXFP4 operands this way, block by block;
// docs/NUMERICS.md gives the definition used here.
#pragma once

#include <cstdint>
#include <span>

namespace mx::nn {

// Rotates every whole block of `block` elements (a power of two) along `axis` of the
// row-major tensor `data` of `shape` by the normalized Walsh-Hadamard matrix, in place. A
// trailing part block shorter than `block` is left as it is. The transform is its own
// inverse, up to float32 rounding.
void hadamard_rotate_blocks(float* data, std::span<const int64_t> shape, int axis, int block);

}  // namespace mx::nn
