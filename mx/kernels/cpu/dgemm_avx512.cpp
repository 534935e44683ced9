// The FP64 product's register tile compiled for one instruction set (flags in CMakeLists.txt).
#define MX_CPU_ISA avx512
#define MX_CPU_DGEMM_FN dgemm_tile_avx512
#include "mx/kernels/cpu/dgemm_impl.h"
