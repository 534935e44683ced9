// The FP64 product's register tile compiled for one instruction set (flags in CMakeLists.txt).
#define MX_CPU_ISA scalar
#define MX_CPU_DGEMM_FN dgemm_tile_scalar
#include "mx/kernels/cpu/dgemm_impl.h"
