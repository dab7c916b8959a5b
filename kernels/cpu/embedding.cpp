// gk_embedding: token rows gathered from the table and scaled (Gemma multiplies by sqrt(hidden)).
// A quantized table's rows are decoded block by block (kernels/cpu/quant.h; the CPU library's 16-row layouts in
// kernels/cpu/repack.cpp).
#include "cpu.h"
#include "quant.h"

GK_API gk_status gk_embedding(gk_stream* s, const void* table, int32_t table_dtype, int32_t vocab, int32_t dim,
                              const int32_t* ids, int32_t n, float scale, float* out) {
  GK_TRY(gk::validate_stream(s, "gk_embedding"));
  if (gk::cpu::is_x16_dtype(table_dtype)) {  // the CPU library's own layouts (kernels/cpu/repack.cpp)
    GK_TRY(gk::validate_embedding(table, gk::cpu::x16_file_dtype(table_dtype), vocab, dim, ids, n, out));
    GK_TRY(gk::cpu::validate_x16("gk_embedding", table_dtype, vocab, dim));
  } else {
    GK_TRY(gk::validate_embedding(table, table_dtype, vocab, dim, ids, n, out));
  }
  GK_CPU_RECORD(s, gk_embedding(s, table, table_dtype, vocab, dim, ids, n, scale, out));
  // ids are host-readable here, so a bad id is an error rather than the zero row CUDA writes.
  for (int32_t i = 0; i < n; ++i) {
    GK_REQUIRE(ids[i] >= 0 && ids[i] < vocab, "gk_embedding: id %d at index %d is outside [0, %d)", ids[i], i, vocab);
  }
#pragma omp parallel for schedule(static) if ((int64_t)n * dim > 65536)
  for (int32_t i = 0; i < n; ++i) {
    float* row = out + (int64_t)i * dim;
    if (gk::cpu::is_x16_dtype(table_dtype)) {
      gk::cpu::x16_row(table, table_dtype, dim, ids[i], row);
    } else if (gk::is_quant_dtype(table_dtype)) {
      gk::quant::decode_range(table, table_dtype, (int64_t)ids[i] * dim, dim, row);
    } else {
      gk::cpu::load_row_f32(table, table_dtype, (int64_t)ids[i] * dim, dim, row);
    }
    for (int32_t j = 0; j < dim; ++j) row[j] *= scale;
  }
  return GK_OK;
}
