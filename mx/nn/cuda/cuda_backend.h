// The CUDA backend: the model's ops on one GPU, on one stream. Weights, gradients and AdamW's
// moments are float32 in device memory; activations are bfloat16 (or float32 for the fp32 and
// tf32 recipes). Matrix products run through cuBLASLt on operands cast as the recipe says, by
// the bit-exact CUDA quantizers (mx/kernels/cuda/quantize_cuda.h); attention runs fused
// (attention.h), never storing a T x T matrix.
//
// Every result repeats bit for bit on the same GPU: reductions have fixed orders and nothing
// accumulates with atomics. Against the CPU backend it agrees within rounding: float32 sums in
// other orders, the device's exp and tanh, and bfloat16 activations.
#pragma once

#include <memory>
#include <string>

#include "mx/nn/backend.h"

namespace mx::nn {

struct CudaBackendOptions {
  BufType act_type = BufType::kBF16;  // kBF16 or kF32
  bool tf32 = false;                  // float32 products on TF32 tensor cores
  // Linear layers whose two operands both take MX casts with blocks of 32 multiply them as MX
  // storage (codes and scales) through mx_gemm_auto (mx/kernels/cuda/mx_gemm_route.h): on
  // Blackwell cuBLASLt's block-scaled products, on Hopper a dequantize pass and a BF16 product.
  // Otherwise the casts write bfloat16 values for a BF16 product. The operands' bits are the
  // same either way; the products differ in their order of float32 additions.
  bool packed_products = false;
  int device = 0;
  // A product algorithms file (mx/nn/product_algorithms.h): the cuBLASLt candidate each product
  // it lists takes, instead of the heuristic's first.
  std::string product_algorithms = {};
  // Each product shape's first run times cuBLASLt's candidates on its operands and takes the
  // fastest (write_cuda_product_algorithms keeps the choices for later runs).
  bool tune_products = false;
};

// A backend on the GPU, or null with *error saying why (no GPU, no driver, out of memory).
std::unique_ptr<Backend> make_cuda_backend(const CudaBackendOptions& options, std::string* error);

// The product algorithms `backend` has tuned or taken so far, written to `path` whole or not at
// all, with their number in *products; "" or why not.
std::string write_cuda_product_algorithms(Backend& backend, const std::string& path,
                                          size_t* products);

// How many CUDA GPUs this process can use (0 with *why when none).
int cuda_device_count(std::string* why);

// The stream a CUDA backend runs its ops on (a cudaStream_t), for work that must queue behind
// them (collectives); null when `backend` is not a CUDA backend.
void* cuda_backend_stream(Backend& backend);

}  // namespace mx::nn
