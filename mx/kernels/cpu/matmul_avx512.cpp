// The matrix-product loops compiled for one instruction set (flags in CMakeLists.txt).
#define MX_CPU_ISA avx512
#define MX_CPU_MATMUL_FN matmul_kernels_avx512
#include "mx/kernels/cpu/matmul_impl.h"
