// The sixteen-lane vector layer of the translation unit being compiled, float and integer lanes:
// AVX-512, AVX2 or plain loops, chosen by the instruction-set flags the unit is built with
// (CMakeLists.txt). The including file defines MX_CPU_ISA, the namespace that keeps each unit's
// copies apart.
#pragma once

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
#include "mx/kernels/cpu/lanes_int8_avx512.h"
#elif defined(__AVX2__) && defined(__BMI2__)
#include "mx/kernels/cpu/lanes_int8_avx2.h"
#else
#include "mx/kernels/cpu/lanes_int8_scalar.h"
#endif
