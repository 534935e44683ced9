// The FP32 matrix product's register tile compiled for one instruction set (flags in
// CMakeLists.txt).
#define MX_CPU_ISA scalar
#define MX_CPU_SGEMM_FN sgemm_kernels_scalar
#include "mx/kernels/cpu/sgemm_impl.h"
