// The AVX512-VNNI intrinsics of the integer-activation kernels (linear_q8act.cpp, repack.cpp): GK_VNNI is defined
// where the build targets them (AVX512 F/BW/VL with VNNI, and F16C for the f16 scales).
#pragma once
#if defined(__AVX512VNNI__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__F16C__)
#define GK_VNNI 1
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif
