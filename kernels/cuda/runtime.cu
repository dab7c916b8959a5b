// CUDA backend runtime: devices, contexts, streams and tracked device memory.
#include <cstdio>
#include <new>

#include "cuda_common.cuh"

using gk::cuda::use_device;

namespace {

// Device count, mapping "no driver" and "no GPU" to GK_ERR_NO_DEVICE.
gk_status device_count(int* out, const char* op) {
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    *out = 0;
    return gk_fail(GK_ERR_NO_DEVICE, "%s: no CUDA device: cudaGetDeviceCount: %s", op, cudaGetErrorString(err));
  }
  *out = n;
  if (n == 0) return gk_fail(GK_ERR_NO_DEVICE, "%s: no CUDA device: cudaGetDeviceCount reported 0 devices", op);
  return GK_OK;
}

gk_status check_device(int32_t device, const char* op) {
  int n = 0;
  GK_TRY(device_count(&n, op));
  GK_REQUIRE(device >= 0 && device < n, "%s: device %d does not exist (%d CUDA devices)", op, device, n);
  return GK_OK;
}

}  // namespace

GK_API const char* gk_backend_kind(void) { return "cuda"; }

GK_API gk_status gk_device_count(int32_t* out_count) {
  GK_REQUIRE(out_count, "gk_device_count: NULL out_count");
  int n = 0;
  gk_status st = device_count(&n, "gk_device_count");
  *out_count = n;
  return st;
}

GK_API gk_status gk_device_name(int32_t device, char* buf, int32_t buf_len) {
  GK_REQUIRE(buf && buf_len > 0, "gk_device_name: NULL or empty buffer");
  GK_TRY(check_device(device, "gk_device_name"));
  cudaDeviceProp prop;
  GK_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  snprintf(buf, (size_t)buf_len, "%s (sm_%d%d, %.1f GiB)", prop.name, prop.major, prop.minor,
           (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
  return GK_OK;
}

GK_API gk_status gk_context_create(int32_t device, gk_context** out_ctx) {
  GK_REQUIRE(out_ctx, "gk_context_create: NULL out_ctx");
  GK_TRY(check_device(device, "gk_context_create"));
  GK_CUDA_CHECK(cudaSetDevice(device));
  gk_context* ctx = new (std::nothrow) gk_context();
  if (!ctx) return gk_fail(GK_ERR_OUT_OF_MEMORY, "gk_context_create: out of host memory");
  ctx->device = device;
  // Non-blocking: the legacy default stream would serialise us against every other library's work.
  cudaError_t err = cudaStreamCreateWithFlags(&ctx->default_stream.stream, cudaStreamNonBlocking);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    delete ctx;
    return gk_fail(GK_ERR_DEVICE, "%s:%d: gk_context_create: cudaStreamCreateWithFlags: %s", __FILE__, __LINE__,
                   cudaGetErrorString(err));
  }
  ctx->default_stream.ctx = ctx;
  *out_ctx = ctx;
  return GK_OK;
}

// The context is released even when the device reports an error, so the caller never leaks it;
// the first error is still returned.
GK_API gk_status gk_context_destroy(gk_context* ctx) {
  GK_REQUIRE(ctx, "gk_context_destroy: NULL context");
  cudaError_t first = cudaSetDevice(ctx->device);
  const char* what = "cudaSetDevice";
  auto note = [&](cudaError_t e, const char* call) {
    if (e != cudaSuccess && first == cudaSuccess) {
      first = e;
      what = call;
    }
  };
  gk::cuda::abandon_capture(ctx->default_stream.stream);  // a recording nobody ended
  note(cudaStreamSynchronize(ctx->default_stream.stream), "cudaStreamSynchronize");
  for (auto& entry : ctx->live) note(cudaFree(entry.first), "cudaFree");
  note(cudaStreamDestroy(ctx->default_stream.stream), "cudaStreamDestroy");
  delete ctx;
  if (first != cudaSuccess) {
    (void)cudaGetLastError();
    return gk_fail(GK_ERR_DEVICE, "%s:%d: gk_context_destroy: %s: %s", __FILE__, __LINE__, what,
                   cudaGetErrorString(first));
  }
  return GK_OK;
}

GK_API gk_status gk_context_default_stream(gk_context* ctx, gk_stream** out_stream) {
  GK_REQUIRE(ctx && out_stream, "gk_context_default_stream: NULL context or out_stream");
  *out_stream = &ctx->default_stream;
  return GK_OK;
}

GK_API gk_status gk_stream_create(gk_context* ctx, gk_stream** out_stream) {
  GK_REQUIRE(ctx && out_stream, "gk_stream_create: NULL context or out_stream");
  GK_TRY(use_device(ctx->device));
  cudaStream_t st = nullptr;
  GK_CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  gk_stream* s = new (std::nothrow) gk_stream{ctx, st, false};
  if (!s) {
    cudaStreamDestroy(st);
    return gk_fail(GK_ERR_OUT_OF_MEMORY, "gk_stream_create: out of host memory");
  }
  *out_stream = s;
  return GK_OK;
}

GK_API gk_status gk_stream_destroy(gk_stream* stream) {
  GK_REQUIRE(stream, "gk_stream_destroy: NULL stream");
  if (stream->is_default) return GK_OK;  // owned by its context
  gk::cuda::abandon_capture(stream->stream);  // a recording nobody ended
  // cudaStreamDestroy returns at once; work already queued still completes.
  cudaError_t err = cudaStreamDestroy(stream->stream);
  delete stream;
  GK_CUDA_CHECK(err);
  return GK_OK;
}

GK_API gk_status gk_stream_synchronize(gk_stream* stream) {
  GK_REQUIRE(stream, "gk_stream_synchronize: NULL stream");
  GK_TRY(gk::cuda::refuse_while_capturing(stream->stream, "gk_stream_synchronize"));
  GK_CUDA_CHECK(cudaStreamSynchronize(stream->stream));
  return GK_OK;
}

GK_API gk_status gk_malloc(gk_context* ctx, uint64_t bytes, void** out_ptr) {
  GK_REQUIRE(ctx && out_ptr, "gk_malloc: NULL context or out_ptr");
  GK_REQUIRE(bytes > 0, "gk_malloc: zero bytes requested");
  GK_TRY(use_device(ctx->device));
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, (size_t)bytes);  // cudaMalloc aligns to at least 256 bytes
  if (err == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();  // not sticky: clear it so the next op does not report it
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    (void)cudaGetLastError();
    return gk_fail(GK_ERR_OUT_OF_MEMORY, "gk_malloc: out of device memory allocating %llu bytes (%llu of %llu bytes free)",
                   (unsigned long long)bytes, (unsigned long long)free_b, (unsigned long long)total_b);
  }
  GK_CUDA_CHECK(err);
  std::lock_guard<std::mutex> lock(ctx->mu);
  try {
    ctx->live[p] = bytes;
  } catch (...) {  // bad_alloc must not cross the C ABI; the block would be untracked: give it back
    cudaFree(p);
    (void)cudaGetLastError();
    return gk_fail(GK_ERR_OUT_OF_MEMORY, "gk_malloc: out of host memory tracking %llu bytes", (unsigned long long)bytes);
  }
  ctx->in_use += bytes;
  if (ctx->in_use > ctx->peak) ctx->peak = ctx->in_use;
  *out_ptr = p;
  return GK_OK;
}

