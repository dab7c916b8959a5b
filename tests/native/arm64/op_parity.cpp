// Op parity of a CPU library through its C ABI alone, against double-precision references computed here.
// The arm64 task (.ci/arm64) cross-compiles the library and this driver and runs them under qemu-user,
// where Deno's op-parity suite would take hours (emulated JavaScript); tests/native/op_parity_test.ts runs
// the same driver on the host library, so both architectures answer the same cases.
// Covers every path of gk_linear (the matrix-vector rows m <= 4 with NEON on arm64, the tiled ones, and a
// quantized weight), and the kernels built on the shared vector header (softmax, RMSNorm, decode attention,
// the gated GELU). Prints one line per case; exits 1 when any case is off.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "gemmakit.h"

namespace {

gk_context* ctx;
gk_stream* stream;
int failures = 0;

uint32_t rng_state = 12345;
float uniform(float lo, float hi) {  // xorshift32: the same inputs on every architecture
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 17;
  rng_state ^= rng_state << 5;
  return lo + (hi - lo) * (float)(rng_state >> 8) / 16777216.0f;
}
std::vector<float> floats(size_t n, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> v(n);
  for (auto& x : v) x = uniform(lo, hi);
  return v;
}

uint16_t to_bf16(float f) {  // truncation is fine: the reference reads back what was stored
  uint32_t b;
  memcpy(&b, &f, 4);
  return (uint16_t)(b >> 16);
}
float from_bf16(uint16_t h) {
  uint32_t b = (uint32_t)h << 16;
  float f;
  memcpy(&f, &b, 4);
  return f;
}
uint16_t to_f16(float f) {  // normal range only (|f| in [2^-14, 65504]) or 0, which is all the inputs use
  if (f == 0.0f) return 0;
  uint32_t b;
  memcpy(&b, &f, 4);
  const uint32_t sign = (b >> 16) & 0x8000u;
  const int exp = (int)((b >> 23) & 0xff) - 127 + 15;
  return (uint16_t)(sign | ((uint32_t)exp << 10) | ((b >> 13) & 0x3ffu));
}
float from_f16(uint16_t h) {
  const int exp = (h >> 10) & 0x1f;
  const float mant = (float)(h & 0x3ff);
  const float mag = exp == 0 ? std::ldexp(mant, -24) : std::ldexp(1024.0f + mant, exp - 25);
  return (h & 0x8000u) ? -mag : mag;
}

void check(gk_status st, const char* what) {
  if (st != GK_OK) {
    fprintf(stderr, "%s: status %d: %s\n", what, (int)st, gk_last_error());
    std::exit(2);
  }
}

// Device buffer (host memory on the CPU backend, but only reached through the ABI's copies).
struct Buf {
  void* p = nullptr;
  size_t bytes = 0;
  explicit Buf(size_t n) : bytes(n) { check(gk_malloc(ctx, n ? n : 1, &p), "gk_malloc"); }
  template <class T>
  Buf(const std::vector<T>& v) : Buf(v.size() * sizeof(T)) {
    if (bytes) check(gk_memcpy_h2d(stream, p, v.data(), bytes), "gk_memcpy_h2d");
  }
  ~Buf() { gk_free(ctx, p); }
  std::vector<float> read() const {
    std::vector<float> v(bytes / 4);
    check(gk_memcpy_d2h(stream, v.data(), p, bytes), "gk_memcpy_d2h");
    check(gk_stream_synchronize(stream), "gk_stream_synchronize");
    return v;
  }
};

void compare(const std::string& name, const std::vector<float>& out, const std::vector<double>& want, double limit) {
  double err = 0, norm = 0;
  bool finite = out.size() == want.size();
  for (size_t i = 0; finite && i < want.size(); ++i) {
    if (!std::isfinite(out[i]) && std::isfinite(want[i])) finite = false;
    err += (out[i] - want[i]) * (out[i] - want[i]);
    norm += want[i] * want[i];
  }
  const double nmse = norm == 0 ? err : err / norm;
  const bool ok = finite && nmse <= limit;
  printf("%s %-58s nmse %.2e (limit %.0e)\n", ok ? "ok  " : "FAIL", name.c_str(), nmse, limit);
  failures += !ok;
}

void linear_case(int dtype, const char* dname, int m, int n, int k, bool with_bias) {
  const auto x = floats((size_t)m * k);
  std::vector<float> wf((size_t)n * k);  // W as the kernel reads it
  std::vector<uint8_t> wbytes;
  std::vector<float> bias_f = with_bias ? floats(n) : std::vector<float>();
  std::vector<uint8_t> bias_bytes;
  if (dtype == GK_F32) {
    wf = floats(wf.size());
    wbytes.resize(wf.size() * 4);
    memcpy(wbytes.data(), wf.data(), wbytes.size());
  } else if (dtype == GK_BF16 || dtype == GK_F16) {
    std::vector<uint16_t> h(wf.size());
    for (size_t i = 0; i < h.size(); ++i) {
      const float v = uniform(-1.0f, 1.0f);
      h[i] = dtype == GK_BF16 ? to_bf16(v) : to_f16(std::fabs(v) < 1e-4f ? 0.0f : v);
      wf[i] = dtype == GK_BF16 ? from_bf16(h[i]) : from_f16(h[i]);
    }
    wbytes.resize(h.size() * 2);
    memcpy(wbytes.data(), h.data(), wbytes.size());
  } else {  // GK_Q8_0: per 32 elements an f16 scale and 32 int8 codes
    for (int64_t b = 0; b < (int64_t)n * k / 32; ++b) {
      const uint16_t d = to_f16(uniform(0.001f, 0.02f));
      wbytes.push_back((uint8_t)(d & 0xff));
      wbytes.push_back((uint8_t)(d >> 8));
      for (int l = 0; l < 32; ++l) {
        const int8_t q = (int8_t)(int)uniform(-127.0f, 127.0f);
        wbytes.push_back((uint8_t)q);
        wf[(size_t)b * 32 + l] = from_f16(d) * (float)q;
      }
    }
  }
  // The bias is stored like a float W, and as f32 for a quantized one.
  const bool bias_f32 = dtype != GK_BF16 && dtype != GK_F16;
  if (with_bias) {
    if (bias_f32) {
      bias_bytes.resize(n * 4);
      memcpy(bias_bytes.data(), bias_f.data(), bias_bytes.size());
    } else {
      for (int j = 0; j < n; ++j) {
        const uint16_t h = dtype == GK_BF16 ? to_bf16(bias_f[j]) : to_f16(bias_f[j]);
        bias_f[j] = dtype == GK_BF16 ? from_bf16(h) : from_f16(h);
        bias_bytes.push_back((uint8_t)(h & 0xff));
        bias_bytes.push_back((uint8_t)(h >> 8));
      }
    }
  }
  std::vector<double> want((size_t)m * n);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double s = with_bias ? bias_f[j] : 0.0;
      for (int c = 0; c < k; ++c) s += (double)x[(size_t)i * k + c] * wf[(size_t)j * k + c];
      want[(size_t)i * n + j] = s;
    }
  Buf bx(x), bw(wbytes), bb(bias_bytes), by((size_t)m * n * 4);
  check(gk_linear(stream, (const float*)bx.p, bw.p, dtype, with_bias ? bb.p : nullptr, m, n, k, (float*)by.p),
        "gk_linear");
  char name[128];
  snprintf(name, sizeof name, "linear %s m=%d n=%d k=%d%s", dname, m, n, k, with_bias ? " +bias" : "");
  compare(name, by.read(), want, 1e-10);
}

