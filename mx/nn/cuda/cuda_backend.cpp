#include "mx/nn/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <memory>
#include <string>

#include "mx/io/cat.h"
#include "mx/kernels/cuda/quantize_cuda.h"
#include "mx/nn/cuda/cuda_backend_impl.h"

namespace mx::nn {
namespace cuda_impl {

using io::cat;

CudaBackend::~CudaBackend() {
  cudaStreamSynchronize(stream_);
  for (void* p : owned_) cudaFree(p);
  for (Scratch& s : scratch_) cudaFree(s.p);
  cudaFree(ops_.partials);
  cudaFree(ops_.sort_temp);
  cudaFree(ops_.sort_keys);
  cudaFree(ops_.sort_values);
  cudaFree(norm_partials_);
  drop_weight_copies();
  products_.reset();
  cudaStreamDestroy(stream_);
}

Buf CudaBackend::alloc(BufType type, int64_t n) {
  void* p = nullptr;
  const size_t bytes = size_t(std::max<int64_t>(n * buf_type_bytes(type), 1));
  cudaError_t status = cudaMalloc(&p, bytes);
  // The weights' kept casts only spare time: a buffer of the model's goes first. (Only here: no
  // product holds a kept cast between the model's ops.)
  if (status == cudaErrorMemoryAllocation && spare_weight_casts()) {
    cudaGetLastError();
    status = cudaMalloc(&p, bytes);
  }
  if (status != cudaSuccess) {
    cudaGetLastError();
    record(cat("out of GPU memory: ", bytes, " bytes for a buffer of ", n, " elements"));
    return {};
  }
  owned_.insert(p);
  note_memory();
  cudaMemsetAsync(p, 0, bytes, stream_);
  return {p, n, type};
}

void CudaBackend::release(Buf x) {
  if (x.p == weights_.p) {
    weights_ = {};
    drop_weight_copies();
  }
  // A gradient kept for a buffer that goes is never read: it must not be copied into memory
  // that a later allocation may hand out again.
  const char* pending = static_cast<const char*>(pending_.dlogits);
  const char* p = static_cast<const char*>(x.p);
  if (pending != nullptr && p <= pending && pending < p + x.bytes()) pending_ = {};
  // Nor is a cast kept in it, nor the state that the forward left in it.
  inputs_with_kept_casts_.erase(x.p);
  saved_with_pv_.erase(x.p);
  saved_with_casts_.erase(x.p);
  if (owned_.erase(x.p) != 0) {
    cudaStreamSynchronize(stream_);
    cudaFree(x.p);
  }
}

Buf CudaBackend::wrap(void*, BufType, int64_t) {
  record("the CUDA backend cannot wrap host memory");
  return {};
}

void CudaBackend::upload(Buf dst, const void* host) {
  touch_weights(dst);
  check(cudaMemcpyAsync(dst.p, host, size_t(dst.bytes()), cudaMemcpyHostToDevice, stream_),
        "upload");
}

void CudaBackend::download(void* host, Buf src) {
  check(cudaMemcpyAsync(host, src.p, size_t(src.bytes()), cudaMemcpyDeviceToHost, stream_),
        "download");
  check(cudaStreamSynchronize(stream_), "synchronize");
}

void CudaBackend::zero(Buf x) {
  touch_weights(x);
  check(cudaMemsetAsync(x.p, 0, size_t(x.bytes()), stream_), "zero");
}

void CudaBackend::copy(Buf dst, Buf src) {
  touch_weights(dst);
  check(cudaMemcpyAsync(dst.p, src.p, size_t(src.bytes()), cudaMemcpyDeviceToDevice, stream_),
        "copy");
}

void CudaBackend::hold_weights(Buf weights) {
  weights_ = weights;
  ++weights_version_;
  drop_weight_copies();
}

std::string CudaBackend::device_description() const {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, options_.device) != cudaSuccess) {
    cudaGetLastError();
    return "a CUDA GPU";
  }
  return prop.name;
}

