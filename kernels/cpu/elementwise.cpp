// Elementwise f32 ops: add, mul, scale, GELU-tanh, the gated MLP product, tanh softcap.
#include <algorithm>

#include "cpu.h"
#include "simd.h"

namespace {

constexpr int64_t kParallelMin = 1 << 16;  // below this, threads cost more than they save

// The entry points validate and record (GK_CPU_RECORD); these helpers only compute, a vector (simd.h) at a time:
// GCC's own vectorisation of the scalar loops was not relied on (the decode step's adds and its GELU ran the
// scalar fallback of their `omp simd` loops), and a one-thread OpenMP region still costs about a microsecond,
// which is more than a decode step's 640-wide add. Elements are independent, so neither the vector width, the
// padding of the last n % kW elements (they go through a zero-padded vector, the same path as the rest) nor the
// number of threads changes a result. y may alias a or b: each block is loaded before it is stored.
template <typename F>
void vmap_serial(const float* a, const float* b, float* y, int64_t n, F f) {
  using namespace gk::cpu::simd;
  int64_t i = 0;
  for (; i + kW <= n; i += kW) vstore(y + i, f(vload(a + i), vload(b + i)));
  if (i < n) {
    float ta[kW] = {}, tb[kW] = {}, ty[kW];
    for (int64_t j = i; j < n; ++j) ta[j - i] = a[j], tb[j - i] = b[j];
    vstore(ty, f(vload(ta), vload(tb)));
    for (int64_t j = i; j < n; ++j) y[j] = ty[j - i];
  }
}

// cap · tanh(x / cap): x / cap, not x * (1 / cap), the same rounding as torch's `tanh(logits / cap) * cap`.
inline auto softcap_fn(float cap) {
  using namespace gk::cpu::simd;
  const vf c = vset1(cap);
  return [c](vf v, vf) { return vmul(c, vtanh(vdiv(v, c))); };
}

// y = f(a, b) elementwise, b of the same length.
template <typename F>
void vmap(const float* a, const float* b, float* y, int64_t n, F f) {
  if (n <= kParallelMin) return vmap_serial(a, b, y, n, f);
  constexpr int64_t kChunk = 4096;  // a multiple of every kW
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t lo = c * kChunk;
    vmap_serial(a + lo, b + lo, y + lo, std::min(kChunk, n - lo), f);
  }
}

// y[i] = f(a[i], b[i % b_n]): b broadcast over the rows of a (b_n divides n, validated). Rows narrower than a
// vector take the scalar fs (the same operation on one float).
template <typename F, typename FS>
gk_status binary(const float* a, const float* b, float* y, int64_t n, int64_t b_n, F f, FS fs) {
  if (b_n == n) {
    vmap(a, b, y, n, f);
    return GK_OK;
  }
  const int64_t rows = n / b_n;
  auto row = [&](int64_t r) {
    if (b_n >= gk::cpu::simd::kW) return vmap_serial(a + r * b_n, b, y + r * b_n, b_n, f);
    for (int64_t j = 0; j < b_n; ++j) y[r * b_n + j] = fs(a[r * b_n + j], b[j]);
  };
  if (n <= kParallelMin) {
    for (int64_t r = 0; r < rows; ++r) row(r);
    return GK_OK;
  }
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) row(r);
  return GK_OK;
}

}  // namespace

GK_API gk_status gk_add(gk_stream* s, const float* a, const float* b, float* y, int64_t n, int64_t b_n) {
  GK_TRY(gk::validate_stream(s, "gk_add"));
  GK_TRY(gk::validate_binary("gk_add", a, b, y, n, b_n));
  GK_CPU_RECORD(s, gk_add(s, a, b, y, n, b_n));
  using namespace gk::cpu::simd;
  return binary(a, b, y, n, b_n, [](vf u, vf v) { return vadd(u, v); }, [](float u, float v) { return u + v; });
}

GK_API gk_status gk_mul(gk_stream* s, const float* a, const float* b, float* y, int64_t n, int64_t b_n) {
  GK_TRY(gk::validate_stream(s, "gk_mul"));
  GK_TRY(gk::validate_binary("gk_mul", a, b, y, n, b_n));
  GK_CPU_RECORD(s, gk_mul(s, a, b, y, n, b_n));
  using namespace gk::cpu::simd;
  return binary(a, b, y, n, b_n, [](vf u, vf v) { return vmul(u, v); }, [](float u, float v) { return u * v; });
}

GK_API gk_status gk_gelu_tanh_mul(gk_stream* s, const float* gate, const float* up, float* y, int64_t n) {
  GK_TRY(gk::validate_stream(s, "gk_gelu_tanh_mul"));
  GK_TRY(gk::validate_binary("gk_gelu_tanh_mul", gate, up, y, n, n));
  GK_CPU_RECORD(s, gk_gelu_tanh_mul(s, gate, up, y, n));
  using namespace gk::cpu::simd;
  vmap(gate, up, y, n, [](vf g, vf u) { return vmul(vgelu_tanh(g), u); });
  return GK_OK;
}

GK_API gk_status gk_scale(gk_stream* s, const float* x, float* y, int64_t n, float alpha) {
  GK_TRY(gk::validate_stream(s, "gk_scale"));
  GK_TRY(gk::validate_unary("gk_scale", x, y, n));
  GK_CPU_RECORD(s, gk_scale(s, x, y, n, alpha));
  using namespace gk::cpu::simd;
  const vf va = vset1(alpha);
  vmap(x, x, y, n, [va](vf v, vf) { return vmul(v, va); });
  return GK_OK;
}

GK_API gk_status gk_gelu_tanh(gk_stream* s, const float* x, float* y, int64_t n) {
  GK_TRY(gk::validate_stream(s, "gk_gelu_tanh"));
  GK_TRY(gk::validate_unary("gk_gelu_tanh", x, y, n));
  GK_CPU_RECORD(s, gk_gelu_tanh(s, x, y, n));
  using namespace gk::cpu::simd;
  vmap(x, x, y, n, [](vf v, vf) { return vgelu_tanh(v); });
  return GK_OK;
}

GK_API gk_status gk_softcap(gk_stream* s, const float* x, float* y, int64_t n, float cap) {
  GK_TRY(gk::validate_stream(s, "gk_softcap"));
  GK_TRY(gk::validate_softcap(x, y, n, cap));
  GK_CPU_RECORD(s, gk_softcap(s, x, y, n, cap));
  // Vectorised: libm's scalar tanhf over a 262144-entry vocabulary was milliseconds per decoded token.
  vmap(x, x, y, n, softcap_fn(cap));
  return GK_OK;
}

void gk::cpu::softcap(const float* x, float* y, int64_t n, float cap) { vmap(x, x, y, n, softcap_fn(cap)); }