GK_API gk_status gk_free(gk_context* ctx, void* ptr) {
  GK_REQUIRE(ctx, "gk_free: NULL context");
  uint64_t bytes = 0;
  {
    std::lock_guard<std::mutex> lock(ctx->mu);
    auto it = ctx->live.find(ptr);
    GK_REQUIRE(it != ctx->live.end(), "gk_free: %p was not allocated by this context (or was freed already)", ptr);
    bytes = it->second;
    ctx->in_use -= bytes;
    ctx->live.erase(it);  // while cudaFree runs, so that a concurrent gk_free of the same pointer is refused
  }
  gk_status st = use_device(ctx->device);
  cudaError_t err = cudaSuccess;
  if (st == GK_OK) {
    err = cudaFree(ptr);
    if (err != cudaSuccess) (void)cudaGetLastError();
  }
  if (st == GK_OK && err == cudaSuccess) return GK_OK;
  // Not freed (e.g. a C caller freeing during a graph capture, which CUDA refuses): tracked again, so memory stats
  // still count it and a later gk_free can release it, instead of a leak no one can see.
  {
    std::lock_guard<std::mutex> lock(ctx->mu);
    try {
      ctx->live[ptr] = bytes;
      ctx->in_use += bytes;
    } catch (...) {  // no host memory to track it: it stays allocated, untracked (reported below)
    }
  }
  if (st != GK_OK) return st;
  return gk_fail(GK_ERR_DEVICE, "gk_free: cudaFree(%p): %s (still allocated and tracked)", ptr, cudaGetErrorString(err));
}

