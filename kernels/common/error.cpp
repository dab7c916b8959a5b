#include "error.h"

#include <cstdarg>
#include <cstdio>

namespace {
// One buffer per thread: Deno may call from its main thread or, for nonblocking calls, a worker.
thread_local char g_last_error[1024] = "";
}  // namespace

gk_status gk_fail(gk_status code, const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vsnprintf(g_last_error, sizeof g_last_error, fmt, args);
  va_end(args);
  return code;
}

GK_API const char* gk_last_error(void) { return g_last_error; }
GK_API int32_t gk_abi_version(void) { return GK_ABI_VERSION; }
