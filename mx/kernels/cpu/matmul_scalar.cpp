// The matrix-product loops compiled for one instruction set (flags in CMakeLists.txt).
#define MX_CPU_ISA scalar
#define MX_CPU_MATMUL_FN matmul_kernels_scalar
#include "mx/kernels/cpu/matmul_impl.h"
