// The matrix-product loops compiled for one instruction set (flags in CMakeLists.txt).
#define MX_CPU_ISA avx2
#define MX_CPU_MATMUL_FN matmul_kernels_avx2
#include "mx/kernels/cpu/matmul_impl.h"
