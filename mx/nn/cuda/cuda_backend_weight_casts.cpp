// The weights' MX casts, made once after each change to the weights instead of at every product:
// a step reads each weight matrix in three products per micro-batch, and generation in two per
// token, while the weights change once per optimizer step.
#include <algorithm>
#include <array>
#include <cstdint>
#include <set>
#include <vector>

#include "mx/nn/cast_streams.h"
#include "mx/nn/cuda/cuda_backend_impl.h"

namespace mx::nn::cuda_impl {

const void* CudaBackend::weight_cast(Buf w, int64_t n, int64_t k, int axis, const OperandCast& cast,
                                     const char* role, uint64_t stream, size_t index) {
  const auto uncached = [&] { return prepare(w, {n, k}, axis, cast, role, stream, index); };
  // A stochastic cast draws from the product's own stream, so no two products share it.
  if (cast.kind != OperandCast::Kind::kMx || cast.is_rotated() || !cast_ignores_key(cast) ||
      w.type != BufType::kF32 || weights_.empty() || options_.packed_products) {
    return uncached();
  }
  const float* all = weights_.as<float>();
  const float* p = w.as<float>();
  if (p < all || p + n * k > all + weights_.n) return uncached();
  const int64_t offset = p - all;
  const size_t e = buf_type_bytes(gemm_type());
  // cuBLASLt's heuristics assume 256-byte aligned operands, as the scratch slots are.
  if (size_t(offset) * e % 256 != 0) return uncached();
  WeightCasts* casts = weight_casts_for(cast, axis, offset);
  if (casts->p == nullptr) return uncached();
  if (casts->version != weights_version_) {
    casts->version = weights_version_;
    casts->all_rows = false;
    if (!casts->matrices.empty()) casts->previous = std::move(casts->matrices);
    casts->matrices.clear();
  }
  char* dst = static_cast<char*>(casts->p) + size_t(offset) * e;
  const QuantSpec& spec = cast.spec;
  const int64_t block = spec.block_size;
  const int64_t row_blocks = weights_.n / block;
  if (axis == 1) {
    // Only the one pass over all the weights writes these casts, so no matrix's cast can hold
    // blocks of another shape than the pass's.
    if (spec.is_tiled() || offset % block != 0 || k % block != 0 ||
        offset + n * k > row_blocks * block) {
      return uncached();
    }
    if (!casts->all_rows) {
      if (!mx_cast(weights_, {row_blocks, block}, 1, cast, role, stream, casts->p, gemm_type())) {
        return nullptr;  // recorded
      }
      check_launch(role);
      casts->all_rows = true;
    }
    return dst;
  }
  // A step asks for the casts of the same matrices after each change of the weights: the first
  // request casts all that the version before held, in one launch instead of one each.
  if (casts->matrices.empty() && casts->previous.contains({offset, n, k}) &&
      cast_previous_matrices(casts, cast)) {
    return dst;
  }
  if (!casts->matrices.contains({offset, n, k})) {
    // The same weights seen through another shape have other blocks.
    std::erase_if(casts->matrices, [&](const std::array<int64_t, 3>& m) {
      return m[0] < offset + n * k && offset < m[0] + m[1] * m[2];
    });
    casts->matrices.insert({offset, n, k});
    if (!mx_cast(w, {n, k}, axis, cast, role, stream, dst, gemm_type())) {
      casts->matrices.erase({offset, n, k});
      return nullptr;  // recorded
    }
    check_launch(role);
  }
  return dst;
}

bool CudaBackend::cast_previous_matrices(WeightCasts* casts, const OperandCast& cast) {
  if (gemm_type() != BufType::kBF16) return false;
  const float* all = weights_.as<float>();
  uint16_t* out = static_cast<uint16_t*>(casts->p);
  std::vector<mx::cuda::ColumnCastMatrix> batch;
  for (const auto& [offset, n, k] : casts->previous) {
    batch.push_back({all + offset, out + offset, n, k, 0});
  }
  const int64_t total = mx::cuda::fill_first_blocks(batch);
  const auto same = [](const mx::cuda::ColumnCastMatrix& a, const mx::cuda::ColumnCastMatrix& b) {
    return a.in == b.in && a.out == b.out && a.rows == b.rows && a.cols == b.cols;
  };
  if (!std::equal(batch.begin(), batch.end(), casts->batch.begin(), casts->batch.end(), same)) {
    const size_t bytes = batch.size() * sizeof(batch[0]);
    cudaFree(casts->batch_table);
    casts->batch_table = nullptr;
    casts->batch.clear();
    if (cudaMalloc(&casts->batch_table, bytes) != cudaSuccess) {
      cudaGetLastError();
      casts->batch_table = nullptr;
      return false;
    }
    // From pageable memory: the copy is made before the call returns.
    if (cudaMemcpyAsync(casts->batch_table, batch.data(), bytes, cudaMemcpyHostToDevice, stream_) !=
        cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    casts->batch = std::move(batch);
  }
  // Deterministic casts only (weight_cast keeps no other), so the stream's key plays no part.
  if (!mx::cuda::fake_quantize_columns_batch_cuda(casts->batch_table, int(casts->batch.size()),
                                                  total, cast.spec, stream_)
           .empty()) {
    cudaGetLastError();
    return false;
  }
  casts->matrices = casts->previous;
  return true;
}

CudaBackend::WeightCasts* CudaBackend::weight_casts_for(const OperandCast& cast, int axis,
                                                        int64_t offset) {
  const auto same = [&](const WeightCasts& c) { return c.axis == axis && c.cast == cast; };
  const auto found = std::find_if(weight_casts_.begin(), weight_casts_.end(), same);
  if (found == weight_casts_.end()) {
    WeightCasts& made = weight_casts_.emplace_back();
    made.cast = cast;
    made.axis = axis;
    made.first_offset = offset;
    return &made;
  }
  WeightCasts* casts = &*found;
  if (casts->first_offset != offset) return casts;
  casts->first_offset = -1;
  // Kept only where what stays free after them is at least their size again, for scratch that
  // later passes may still allocate; a buffer of the model's frees them (alloc).
  const size_t bytes = size_t(weights_.n) * buf_type_bytes(gemm_type());
  if (double(memory_available()) >= 2.0 * double(bytes)) {
    if (cudaMalloc(&casts->p, bytes) == cudaSuccess) {
      note_memory();
      casts->version = weights_version_ - 1;  // stale until made
    } else {
      cudaGetLastError();
      casts->p = nullptr;
    }
  }
  return casts;
}

bool CudaBackend::spare_weight_casts() {
  bool freed = false;
  for (WeightCasts& c : weight_casts_) {
    if (c.p == nullptr) continue;
    if (!freed) cudaStreamSynchronize(stream_);
    cudaFree(c.p);
    c.p = nullptr;
    cudaFree(c.batch_table);
    c.batch_table = nullptr;
    c.batch.clear();
    freed = true;
  }
  return freed;
}

}  // namespace mx::nn::cuda_impl