void softmax_case(int rows, int cols) {
  auto x = floats((size_t)rows * cols, -20.0f, 20.0f);
  x[3] = -INFINITY;  // a masked score
  std::vector<double> want(x.size());
  for (int r = 0; r < rows; ++r) {
    double mx = -INFINITY, sum = 0;
    for (int c = 0; c < cols; ++c) mx = std::fmax(mx, x[(size_t)r * cols + c]);
    for (int c = 0; c < cols; ++c) sum += std::exp(x[(size_t)r * cols + c] - mx);
    for (int c = 0; c < cols; ++c) want[(size_t)r * cols + c] = std::exp(x[(size_t)r * cols + c] - mx) / sum;
  }
  Buf bx(x), by(x.size() * 4);
  check(gk_softmax(stream, (const float*)bx.p, (float*)by.p, rows, cols), "gk_softmax");
  compare("softmax rows=" + std::to_string(rows) + " cols=" + std::to_string(cols), by.read(), want, 1e-12);
}

void rms_norm_case(int rows, int dim) {
  const auto x = floats((size_t)rows * dim, -3.0f, 3.0f);
  const auto w = floats(dim, -0.5f, 0.5f);
  const float eps = 1e-6f;
  std::vector<double> want(x.size());
  for (int r = 0; r < rows; ++r) {
    double ss = 0;
    for (int c = 0; c < dim; ++c) ss += (double)x[(size_t)r * dim + c] * x[(size_t)r * dim + c];
    const double inv = 1.0 / std::sqrt(ss / dim + eps);
    for (int c = 0; c < dim; ++c) want[(size_t)r * dim + c] = x[(size_t)r * dim + c] * inv * (1.0 + w[c]);
  }
  Buf bx(x), bw(w), by(x.size() * 4);
  check(gk_rms_norm(stream, (const float*)bx.p, bw.p, GK_F32, GK_NORM_ONE_PLUS, eps, rows, dim, (float*)by.p),
        "gk_rms_norm");
  compare("rms_norm (1+w) rows=" + std::to_string(rows) + " dim=" + std::to_string(dim), by.read(), want, 1e-12);
}

