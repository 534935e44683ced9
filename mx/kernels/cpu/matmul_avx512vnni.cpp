// The matrix-product loops compiled for one instruction set (flags in CMakeLists.txt).
#define MX_CPU_ISA avx512vnni
#define MX_CPU_MATMUL_FN matmul_kernels_avx512vnni
#include "mx/kernels/cpu/matmul_impl.h"
