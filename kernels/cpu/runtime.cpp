// CPU backend runtime: contexts, the (synchronous) stream, host memory standing in for device memory.
// struct gk_stream lives in cpu.h (ops record into it); decode programs are in program.cpp.
#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>

#include "../common/error.h"
#include "cpu.h"

struct gk_context {
  std::mutex mu;
  std::unordered_map<void*, uint64_t> live;  // pointer -> bytes, so gk_free can refuse strangers
  uint64_t in_use = 0, peak = 0;
  gk_stream default_stream{nullptr, true};
};

GK_API const char* gk_backend_kind(void) { return "cpu"; }

GK_API gk_status gk_device_count(int32_t* out_count) {
  GK_REQUIRE(out_count, "gk_device_count: NULL out_count");
  *out_count = 1;  // the host is always there
  return GK_OK;
}

GK_API gk_status gk_device_name(int32_t device, char* buf, int32_t buf_len) {
  GK_REQUIRE(buf && buf_len > 0, "gk_device_name: NULL or empty buffer");
  GK_REQUIRE(device == 0, "gk_device_name: the CPU backend has device 0 only, not %d", device);
  const char* simd =
#if defined(__AVX512F__)
      "AVX-512";
#elif defined(__AVX2__)
      "AVX2";
#elif defined(__ARM_NEON) && !defined(GK_PORTABLE_SIMD)
      "NEON";
#else
      "scalar";
#endif
  snprintf(buf, (size_t)buf_len, "CPU (%d OpenMP threads, %s)", omp_get_max_threads(), simd);
  return GK_OK;
}

GK_API gk_status gk_context_create(int32_t device, gk_context** out_ctx) {
  GK_REQUIRE(out_ctx, "gk_context_create: NULL out_ctx");
  GK_REQUIRE(device == 0, "gk_context_create: the CPU backend has device 0 only, not %d", device);
  gk_context* ctx = new (std::nothrow) gk_context();
  if (!ctx) return gk_fail(GK_ERR_OUT_OF_MEMORY, "gk_context_create: out of host memory");
  ctx->default_stream.ctx = ctx;
  *out_ctx = ctx;
  return GK_OK;
}

GK_API gk_status gk_context_destroy(gk_context* ctx) {
  GK_REQUIRE(ctx, "gk_context_destroy: NULL context");
  for (auto& [ptr, bytes] : ctx->live) free(ptr);
  delete ctx;
  return GK_OK;
}

GK_API gk_status gk_context_default_stream(gk_context* ctx, gk_stream** out_stream) {
  GK_REQUIRE(ctx && out_stream, "gk_context_default_stream: NULL context or out_stream");
  *out_stream = &ctx->default_stream;
  return GK_OK;
}

GK_API gk_status gk_stream_create(gk_context* ctx, gk_stream** out_stream) {
  GK_REQUIRE(ctx && out_stream, "gk_stream_create: NULL context or out_stream");
  gk_stream* s = new (std::nothrow) gk_stream{ctx, false};
  if (!s) return gk_fail(GK_ERR_OUT_OF_MEMORY, "gk_stream_create: out of host memory");
  *out_stream = s;
  return GK_OK;
}

GK_API gk_status gk_stream_destroy(gk_stream* stream) {
  GK_REQUIRE(stream, "gk_stream_destroy: NULL stream");
  if (!stream->is_default) delete stream;  // the default stream lives inside its context
  return GK_OK;
}

GK_API gk_status gk_stream_synchronize(gk_stream* stream) {
  GK_REQUIRE(stream, "gk_stream_synchronize: NULL stream");
  GK_REQUIRE(!stream->recording, "gk_stream_synchronize: not allowed while recording a program");
  return GK_OK;  // CPU ops complete before they return
}