GK_API gk_status gk_memcpy_h2d(gk_stream* s, void* dst, const void* src, uint64_t bytes) {
  GK_REQUIRE(s && s->ctx && dst && src, "gk_memcpy_h2d: NULL stream, dst or src");
  GK_TRY(use_device(s->ctx->device));
  GK_TRY(gk::cuda::refuse_while_capturing(s->stream, "gk_memcpy_h2d"));
  if (bytes == 0) return GK_OK;
  GK_CUDA_CHECK(cudaMemcpyAsync(dst, src, (size_t)bytes, cudaMemcpyHostToDevice, s->stream));
  GK_CUDA_CHECK(cudaStreamSynchronize(s->stream));  // the host buffer may be reused on return
  return GK_OK;
}

GK_API gk_status gk_memcpy_d2h(gk_stream* s, void* dst, const void* src, uint64_t bytes) {
  GK_REQUIRE(s && s->ctx && dst && src, "gk_memcpy_d2h: NULL stream, dst or src");
  GK_TRY(use_device(s->ctx->device));
  GK_TRY(gk::cuda::refuse_while_capturing(s->stream, "gk_memcpy_d2h"));
  if (bytes == 0) return GK_OK;
  GK_CUDA_CHECK(cudaMemcpyAsync(dst, src, (size_t)bytes, cudaMemcpyDeviceToHost, s->stream));
  GK_CUDA_CHECK(cudaStreamSynchronize(s->stream));
  return GK_OK;
}

// memmove semantics, as on CPU. cudaMemcpy on overlapping ranges is undefined, so an overlapping copy is
// split into pieces no longer than the shift: each piece then reads bytes no earlier piece has written.
GK_API gk_status gk_memcpy_d2d(gk_stream* s, void* dst, const void* src, uint64_t bytes) {
  GK_REQUIRE(s && s->ctx && dst && src, "gk_memcpy_d2d: NULL stream, dst or src");
  GK_TRY(use_device(s->ctx->device));
  if (bytes == 0 || dst == src) return GK_OK;
  char* d = (char*)dst;
  const char* c = (const char*)src;
  const uint64_t shift = d > c ? (uint64_t)(d - c) : (uint64_t)(c - d);
  if (shift >= bytes) {
    GK_CUDA_CHECK(cudaMemcpyAsync(dst, src, (size_t)bytes, cudaMemcpyDeviceToDevice, s->stream));
    return GK_OK;
  }
  GK_REQUIRE(bytes / shift <= 64,
             "gk_memcpy_d2d: overlapping copy of %llu bytes shifted by only %llu bytes is not supported",
             (unsigned long long)bytes, (unsigned long long)shift);
  if (d < c) {  // moving down: copy front to back
    for (uint64_t off = 0; off < bytes; off += shift) {
      uint64_t len = bytes - off < shift ? bytes - off : shift;
      GK_CUDA_CHECK(cudaMemcpyAsync(d + off, c + off, (size_t)len, cudaMemcpyDeviceToDevice, s->stream));
    }
  } else {  // moving up: copy back to front
    for (uint64_t end = bytes; end > 0;) {
      uint64_t len = end < shift ? end : shift;
      end -= len;
      GK_CUDA_CHECK(cudaMemcpyAsync(d + end, c + end, (size_t)len, cudaMemcpyDeviceToDevice, s->stream));
    }
  }
  return GK_OK;
}

GK_API gk_status gk_memset(gk_stream* s, void* dst, int32_t value, uint64_t bytes) {
  GK_REQUIRE(s && s->ctx && dst, "gk_memset: NULL stream or dst");
  GK_TRY(use_device(s->ctx->device));
  if (bytes == 0) return GK_OK;
  GK_CUDA_CHECK(cudaMemsetAsync(dst, value & 0xff, (size_t)bytes, s->stream));
  return GK_OK;
}

GK_API gk_status gk_memory_stats(gk_context* ctx, uint64_t* out4) {
  GK_REQUIRE(ctx && out4, "gk_memory_stats: NULL context or out");
  GK_TRY(use_device(ctx->device));
  size_t free_b = 0, total_b = 0;
  GK_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  std::lock_guard<std::mutex> lock(ctx->mu);
  out4[0] = ctx->in_use;
  out4[1] = ctx->peak;
  out4[2] = ctx->live.size();
  out4[3] = total_b;
  return GK_OK;
}

GK_API gk_status gk_memory_reset_peak(gk_context* ctx) {
  GK_REQUIRE(ctx, "gk_memory_reset_peak: NULL context");
  std::lock_guard<std::mutex> lock(ctx->mu);
  ctx->peak = ctx->in_use;
  return GK_OK;
}