void attention_decode_case(int q_heads, int kv_heads, int head_dim, int capacity, int window, int position) {
  const auto q = floats((size_t)q_heads * head_dim);
  const auto kc = floats((size_t)capacity * kv_heads * head_dim);
  const auto vc = floats((size_t)capacity * kv_heads * head_dim);
  const float scale = 1.0f / std::sqrt((float)head_dim);
  const int span = window > 0 && window < capacity ? window : capacity;
  const int first = std::max(0, position - span + 1);
  std::vector<double> want((size_t)q_heads * head_dim, 0.0);
  for (int h = 0; h < q_heads; ++h) {
    const int g = h / (q_heads / kv_heads);
    std::vector<double> s;
    double mx = -INFINITY;
    for (int p = first; p <= position; ++p) {
      const float* kr = &kc[((size_t)(p % capacity) * kv_heads + g) * head_dim];
      double d = 0;
      for (int c = 0; c < head_dim; ++c) d += (double)q[(size_t)h * head_dim + c] * kr[c];
      s.push_back(d * scale);
      mx = std::fmax(mx, s.back());
    }
    double sum = 0;
    for (auto& e : s) sum += (e = std::exp(e - mx));
    for (int p = first; p <= position; ++p) {
      const float* vr = &vc[((size_t)(p % capacity) * kv_heads + g) * head_dim];
      for (int c = 0; c < head_dim; ++c) want[(size_t)h * head_dim + c] += s[p - first] / sum * vr[c];
    }
  }
  Buf bq(q), bk(kc), bv(vc), bo(want.size() * 4), bpos(std::vector<int32_t>{position});
  check(gk_attention_decode(stream, (const float*)bq.p, (const float*)bk.p, (const float*)bv.p, (float*)bo.p, q_heads,
                            kv_heads, head_dim, capacity, window, (const int32_t*)bpos.p, scale, 0.0f),
        "gk_attention_decode");
  char name[128];
  snprintf(name, sizeof name, "attention_decode heads=%d/%d dim=%d cap=%d window=%d pos=%d", q_heads, kv_heads,
           head_dim, capacity, window, position);
  compare(name, bo.read(), want, 1e-11);
}

void gelu_mul_case(int n) {
  const auto gate = floats(n, -6.0f, 6.0f), up = floats(n);
  std::vector<double> want(n);
  for (int i = 0; i < n; ++i) {
    const double g = gate[i];
    want[i] = 0.5 * g * (1.0 + std::tanh(0.7978845608028654 * (g + 0.044715 * g * g * g))) * up[i];
  }
  Buf bg(gate), bu(up), by((size_t)n * 4);
  check(gk_gelu_tanh_mul(stream, (const float*)bg.p, (const float*)bu.p, (float*)by.p, n), "gk_gelu_tanh_mul");
  compare("gelu_tanh_mul n=" + std::to_string(n), by.read(), want, 1e-11);
}

}  // namespace

int main() {
  char device[128];
  check(gk_context_create(0, &ctx), "gk_context_create");
  check(gk_context_default_stream(ctx, &stream), "gk_context_default_stream");
  check(gk_device_name(0, device, sizeof device), "gk_device_name");
  printf("%s, ABI %d\n", device, gk_abi_version());
  const struct {
    int dtype;
    const char* name;
  } dtypes[] = {{GK_F32, "f32"}, {GK_BF16, "bf16"}, {GK_F16, "f16"}, {GK_Q8_0, "q8_0"}};
  for (const auto& d : dtypes) {
    for (int m : {1, 2, 3, 4, 9, 20, 70}) {
      const int k = d.dtype == GK_Q8_0 ? 256 : 203;  // 203: a tail past the last whole vector
      linear_case(d.dtype, d.name, m, 37, k, m % 2 == 1);
      if (m == 1) linear_case(d.dtype, d.name, m, 300, d.dtype == GK_Q8_0 ? 512 : 640, true);
    }
  }
  softmax_case(3, 1003);
  rms_norm_case(4, 640);
  attention_decode_case(4, 2, 64, 48, 0, 40);
  attention_decode_case(8, 1, 256, 16, 0, 37);  // a ring buffer that wrapped
  gelu_mul_case(1001);
  check(gk_context_destroy(ctx), "gk_context_destroy");
  printf("%d failure(s)\n", failures);
  return failures ? 1 : 0;
}
