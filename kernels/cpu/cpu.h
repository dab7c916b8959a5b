// Helpers shared by the CPU kernels.
#pragma once
#include <stdint.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>
#include <utility>
#include <vector>

#include "../common/dtype.h"
#include "../common/validate.h"

// One recorded call of a decode program: the op's entry point with its arguments captured by value,
// re-invoked on the stream gk_program_run is given (kernels/cpu/program.cpp).
// `name` is the entry point's source text up to its argument list (a string literal), for GEMMAKIT_PROFILE.
struct gk_cpu_call {
  std::function<gk_status(gk_stream*)> fn;
  const char* name;
};

// The CPU stream runs each op synchronously when it is called; between gk_program_begin and
// gk_program_end it records the calls instead (GK_CPU_RECORD) and runs none of them.
struct gk_stream {
  gk_stream(gk_context* c, bool d) : ctx(c), is_default(d) {}
  gk_context* ctx;
  bool is_default;
  bool recording = false;
  std::vector<gk_cpu_call> recorded;
};

// First line of every CPU op entry point after its argument validation (and before it reads any data):
// while `stream` is recording, appends a call that re-invokes the entry point with the same arguments
// and returns GK_OK without running anything. `stream` must be the name of the entry's gk_stream*
// parameter: the recorded lambda takes the replaying stream under that name and captures everything
// else by value, e.g.
//   GK_CPU_RECORD(s, gk_rms_norm(s, x, weight, weight_dtype, mode, eps, rows, dim, y));
// Arguments that point at host-side parameter blocks must be copied into a local first (gk_sample).
#define GK_CPU_RECORD(stream, call)                                                    \
  do {                                                                                 \
    if ((stream)->recording) {                                                         \
      return gk::cpu::record((stream), #call, [=](gk_stream* stream) -> gk_status { return call; }); \
    }                                                                                  \
  } while (0)

namespace gk::cpu {

template <typename F>
gk_status record(gk_stream* s, const char* name, F&& call) {
  try {
    s->recorded.push_back(gk_cpu_call{std::forward<F>(call), name});
  } catch (const std::bad_alloc&) {
    return gk_fail(GK_ERR_OUT_OF_MEMORY, "gk_program: out of host memory recording call %zu", s->recorded.size());
  }
  return GK_OK;
}

inline uint64_t physical_memory_bytes() {
  return (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGE_SIZE);
}

// Converts n weights starting at element `first` to f32 (vectorises for each dtype).
inline void load_row_f32(const void* base, int32_t dtype, int64_t first, int64_t n, float* out) {
  if (dtype == GK_F32) {
    const float* p = (const float*)base + first;
    for (int64_t i = 0; i < n; ++i) out[i] = p[i];
  } else if (dtype == GK_BF16) {
    const uint16_t* p = (const uint16_t*)base + first;
    for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(p[i]);
  } else {
    const uint16_t* p = (const uint16_t*)base + first;
    for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(p[i]);
  }
}

// gk_linear's kernels without the stream (y = x · Wᵀ + bias, arguments already validated; kernels/cpu/linear.cpp),
// for ops built on matmuls (gk_moe_experts).
gk_status linear(const float* x, const void* weight, int32_t weight_dtype, const void* bias, int64_t m, int64_t n,
                 int64_t k, float* y);

// An environment switch: set and not "0", or unset and `when_unset` (callers read it once, into a static).
inline bool env_switch(const char* name, bool when_unset) {
  const char* v = getenv(name);
  return v && *v ? strcmp(v, "0") != 0 : when_unset;
}

// The 16-row layouts GK_Q8_0X16 .. GK_Q5_1X16 (kernels/cpu/repack.cpp), each made from one file format: whether this
// build reads them; their shape rule (n % 16, k a whole number of blocks) as an INVALID_ARGUMENT (UNSUPPORTED in builds
// that cannot read them) naming `op`; y = x · Wᵀ (+ bias f32) for any m; and row r of W decoded to f32 (k values),
// exactly as its file row was.
constexpr bool is_x16_dtype(int32_t dtype) { return dtype >= GK_Q8_0X16 && dtype <= GK_Q5_1X16; }  // (208..215)
constexpr int32_t x16_file_dtype(int32_t dtype) {
  return dtype == GK_Q8_0X16   ? GK_Q8_0
         : dtype == GK_Q5_0X16 ? GK_Q5_0
         : dtype == GK_Q4_0X16 ? GK_Q4_0
         : dtype == GK_Q4_1X16 ? GK_Q4_1
         : dtype == GK_Q5_1X16 ? GK_Q5_1
         : dtype == GK_Q4_KX16 ? GK_Q4_K
         : dtype == GK_Q5_KX16 ? GK_Q5_K
                               : GK_Q6_K;
}
bool x16_supported();
gk_status validate_x16(const char* op, int32_t dtype, int64_t n, int64_t k);
gk_status linear_x16(const float* x, const void* w, int32_t dtype, const void* bias, int64_t m, int64_t n, int64_t k,
                     float* y);
void x16_row(const void* w, int32_t dtype, int64_t k, int64_t r, float* out);
// Rows r0 .. r0 + rows (within one 16-row group; rows <= nr) decoded to f32 in linear.cpp's strip layout
// [k / 16][nr][16] (rows past `rows` are 0), for the products with more rows of x than the integer kernel wins at.
void x16_strip(const void* w, int32_t dtype, int64_t k, int64_t r0, int rows, int nr, float* strip);
// W[n0 .. n0 + nb, k0 .. k0 + kb) decoded into linear.cpp's packing panel, slivers of 32 rows laid out [kb][32] (rows
// past nb are 0; n0 a multiple of 32, k0 and kb whole blocks), for the packed GEMM of many rows of x.
void x16_panel(const void* w, int32_t dtype, int64_t k, int64_t n0, int nb, int64_t k0, int kb, float* panel);

// gk_greedy_logits' screen over a 16-row layout (kernels/cpu/repack.cpp): for m rows of x (m <= int_rows_max(dtype)),
// y holds gk_linear's value (softcapped when cap > 0) of every row of W that could be its row's maximum and of
// keep_ids, −inf for others; `computed_groups` (may be NULL) gets how many 16-row groups × rows of x got values.
// Supported for the layouts whose codes need no min: Q8_0X16, Q5_0X16, Q4_0X16, Q6_KX16.
bool screen_x16_supported(int32_t dtype);
gk_status screen_x16(const float* x, const void* w, int32_t dtype, const int32_t* keep_ids, int32_t n_keep, int64_t m,
                     int64_t n, int64_t k, float cap, float* y, int64_t* computed_groups);
// The rows of x up to which gk_linear multiplies a 16-row layout with its integer kernel (kernels/cpu/linear.cpp).
int64_t x16_int_rows_max(int32_t dtype);
// y = cap · tanh(x / cap) over n floats, each as gk_softcap computes it (threads only past 65,536 of them).
void softcap(const float* x, float* y, int64_t n, float cap);

// GEMMAKIT_CPU_Q8_ACTIVATIONS=1 (read once): gk_linear with quantized W and 1..32 rows of x quantizes x to int8 per
// 32 elements and multiplies with AVX512-VNNI (kernels/cpu/linear_q8act.cpp); AVX2 builds without VNNI do so for up
// to 8 rows of x and Q4_K / Q6_K W, up to 4 and Q5_0 (kernels/cpu/linear_x24_avx2.cpp). Off by default: not
// bit-faithful.
bool q8_activations_enabled();
// That path: false (nothing written) for a format, shape or build it does not take.
bool linear_q8act(const float* x, const void* weight, int32_t weight_dtype, const void* bias, int64_t m, int64_t n,
                  int64_t k, float* y);

// On unless GEMMAKIT_CPU_X24_ACTIVATIONS=0 (read once), on AVX512-VNNI builds: gk_linear's decode products (m = 1)
// with Q5_0 / Q4_K / Q6_K W quantize x to 24-bit integers per 4 elements and multiply in the integers
// (kernels/cpu/linear_q8act.cpp; on AVX2 builds without VNNI kernels/cpu/linear_x24_avx2.cpp, whose Q4_K path scales
// x per 32 elements). x's rounding is at most 2^-24 of its lane's (block's) largest |x| (one below 2^-96 goes in as 0).
bool x24_activations_enabled();
// That path for one row of x: false (nothing written) for a format, shape or build it does not take.
bool linear_x24act(const float* x, const void* weight, int32_t weight_dtype, const void* bias, int64_t n, int64_t k,
                   float* y);

}  // namespace gk::cpu
