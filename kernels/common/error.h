// Thread-local last error shared by both backends (kernels/common/error.cpp).
#pragma once
#include "../include/gemmakit.h"

// Records "<op>: <message>" for gk_last_error() and returns code.
gk_status gk_fail(gk_status code, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

// Returns early from the enclosing entry point with GK_ERR_INVALID_ARGUMENT when cond is false.
#define GK_REQUIRE(cond, ...)                                     \
  do {                                                            \
    if (!(cond)) return gk_fail(GK_ERR_INVALID_ARGUMENT, __VA_ARGS__); \
  } while (0)

// Propagates a non-OK status.
#define GK_TRY(expr)                  \
  do {                                \
    gk_status gk_try_s_ = (expr);     \
    if (gk_try_s_ != GK_OK) return gk_try_s_; \
  } while (0)