int64_t CudaBackend::memory_available() {
  size_t free = 0, total = 0;
  if (cudaMemGetInfo(&free, &total) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return int64_t(free);
}

std::string CudaBackend::take_error() {
  check_launch("the last op");
  return std::move(error_);
}

bool CudaBackend::check(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return true;
  record(cat("CUDA error in ", what, ": ", cudaGetErrorString(status)));
  return false;
}

void CudaBackend::note_memory() {
  size_t free = 0, total = 0;
  if (cudaMemGetInfo(&free, &total) != cudaSuccess) {
    cudaGetLastError();
    return;
  }
  peak_ = std::max(peak_, int64_t(total - free));
}

void* CudaBackend::slot(size_t index, size_t bytes) {
  if (scratch_.size() <= index) scratch_.resize(index + 1);
  Scratch& s = scratch_[index];
  if (s.bytes < bytes) {
    cudaStreamSynchronize(stream_);
    cudaFree(s.p);
    s.p = nullptr;
    s.bytes = 0;
    if (!check(cudaMalloc(&s.p, bytes), "scratch allocation")) return nullptr;
    s.bytes = bytes;
    note_memory();
  }
  return s.p;
}

void CudaBackend::grow_ops(int64_t n, int64_t c) {
  grow_partials(kernels::column_partials_floats(n, c));
}

void CudaBackend::grow_partials(int64_t floats) {
  if (floats <= ops_.partials_floats) return;
  cudaStreamSynchronize(stream_);
  cudaFree(ops_.partials);
  ops_.partials = nullptr;
  ops_.partials_floats = 0;
  if (check(cudaMalloc(&ops_.partials, size_t(floats) * sizeof(float)), "scratch allocation")) {
    ops_.partials_floats = floats;
    note_memory();
  }
}

void CudaBackend::grow_sort(int64_t n) {
  if (n <= ops_.sort_capacity) return;
  cudaStreamSynchronize(stream_);
  cudaFree(ops_.sort_temp);
  cudaFree(ops_.sort_keys);
  cudaFree(ops_.sort_values);
  ops_.sort_temp = nullptr;
  ops_.sort_keys = ops_.sort_values = nullptr;
  ops_.sort_capacity = 0;
  ops_.sort_temp_bytes = kernels::sort_temp_bytes(n);
  if (check(cudaMalloc(&ops_.sort_temp, std::max<size_t>(ops_.sort_temp_bytes, 1)), "sort") &&
      check(cudaMalloc(&ops_.sort_keys, size_t(2 * n) * sizeof(uint32_t)), "sort") &&
      check(cudaMalloc(&ops_.sort_values, size_t(2 * n) * sizeof(uint32_t)), "sort")) {
    ops_.sort_capacity = n;
    note_memory();
  }
}

const void* CudaBackend::weight_as_bf16(Buf x, int64_t count) {
  if (x.type != BufType::kF32 || weights_.empty()) return nullptr;
  const float* w = weights_.as<float>();
  const float* p = x.as<float>();
  if (p < w || p + count > w + weights_.n) return nullptr;
  if (weights_bf16_ == nullptr) {
    if (cudaMalloc(&weights_bf16_, size_t(weights_.n) * sizeof(uint16_t)) != cudaSuccess) {
      cudaGetLastError();
      weights_ = {};  // without the memory, convert at each use as before
      return nullptr;
    }
    note_memory();
  }
  if (weights_bf16_version_ != weights_version_) {
    kernels::f32_to_bf16(static_cast<uint16_t*>(weights_bf16_), w, weights_.n, stream_);
    check_launch("bfloat16 weights");
    weights_bf16_version_ = weights_version_;
  }
  return static_cast<uint16_t*>(weights_bf16_) + (p - w);
}

const void* CudaBackend::bias_as_bf16(Buf bias) {
  if (bias.type != BufType::kF32 || weights_.empty()) return nullptr;
  const float* w = weights_.as<float>();
  const float* p = bias.as<float>();
  if (p < w || p + bias.n > w + weights_.n) return nullptr;
  const std::optional<size_t> index = bias_copy_index(p, bias.n);
  if (!index) return nullptr;
  if (bias_copies_.version != weights_version_ && !renew_bias_copies()) return nullptr;
  return bias_copies_.segments[*index].out;
}

std::optional<size_t> CudaBackend::bias_copy_index(const float* bias, int64_t count) {
  BiasCopies& c = bias_copies_;
  if (const auto found = c.by_bias.find(bias); found != c.by_bias.end()) {
    // The same values seen through another length have no copy of their own.
    if (c.segments[found->second].count != count) return std::nullopt;
    return found->second;
  }
  void* copy = nullptr;
  if (cudaMalloc(&copy, size_t(count) * sizeof(uint16_t)) != cudaSuccess) {
    cudaGetLastError();
    return std::nullopt;
  }
  note_memory();
  const size_t index = c.segments.size();
  c.segments.push_back({bias, static_cast<uint16_t*>(copy), count});
  c.by_bias.emplace(bias, index);
  // A bias first seen after the others were renewed (in the first pass) is made alone.
  if (c.version == weights_version_) {
    kernels::f32_to_bf16(static_cast<uint16_t*>(copy), bias, count, stream_);
    check_launch("bfloat16 bias");
  }
  return index;
}

bool CudaBackend::renew_bias_copies() {
  BiasCopies& c = bias_copies_;
  if (c.table_size != c.segments.size()) {
    cudaStreamSynchronize(stream_);  // the last launch may still read the table
    cudaFree(c.table);
    c.table = nullptr;
    c.table_size = 0;
    const size_t bytes = c.segments.size() * sizeof(kernels::Bf16Segment);
    if (cudaMalloc(&c.table, bytes) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    note_memory();
    // From pageable memory: returns once the host's bytes are staged.
    if (!check(cudaMemcpyAsync(c.table, c.segments.data(), bytes, cudaMemcpyHostToDevice, stream_),
               "bias table")) {
      return false;
    }
    c.table_size = c.segments.size();
  }
  kernels::f32_to_bf16_segments(c.table, int64_t(c.table_size), stream_);
  check_launch("bfloat16 biases");
  c.version = weights_version_;
  return true;
}

void CudaBackend::drop_weight_copies() {
  cudaStreamSynchronize(stream_);
  cudaFree(weights_bf16_);
  weights_bf16_ = nullptr;
  weights_bf16_version_ = ~uint64_t{0};
  for (const kernels::Bf16Segment& s : bias_copies_.segments) cudaFree(s.out);
  cudaFree(bias_copies_.table);
  bias_copies_ = {};
  for (WeightCasts& c : weight_casts_) {
    cudaFree(c.p);
    cudaFree(c.batch_table);
  }
  weight_casts_.clear();
}

void CudaBackend::touch_weights(Buf x) {
  if (weights_.empty() || x.empty()) return;
  const char* w = static_cast<const char*>(weights_.p);
  const char* p = static_cast<const char*>(x.p);
  if (p < w + weights_.bytes() && w < p + x.bytes()) ++weights_version_;
}

}  // namespace cuda_impl

std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& options, std::string* error) {
  std::string why;
  if (!mx::cuda::cuda_device_available(&why)) {
    *error = "no usable CUDA GPU (" + why + ")";
    return nullptr;
  }
  if (options.act_type != BufType::kBF16 && options.act_type != BufType::kF32) {
    *error = "GPU activations are bfloat16 or float32";
    return nullptr;
  }
  if (cudaSetDevice(options.device) != cudaSuccess) {
    cudaGetLastError();
    *error = io::cat("cannot use GPU ", options.device);
    return nullptr;
  }
  cudaStream_t stream = nullptr;
  if (cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) != cudaSuccess) {
    cudaGetLastError();
    *error = "cannot set up the GPU (stream)";
    return nullptr;
  }
  auto products = cuda::LtProducts::create(stream, options.act_type, options.tf32, error);
  if (products != nullptr && !options.product_algorithms.empty()) {
    ProductAlgorithms algorithms;
    std::string e = read_product_algorithms(options.product_algorithms, &algorithms);
    if (e.empty()) {
      e = products->take_algorithms(algorithms);
      if (!e.empty()) e = io::cat(options.product_algorithms, ": ", e);
    }
    if (!e.empty()) {
      *error = e;
      products.reset();
    }
  }
  if (products == nullptr) {
    cudaStreamDestroy(stream);
    return nullptr;
  }
  if (options.tune_products) products->tune();
  return std::make_unique<cuda_impl::CudaBackend>(options, stream, std::move(products));
}

std::string write_cuda_product_algorithms(Backend& backend, const std::string& path,
                                          size_t* products) {
  auto* cuda = dynamic_cast<cuda_impl::CudaBackend*>(&backend);
  if (cuda == nullptr) return "product algorithms are the CUDA backend's";
  const ProductAlgorithms algorithms = cuda->products_->algorithms();
  *products = algorithms.choices.size();
  return write_product_algorithms(path, algorithms);
}

int cuda_device_count(std::string* why) {
  if (!mx::cuda::cuda_device_available(why)) return 0;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    *why = "the CUDA driver cannot count the GPUs";
    return 0;
  }
  return count;
}

void* cuda_backend_stream(Backend& backend) {
  auto* cuda = dynamic_cast<cuda_impl::CudaBackend*>(&backend);
  return cuda != nullptr ? static_cast<void*>(cuda->stream_) : nullptr;
}

}  // namespace mx::nn
