// Decode programs on CUDA: stream capture into a CUDA graph, replayed with cudaGraphLaunch.
//
// Capture runs in cudaStreamCaptureModeThreadLocal: only this thread's unsafe calls (cudaMalloc, a
// synchronisation) invalidate it. Our ops are capturable — no allocation, no synchronisation, per-step
// values read from device memory — and the runtime refuses the host copies and stream synchronisation
// while the stream is capturing (kernels/cuda/runtime.cu), so a recording fails with a clear message
// instead of an invalidated capture.
#include <cstdio>
#include "cuda_common.cuh"

using gk::cuda::begin_op;

struct gk_program {
  cudaGraphExec_t exec;
  int device;
  char error[1024] = "";  // the last run's failure, readable from any thread
};

GK_API gk_status gk_program_begin(gk_stream* s) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_program_begin", &st));
  // The legacy default stream cannot be captured; contexts and gk_stream_create make non-blocking streams.
  GK_REQUIRE(st != nullptr && st != cudaStreamLegacy && st != cudaStreamPerThread,
             "gk_program_begin: cannot record on the legacy default stream");
  cudaStreamCaptureStatus cs;
  GK_TRY(gk::cuda::capture_status(st, &cs));
  GK_REQUIRE(cs == cudaStreamCaptureStatusNone, "gk_program_begin: the stream is already recording a program%s",
             cs == cudaStreamCaptureStatusInvalidated ? " (an invalidated one: gk_program_end discards it)" : "");
  GK_CUDA_CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
  return GK_OK;
}

GK_API gk_status gk_program_end(gk_stream* s, gk_program** out_program) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_program_end", &st));
  cudaStreamCaptureStatus cs;
  GK_TRY(gk::cuda::capture_status(st, &cs));
  GK_REQUIRE(cs != cudaStreamCaptureStatusNone,
             "gk_program_end: the stream is not recording a program (gk_program_begin first)");
  if (!out_program) {
    gk::cuda::abandon_capture(st);
    return gk_fail(GK_ERR_INVALID_ARGUMENT, "gk_program_end: NULL out_program (the recording was discarded)");
  }
  cudaGraph_t graph = nullptr;
  cudaError_t err = cudaStreamEndCapture(st, &graph);  // ends the capture even when it was invalidated
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    if (graph) cudaGraphDestroy(graph);
    return gk_fail(GK_ERR_DEVICE,
                   "%s:%d: gk_program_end: cudaStreamEndCapture: %s (a call during the recording synchronised, "
                   "allocated or freed memory, or used another stream)",
                   __FILE__, __LINE__, cudaGetErrorString(err));
  }
  cudaGraphExec_t exec = nullptr;
  err = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);  // the executable graph keeps what it needs
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return gk_fail(GK_ERR_DEVICE, "%s:%d: gk_program_end: cudaGraphInstantiate: %s", __FILE__, __LINE__,
                   cudaGetErrorString(err));
  }
  gk_program* p = new (std::nothrow) gk_program{exec, s->ctx->device};
  if (!p) {
    cudaGraphExecDestroy(exec);
    return gk_fail(GK_ERR_OUT_OF_MEMORY, "gk_program_end: out of host memory");
  }
  *out_program = p;
  return GK_OK;
}

static gk_status run_steps(gk_program* program, gk_stream* s, int32_t steps) {
  GK_TRY(gk::validate_program_run(program, s, steps));
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_program_run", &st));
  GK_REQUIRE(program->device == s->ctx->device, "gk_program_run: program was recorded on device %d, stream is on %d",
             program->device, s->ctx->device);
  cudaStreamCaptureStatus cs;
  GK_TRY(gk::cuda::capture_status(st, &cs));
  GK_REQUIRE(cs == cudaStreamCaptureStatusNone,
             "gk_program_run: the stream is recording a program; end the recording first");
  for (int32_t step = 0; step < steps; ++step) {
    const cudaError_t err = cudaGraphLaunch(program->exec, st);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      return gk_fail(GK_ERR_DEVICE, "%s:%d: gk_program_run: step %d of %d: cudaGraphLaunch: %s", __FILE__, __LINE__,
                     step, steps, cudaGetErrorString(err));
    }
  }
  const cudaError_t err = cudaStreamSynchronize(st);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    // Kernels fail asynchronously: the failing step is not known on the host.
    return gk_fail(GK_ERR_DEVICE, "%s:%d: gk_program_run: a kernel failed during steps 0..%d: %s", __FILE__,
                   __LINE__, steps - 1, cudaGetErrorString(err));
  }
  return GK_OK;
}

GK_API gk_status gk_program_destroy(gk_program* program) {
  GK_REQUIRE(program, "gk_program_destroy: NULL program");
  const cudaError_t set = cudaSetDevice(program->device);
  const cudaError_t err = cudaGraphExecDestroy(program->exec);
  delete program;
  GK_CUDA_CHECK(set);
  GK_CUDA_CHECK(err);
  return GK_OK;
}

// Deno may run gk_program_run on a worker thread (a nonblocking FFI call), where the thread-local last
// error cannot be read afterwards; the program keeps its own copy of the last failure.
GK_API gk_status gk_program_run(gk_program* program, gk_stream* s, int32_t steps) {
  const gk_status st = run_steps(program, s, steps);
  if (program) snprintf(program->error, sizeof program->error, "%s", st == GK_OK ? "" : gk_last_error());
  return st;
}

GK_API const char* gk_program_last_error(gk_program* program) { return program ? program->error : ""; }
