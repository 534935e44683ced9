// GPU tests skip, with the reason, where no usable CUDA device is present (CI has none).
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "mx/kernels/cuda/quantize_cuda.h"

#define SKIP_WITHOUT_GPU()                        \
  do {                                            \
    std::string why;                              \
    if (!mx::cuda::cuda_device_available(&why)) { \
      GTEST_SKIP() << "no CUDA device: " << why;  \
    }                                             \
  } while (0)
