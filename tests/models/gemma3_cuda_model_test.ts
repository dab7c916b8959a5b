/**
 * Gemma 3 on CUDA against the CPU, at model level (tests/fixtures/gemma3-text-mixed):
 *
 * - Generation through the public API: the prefill sample, then decode steps recorded once into a program
 *   (a CUDA graph with gk_sample in it) and replayed by runAsync from a worker thread in chunks. Greedy tokens on
 *   CUDA must equal the CPU's (and transformers'); seeded sampling (top-k 50, top-p 0.95) must equal the CPU's too,
 *   since both samplers draw the same token from the same logits bit for bit, and the fixture's logits agree between
 *   the backends to ~1e-5 (gemma3_parity_test): a draw moves only if it lands that close to a cumulative boundary.
 * - The tensor-core GEMM inside a model: the fixture's weights cast to bf16 (the format of real checkpoints), prefill
 *   of 40 and 80 tokens (m > 1 takes the WMMA kernel for bf16 weights: the 64-row tile up to m = 64, the 128-row tile
 *   above; kernels/cuda/linear.cu), logits of every position on CUDA against the CPU's on the same weights.
 *   The CPU multiplies f32 activations by the bf16 weights; the tensor cores round the activations to bf16 first.
 *   That is one bf16 rounding of one GEMM operand, the same perturbation as rounding the weights from f32 to bf16,
 *   which the CPU measures here (f32 vs bf16 fixture): CUDA may differ from the CPU by at most 4x that measured
 *   effect (NMSE, and max|Δ| / rms per position). A wrong tile, row or column misses it by orders of magnitude.
 *
 * The CUDA tests skip without a GPU (a failure under GEMMAKIT_REQUIRE_CUDA=1); the CPU half of the bf16 test runs
 * everywhere.
 */
import assert from "node:assert/strict";
import { Backend } from "../../src/runtime/backend.ts";
import { loadModel } from "../../src/models/load.ts";
import { loadGemma3Text } from "../../src/models/gemma3/load.ts";
import { f32ToBf16 } from "../../src/runtime/dtype.ts";
import { cudaOrSkip } from "../helpers.ts";

const DIR = new URL("../fixtures/gemma3-text-mixed/", import.meta.url).pathname;
const expected = JSON.parse(Deno.readTextFileSync(`${DIR}expected.json`));
const STOP_IDS = [1, 106];

const { cuda, skip } = cudaOrSkip("CUDA Gemma 3 model tests");
cuda?.dispose();
const cudaName = (name: string) => `[cuda] ${name}${skip ? " (skipped: no CUDA device)" : ""}`;

function untilStop(ids: number[]): number[] {
  const at = ids.findIndex((id) => STOP_IDS.includes(id));
  return at < 0 ? ids : ids.slice(0, at + 1);
}

Deno.test({
  name: cudaName("gemma3 generation through the recorded decode program (graph + sampler) equals the CPU's"),
  ignore: skip !== "",
  async fn() {
    using onCpu = await loadModel(DIR, { backend: "cpu", maxContext: 128 });
    using onCuda = await loadModel(DIR, { backend: "cuda", maxContext: 128 });
    assert.equal(onCuda.backend.kind, "cuda");
    // chunk 1: one replay per call; 5 and 16: runAsync chunks of several replays back to back.
    for (const chunkSize of [1, 5, 16]) {
      const opts = { temperature: 0, maxTokens: 32, chunkSize };
      const want = await onCpu.generate({ messages: expected.chat.messages }, opts);
      const got = await onCuda.generate({ messages: expected.chat.messages }, opts);
      assert.deepEqual(got.tokens, want.tokens, `greedy chat, chunk ${chunkSize}: CUDA vs CPU`);
      assert.deepEqual(got.tokens, untilStop(expected.chat.greedy.ids), `greedy chat, chunk ${chunkSize}`);
    }
    const plain = await onCuda.generate(expected.plain.text, { temperature: 0, maxTokens: 32, chunkSize: 7 });
    assert.deepEqual(plain.tokens, untilStop(expected.plain.greedy.ids), "greedy plain text");
    for (const seed of [7, 1234]) {
      const opts = { temperature: 1, topK: 50, topP: 0.95, maxTokens: 24, seed, chunkSize: 6 };
      const want = await onCpu.generate("The lamp", opts);
      const got = await onCuda.generate("The lamp", opts);
      assert.deepEqual(got.tokens, want.tokens, `sampled, seed ${seed}: CUDA vs CPU`);
    }
  },
});

