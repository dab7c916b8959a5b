// Elementwise f32 ops: add, mul, scale, GELU-tanh, the gated MLP product, tanh softcap.
#include "cpu.h"
#include "simd.h"

namespace {

constexpr int64_t kParallelMin = 1 << 16;  // below this, threads cost more than they save

// The entry points validate and record (GK_CPU_RECORD); these helpers only compute.
template <typename F>
gk_status binary(const float* a, const float* b, float* y, int64_t n, int64_t b_n, F f) {
  if (b_n == n) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], b[i]);
  } else {
    const int64_t rows = n / b_n;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < b_n; ++j) y[r * b_n + j] = f(a[r * b_n + j], b[j]);
  }
  return GK_OK;
}

template <typename F>
gk_status unary(const float* x, float* y, int64_t n, F f) {
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
  return GK_OK;
}

// y = f(a, b) a vector (simd.h) at a time, for the ops whose f is too costly for GCC's scalar-loop vectorisation
// to be relied on (GELU-tanh, softcap: tanh is a rational/exp evaluation with a select). The last n % kW
// elements go through a zero-padded vector, so every element takes the same path whatever n is; elements are
// independent, so threads do not change results. y may alias a or b (each block is loaded before it is stored).
template <typename F>
void vmap2(const float* a, const float* b, float* y, int64_t n, F f) {
  using namespace gk::cpu::simd;
  const int64_t blocks = n / kW;
  auto block = [&](int64_t i) { vstore(y + i * kW, f(vload(a + i * kW), vload(b + i * kW))); };
  if (n > kParallelMin) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < blocks; ++i) block(i);
  } else {
    // Not an OpenMP region with a false if(): entering even a one-thread team costs about a microsecond,
    // a tenth of a decode step's 2048-wide GELU.
    for (int64_t i = 0; i < blocks; ++i) block(i);
  }
  const int64_t done = blocks * kW, rest = n - done;
  if (rest > 0) {
    float ta[kW] = {}, tb[kW] = {}, ty[kW];
    for (int64_t j = 0; j < rest; ++j) ta[j] = a[done + j], tb[j] = b[done + j];
    vstore(ty, f(vload(ta), vload(tb)));
    for (int64_t j = 0; j < rest; ++j) y[done + j] = ty[j];
  }
}

}  // namespace

GK_API gk_status gk_add(gk_stream* s, const float* a, const float* b, float* y, int64_t n, int64_t b_n) {
  GK_TRY(gk::validate_stream(s, "gk_add"));
  GK_TRY(gk::validate_binary("gk_add", a, b, y, n, b_n));
  GK_CPU_RECORD(s, gk_add(s, a, b, y, n, b_n));
  return binary(a, b, y, n, b_n, [](float u, float v) { return u + v; });
}

GK_API gk_status gk_mul(gk_stream* s, const float* a, const float* b, float* y, int64_t n, int64_t b_n) {
  GK_TRY(gk::validate_stream(s, "gk_mul"));
  GK_TRY(gk::validate_binary("gk_mul", a, b, y, n, b_n));
  GK_CPU_RECORD(s, gk_mul(s, a, b, y, n, b_n));
  return binary(a, b, y, n, b_n, [](float u, float v) { return u * v; });
}

GK_API gk_status gk_gelu_tanh_mul(gk_stream* s, const float* gate, const float* up, float* y, int64_t n) {
  GK_TRY(gk::validate_stream(s, "gk_gelu_tanh_mul"));
  GK_TRY(gk::validate_binary("gk_gelu_tanh_mul", gate, up, y, n, n));
  GK_CPU_RECORD(s, gk_gelu_tanh_mul(s, gate, up, y, n));
  using namespace gk::cpu::simd;
  vmap2(gate, up, y, n, [](vf g, vf u) { return vmul(vgelu_tanh(g), u); });
  return GK_OK;
}

GK_API gk_status gk_scale(gk_stream* s, const float* x, float* y, int64_t n, float alpha) {
  GK_TRY(gk::validate_stream(s, "gk_scale"));
  GK_TRY(gk::validate_unary("gk_scale", x, y, n));
  GK_CPU_RECORD(s, gk_scale(s, x, y, n, alpha));
  return unary(x, y, n, [alpha](float v) { return v * alpha; });
}

GK_API gk_status gk_gelu_tanh(gk_stream* s, const float* x, float* y, int64_t n) {
  GK_TRY(gk::validate_stream(s, "gk_gelu_tanh"));
  GK_TRY(gk::validate_unary("gk_gelu_tanh", x, y, n));
  GK_CPU_RECORD(s, gk_gelu_tanh(s, x, y, n));
  using namespace gk::cpu::simd;
  vmap2(x, x, y, n, [](vf v, vf) { return vgelu_tanh(v); });
  return GK_OK;
}

GK_API gk_status gk_softcap(gk_stream* s, const float* x, float* y, int64_t n, float cap) {
  GK_TRY(gk::validate_stream(s, "gk_softcap"));
  GK_TRY(gk::validate_softcap(x, y, n, cap));
  GK_CPU_RECORD(s, gk_softcap(s, x, y, n, cap));
  // x / cap, not x * (1 / cap): the same rounding as torch's `tanh(logits / cap) * cap`. Vectorised: libm's
  // scalar tanhf over a 262144-entry vocabulary was milliseconds per decoded token.
  using namespace gk::cpu::simd;
  const vf c = vset1(cap);
  vmap2(x, x, y, n, [c](vf v, vf) { return vmul(c, vtanh(vdiv(v, c))); });
  return GK_OK;
}
