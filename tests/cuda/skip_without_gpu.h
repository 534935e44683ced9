// GPU tests skip, with the reason, where no usable CUDA device is present (CI has none).
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "mx/kernels/cuda/mx_gemm.h"
#include "mx/kernels/cuda/quantize_cuda.h"

#define SKIP_WITHOUT_GPU()                        \
  do {                                            \
    std::string why;                              \
    if (!mx::cuda::cuda_device_available(&why)) { \
      GTEST_SKIP() << "no CUDA device: " << why;  \
    }                                             \
  } while (0)

// The MX products in training (packed operands) need compute capability 9.0 or newer.
#define SKIP_BELOW_COMPUTE_CAPABILITY_9()                                                     \
  do {                                                                                        \
    SKIP_WITHOUT_GPU();                                                                       \
    int major = 0, minor = 0;                                                                 \
    if (!mx::cuda::current_compute_capability(&major, &minor) || major < 9) {                 \
      GTEST_SKIP() << "MX products need compute capability 9.0, this GPU is " << major << "." \
                   << minor;                                                                  \
    }                                                                                         \
  } while (0)
