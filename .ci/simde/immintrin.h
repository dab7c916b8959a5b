// .ci/avx512 only: stands in for the compiler's <immintrin.h> so that the AVX-512 and VNNI code of
// kernels/cpu/repack.cpp (the 16-row layouts' integer kernel and gk_greedy_logits' screen) and linear_q8act.cpp (the
// 24-bit decode products, the opt-in int8 path) compiles and runs on a host without them, each intrinsic emulated by
// SIMDe (libsimde-dev) and, where SIMDe 0.7 lacks one, by gk_simde_extra.h's scalar loop.
#pragma once
#define SIMDE_ENABLE_NATIVE_ALIASES
#define SIMDE_NO_NATIVE
#include <simde/x86/avx512.h>
#include <simde/x86/f16c.h>
#include <simde/x86/fma.h>

#include "gk_simde_extra.h"