/** Copies the fixture to a temporary directory with every F32 tensor of model.safetensors cast to BF16. */
function bf16Fixture(): string {
  const dir = Deno.makeTempDirSync({ prefix: "gemmakit-bf16-" });
  for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"]) {
    Deno.copyFileSync(`${DIR}${f}`, `${dir}/${f}`);
  }
  const src = Deno.readFileSync(`${DIR}model.safetensors`);
  const view = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(src.subarray(8, 8 + headerLen)));
  const dataStart = 8 + headerLen;
  const out: Record<string, unknown> = {};
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (
    const [name, t] of Object.entries(header) as [string, { dtype: string; shape: number[]; data_offsets: number[] }][]
  ) {
    if (name === "__metadata__") {
      out[name] = t;
      continue;
    }
    const stored = src.slice(dataStart + t.data_offsets[0], dataStart + t.data_offsets[1]);
    const cast = t.dtype === "F32";
    const bytes = cast ? new Uint8Array(f32ToBf16(new Float32Array(stored.buffer)).buffer) : stored;
    const dtype = cast ? "BF16" : t.dtype;
    out[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  let text = JSON.stringify(out);
  text += " ".repeat((8 - (text.length % 8)) % 8);
  const json = new TextEncoder().encode(text);
  const file = new Uint8Array(8 + json.length + offset);
  new DataView(file.buffer).setBigUint64(0, BigInt(json.length), true);
  file.set(json, 8);
  chunks.reduce((at, c) => (file.set(c, at), at + c.length), 8 + json.length);
  Deno.writeFileSync(`${dir}/model.safetensors`, file);
  return dir;
}

/** A deterministic prompt of n ids in [3, vocab). */
const prompt = (n: number, vocab: number) => Array.from({ length: n }, (_, i) => 3 + ((i * 7919 + 13) % (vocab - 3)));

/** Logits of every position of each prompt, on one backend, from the checkpoint in dir. */
function prefillLogits(kind: "cpu" | "cuda", dir: string, lengths: number[]): Float32Array[] {
  using backend = Backend.open({ backend: kind });
  const model = loadGemma3Text(backend, dir, { maxContext: 128 });
  try {
    return lengths.map((n) => {
      using all = model.prefill(prompt(n, model.config.text.vocabSize), "all");
      return all.toArray() as Float32Array;
    });
  } finally {
    model.dispose();
  }
}

/** NMSE of got against want, and the worst max|Δ| / rms(want) over the rows of width `vocab`. */
function distance(got: Float32Array, want: Float32Array, vocab: number): { nmse: number; rowRel: number } {
  assert.equal(got.length, want.length);
  let err = 0, norm = 0, rowRel = 0;
  for (let r = 0; r < want.length / vocab; r++) {
    let sq = 0, worst = 0;
    for (let i = r * vocab; i < (r + 1) * vocab; i++) {
      assert.ok(Number.isFinite(got[i]), `logit ${i} is ${got[i]}`);
      const d = got[i] - want[i];
      err += d * d;
      norm += want[i] * want[i];
      sq += want[i] * want[i];
      worst = Math.max(worst, Math.abs(d));
    }
    rowRel = Math.max(rowRel, worst / Math.sqrt(sq / vocab));
  }
  return { nmse: err / norm, rowRel };
}

const LENGTHS = [40, 80];
const VOCAB = 990;

/** The effect of one bf16 rounding of one operand of every GEMM, as the CPU sees it: f32 vs bf16 weights. */
function bf16Effect(bf16Dir: string): { nmse: number; rowRel: number }[] {
  const f32 = prefillLogits("cpu", DIR, LENGTHS);
  const bf16 = prefillLogits("cpu", bf16Dir, LENGTHS);
  return LENGTHS.map((_, i) => distance(bf16[i], f32[i], VOCAB));
}

Deno.test("[cpu] gemma3 with bf16 weights: loads from a cast checkpoint and stays close to f32", () => {
  const dir = bf16Fixture();
  try {
    for (const [i, e] of bf16Effect(dir).entries()) {
      // Nonzero: the cast happened (the CUDA test below scales its tolerance by this); small: the bf16 model is
      // still the same model (measured: NMSE 2-3e-4, max|Δ|/rms 0.08-0.09 on this tiny random checkpoint).
      assert.ok(e.nmse > 0 && e.nmse < 1e-3, `${LENGTHS[i]} tokens: NMSE ${e.nmse.toExponential(2)}`);
      assert.ok(e.rowRel > 0 && e.rowRel < 0.25, `${LENGTHS[i]} tokens: max|Δ|/rms ${e.rowRel.toExponential(2)}`);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test({
  name: cudaName("gemma3 with bf16 weights: tensor-core prefill logits (m = 40, 80) match the CPU's"),
  ignore: skip !== "",
  fn() {
    const dir = bf16Fixture();
    try {
      const effect = bf16Effect(dir);
      const want = prefillLogits("cpu", dir, LENGTHS);
      const got = prefillLogits("cuda", dir, LENGTHS);
      for (const [i, n] of LENGTHS.entries()) {
        const d = distance(got[i], want[i], VOCAB), e = effect[i];
        const msg =
          `${n} tokens: CUDA vs CPU NMSE ${d.nmse.toExponential(2)}, max|Δ|/rms ${d.rowRel.toExponential(2)}; ` +
          `bf16 rounding effect NMSE ${e.nmse.toExponential(2)}, max|Δ|/rms ${e.rowRel.toExponential(2)}`;
        // 4x in NMSE is 2x in rms error; a floor for when the rounding effect is tiny.
        assert.ok(d.nmse <= Math.max(4 * e.nmse, 1e-7), msg);
        assert.ok(d.rowRel <= Math.max(4 * e.rowRel, 1e-3), msg);
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
