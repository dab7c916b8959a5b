// gk_layer_norm: nn.LayerNorm (biased variance) for the SigLIP vision tower.
#include <vector>

#include "cpu.h"

GK_API gk_status gk_layer_norm(gk_stream* s, const float* x, const void* weight, const void* bias,
                               int32_t param_dtype, float eps, int32_t rows, int32_t dim, float* y) {
  GK_TRY(gk::validate_stream(s, "gk_layer_norm"));
  GK_TRY(gk::validate_layer_norm(x, weight, param_dtype, eps, rows, dim, y));
  GK_CPU_RECORD(s, gk_layer_norm(s, x, weight, bias, param_dtype, eps, rows, dim, y));
  std::vector<float> w(dim), b(dim, 0.0f);
  gk::cpu::load_row_f32(weight, param_dtype, 0, dim, w.data());
  if (bias) gk::cpu::load_row_f32(bias, param_dtype, 0, dim, b.data());
#pragma omp parallel for schedule(static) if ((int64_t)rows * dim > 65536)
  for (int32_t r = 0; r < rows; ++r) {
    const float* xr = x + (int64_t)r * dim;
    float* yr = y + (int64_t)r * dim;
    // Two passes (mean, then squared deviations) avoid the cancellation of E[x^2] - E[x]^2.
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int32_t j = 0; j < dim; ++j) sum += xr[j];
    const float mean = sum / (float)dim;
    float var = 0.0f;
#pragma omp simd reduction(+ : var)
    for (int32_t j = 0; j < dim; ++j) var += (xr[j] - mean) * (xr[j] - mean);
    const float inv = 1.0f / std::sqrt(var / (float)dim + eps);
    for (int32_t j = 0; j < dim; ++j) yr[j] = (xr[j] - mean) * inv * w[j] + b[j];
  }
  return GK_OK;
}
