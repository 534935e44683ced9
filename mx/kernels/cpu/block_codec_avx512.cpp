// The block loops compiled for one instruction set (flags in CMakeLists.txt).
#define MX_CPU_ISA avx512
#define MX_CPU_KERNELS_FN kernels_avx512
#include "mx/kernels/cpu/block_codec_impl.h"