GK_API gk_status gk_malloc(gk_context* ctx, uint64_t bytes, void** out_ptr) {
  GK_REQUIRE(ctx && out_ptr, "gk_malloc: NULL context or out_ptr");
  GK_REQUIRE(bytes > 0, "gk_malloc: zero bytes requested");
  uint64_t rounded = (bytes + 255) & ~(uint64_t)255;
  void* p = aligned_alloc(256, rounded);
  if (!p) return gk_fail(GK_ERR_OUT_OF_MEMORY, "gk_malloc: could not allocate %llu bytes", (unsigned long long)bytes);
  std::lock_guard<std::mutex> lock(ctx->mu);
  try {
    ctx->live[p] = bytes;
  } catch (...) {  // bad_alloc must not cross the C ABI; the block would be untracked: give it back
    free(p);
    return gk_fail(GK_ERR_OUT_OF_MEMORY, "gk_malloc: out of memory tracking %llu bytes", (unsigned long long)bytes);
  }
  ctx->in_use += bytes;
  if (ctx->in_use > ctx->peak) ctx->peak = ctx->in_use;
  *out_ptr = p;
  return GK_OK;
}

GK_API gk_status gk_free(gk_context* ctx, void* ptr) {
  GK_REQUIRE(ctx, "gk_free: NULL context");
  std::lock_guard<std::mutex> lock(ctx->mu);
  auto it = ctx->live.find(ptr);
  GK_REQUIRE(it != ctx->live.end(), "gk_free: %p was not allocated by this context (or was freed already)", ptr);
  ctx->in_use -= it->second;
  ctx->live.erase(it);
  free(ptr);
  return GK_OK;
}

GK_API gk_status gk_memcpy_h2d(gk_stream* s, void* dst, const void* src, uint64_t bytes) {
  GK_REQUIRE(s && dst && src, "gk_memcpy_h2d: NULL stream, dst or src");
  // As on CUDA, where host copies synchronize: the host buffer would be gone by the time a replay ran.
  GK_REQUIRE(!s->recording, "gk_memcpy_h2d: not allowed while recording a program (copies from host memory)");
  memcpy(dst, src, bytes);
  return GK_OK;
}

GK_API gk_status gk_memcpy_d2h(gk_stream* s, void* dst, const void* src, uint64_t bytes) {
  GK_REQUIRE(s && dst && src, "gk_memcpy_d2h: NULL stream, dst or src");
  GK_REQUIRE(!s->recording, "gk_memcpy_d2h: not allowed while recording a program (copies to host memory)");
  memcpy(dst, src, bytes);
  return GK_OK;
}

GK_API gk_status gk_memcpy_d2d(gk_stream* s, void* dst, const void* src, uint64_t bytes) {
  GK_REQUIRE(s && dst && src, "gk_memcpy_d2d: NULL stream, dst or src");
  GK_CPU_RECORD(s, gk_memcpy_d2d(s, dst, src, bytes));
  memmove(dst, src, bytes);
  return GK_OK;
}

GK_API gk_status gk_memset(gk_stream* s, void* dst, int32_t value, uint64_t bytes) {
  GK_REQUIRE(s && dst, "gk_memset: NULL stream or dst");
  GK_CPU_RECORD(s, gk_memset(s, dst, value, bytes));
  memset(dst, value, bytes);
  return GK_OK;
}

GK_API gk_status gk_memory_stats(gk_context* ctx, uint64_t* out4) {
  GK_REQUIRE(ctx && out4, "gk_memory_stats: NULL context or out");
  std::lock_guard<std::mutex> lock(ctx->mu);
  out4[0] = ctx->in_use;
  out4[1] = ctx->peak;
  out4[2] = ctx->live.size();
  out4[3] = gk::cpu::physical_memory_bytes();
  return GK_OK;
}

GK_API gk_status gk_memory_reset_peak(gk_context* ctx) {
  GK_REQUIRE(ctx, "gk_memory_reset_peak: NULL context");
  std::lock_guard<std::mutex> lock(ctx->mu);
  ctx->peak = ctx->in_use;
  return GK_OK;
}
