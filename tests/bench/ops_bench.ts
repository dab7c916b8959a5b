/**
 * `deno task bench`: the matrix-vector product in GB/s of weights read, the matrix product and prefill
 * attention (vision towers' bidirectional, a causal text prompt) in GFLOP/s, on Gemma-sized shapes, for each
 * backend this machine has. Prints a markdown table.
 *
 *   --gpu           CUDA only (fails when there is no GPU)
 *   --cpu           CPU only
 *   --quick         fewer repetitions
 *   --attention     only the prefill attention rows
 *   --quant         only the quantized-weight rows (Gemma 3 270M Q4_K_M GGUF's projections at 1-64 rows of x, as
 *                   stored and in the layout the models load them in)
 *   --sample        only the sampler rows (gk_sample over a 262,144-token vocabulary: greedy, temperature alone,
 *                   Gemma's default top-k 64 / top-p 0.95)
 *   --json PATH     also write the rows as JSON
 */
import { Backend } from "../../src/runtime/backend.ts";
import { type DType, QUANT_BLOCKS, QUANT_DTYPES, type QuantDType } from "../../src/runtime/dtype.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import { linear } from "../../src/ops/linear.ts";
import { repackForBackend } from "../../src/ops/repack.ts";
import { attentionPrefill } from "../../src/ops/attention.ts";
import { DECODE_STATE, sample, type SamplingParams } from "../../src/ops/sample.ts";
import { openLibrary } from "../../src/ffi/library.ts";

interface Shape {
  label: string;
  m: number;
  n: number;
  k: number;
}

// Gemma 3 270M (hidden 640, MLP 2048), 1B (hidden 1152, MLP 6912), and the 262,144-row lm_head of 4B.
const GEMV: Shape[] = [
  { label: "270M mlp up (2048×640)", m: 1, n: 2048, k: 640 },
  { label: "270M mlp down (640×2048)", m: 1, n: 640, k: 2048 },
  { label: "1B mlp up (6912×1152)", m: 1, n: 6912, k: 1152 },
  { label: "1B mlp down (1152×6912)", m: 1, n: 1152, k: 6912 },
  { label: "4B lm_head (262144×2560)", m: 1, n: 262144, k: 2560 },
];
const GEMM: Shape[] = [
  { label: "270M mlp up, 128 tokens", m: 128, n: 2048, k: 640 },
  { label: "1B mlp up, 128 tokens", m: 128, n: 6912, k: 1152 },
  { label: "1B mlp up, 512 tokens", m: 512, n: 6912, k: 1152 },
  { label: "1B mlp down, 512 tokens", m: 512, n: 1152, k: 6912 },
];

// The GGUF projections of Gemma 3 270M Q4_K_M (q/gate/up Q5_0, k/v Q8_0, o Q4_K, down Q6_K) at one token and at the
// short prefills where decoding W costs about as much as the multiply: each as stored and, where the backend has one,
// in the layout the models load it in (src/ops/repack.ts; on the CPU library the 16-row layouts, whose integer kernel
// takes up to 15-40 rows of x before f32 panels and strips: kernels/cpu/linear.cpp's int_rows_max).
const QUANT_PROJ: (Omit<Shape, "m"> & { dtype: QuantDType })[] = [
  { label: "270M q_proj (1024×640)", n: 1024, k: 640, dtype: "q5_0" },
  { label: "270M mlp up (2048×640)", n: 2048, k: 640, dtype: "q5_0" },
  { label: "270M k_proj (256×640)", n: 256, k: 640, dtype: "q8_0" },
  { label: "270M o_proj (640×1024)", n: 640, k: 1024, dtype: "q4_k" },
  { label: "270M mlp down (640×2048)", n: 640, k: 2048, dtype: "q6_k" },
];
const QUANT_M = [1, 16, 24, 32, 40, 48, 64];

interface AttentionShape {
  label: string;
  qLen: number;
  kvLen: number;
  qHeads: number;
  kvHeads: number;
  headDim: number;
  causal: boolean;
}
// Prefill attention: the vision towers' bidirectional self-attention (SigLIP of Gemma 3 at 896 px, Gemma 4's
// E2B tower at its largest image) and a causal text prompt with Gemma 4 E2B's heads.
const ATTENTION: AttentionShape[] = [
  {
    label: "SigLIP 4096 patches, 16×72, bidir",
    qLen: 4096,
    kvLen: 4096,
    qHeads: 16,
    kvHeads: 16,
    headDim: 72,
    causal: false,
  },
  {
    label: "E2B tower 2520 patches, 12×64, bidir",
    qLen: 2520,
    kvLen: 2520,
    qHeads: 12,
    kvHeads: 12,
    headDim: 64,
    causal: false,
  },
  {
    label: "text 512 tokens, 8/1×256, causal",
    qLen: 512,
    kvLen: 512,
    qHeads: 8,
    kvHeads: 1,
    headDim: 256,
    causal: true,
  },
];

/** FLOPs of a prefill attention: Q·Kᵀ and P·V over the visible (query, key) pairs, 2 each per head dim. */
function attentionFlops(s: AttentionShape): number {
  const pairs = s.causal ? (s.qLen * (s.qLen + 1)) / 2 + s.qLen * (s.kvLen - s.qLen) : s.qLen * s.kvLen;
  return 4 * pairs * s.qHeads * s.headDim;
}

const args = Deno.args;
const quick = args.includes("--quick");
const attentionOnly = args.includes("--attention");
const quantOnly = args.includes("--quant");
const sampleOnly = args.includes("--sample");
const jsonPath = args.includes("--json") ? args[args.indexOf("--json") + 1] : undefined;

interface Row {
  backend: string;
  device: string;
  kind: "gemv" | "gemm" | "qgemm" | "qgemv" | "attention" | "sample";
  shape: string;
  dtype: DType;
  ms: number;
  figure: number;
  unit: "GB/s" | "GFLOP/s" | "M logits/s";
}

/** Median time of `fn` in ms, after warm-up, over at least `minReps` runs and ~`budgetMs`. */
function time(backend: Backend, fn: () => void, budgetMs: number, minReps: number): number {
  fn();
  backend.synchronize();
  const times: number[] = [];
  const start = performance.now();
  while (times.length < minReps || (performance.now() - start < budgetMs && times.length < 200)) {
    const t0 = performance.now();
    fn();
    backend.synchronize();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

function benchBackend(backend: Backend): Row[] {
  const rows: Row[] = [];
  const budget = quick ? 200 : 1000;
  const dtypes: DType[] = ["bf16", "f32"];
  if (!attentionOnly && !quantOnly) rows.push(...benchSample(backend, budget));
  if (sampleOnly) return rows;
  if (!attentionOnly) rows.push(...benchQuant(backend, budget));
  if (quantOnly) return rows;
  for (const [kind, shapes] of attentionOnly ? [] : [["gemv", GEMV], ["gemm", GEMM]] as const) {
    for (const shape of shapes) {
      for (const dtype of dtypes) {
        // Contents do not matter for timing: fill with a byte pattern instead of uploading random data.
        using w = Tensor.empty(backend, [shape.n, shape.k], dtype);
        backend.fill(w.pointer, 0x3c, w.byteLength);
        using x = Tensor.empty(backend, [shape.m, shape.k]);
        backend.fill(x.pointer, 0x3c, x.byteLength);
        using y = Tensor.empty(backend, [shape.m, shape.n]);
        const ms = time(backend, () => linear(x, w, null, y), budget, quick ? 2 : 3);
        const figure = kind === "gemv" ? w.byteLength / (ms * 1e6) : (2 * shape.m * shape.n * shape.k) / (ms * 1e6);
        const row: Row = {
          backend: backend.kind,
          device: backend.deviceName,
          kind,
          shape: shape.label,
          dtype,
          ms,
          figure,
          unit: kind === "gemv" ? "GB/s" : "GFLOP/s",
        };
        rows.push(row);
        console.log(
          `| ${row.backend} | ${row.kind} | ${row.shape} | ${row.dtype} | ${row.ms.toFixed(3)} | ${
            row.figure.toFixed(1)
          } ${row.unit} |`,
        );
      }
    }
  }
  for (const shape of ATTENTION) rows.push(benchAttention(backend, shape, budget));
  return rows;
}

// One draw from a Gemma vocabulary's logits (gk_sample, temperature 1 so that the in-place scaling leaves them as
// they were): greedy, every token weighed, and Gemma's generation_config default.
const SAMPLE_PARAMS: { label: string; params: SamplingParams }[] = [
  { label: "greedy", params: { temperature: 0 } },
  { label: "temperature 1", params: { temperature: 1, seed: 7 } },
  { label: "top-k 64, top-p 0.95", params: { temperature: 1, topK: 64, topP: 0.95, seed: 7 } },
];

function benchSample(backend: Backend, budget: number): Row[] {
  const vocab = 262144;
  // Seeded logits in ±10, so the draw has a distribution to walk (not a byte pattern's constant).
  let seed = 1;
  const logits = Float32Array.from({ length: vocab }, () => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return (seed / 2 ** 32 - 0.5) * 20;
  });
  using x = Tensor.fromArray(backend, logits, [vocab]);
  using state = Tensor.empty(backend, [DECODE_STATE.fields], "i32");
  using history = Tensor.empty(backend, [16], "i32");
  const fresh = new Int32Array(DECODE_STATE.fields);
  return SAMPLE_PARAMS.map(({ label, params }) => {
    // The state is reset before each draw (a draw appends to the history and stops once it is full).
    const ms = time(
      backend,
      () => {
        state.write(fresh);
        sample(x, params, state, history);
      },
      budget,
      quick ? 3 : 10,
    );
    const row: Row = {
      backend: backend.kind,
      device: backend.deviceName,
      kind: "sample",
      shape: `vocab ${vocab}, ${label}`,
      dtype: "f32",
      ms,
      figure: vocab / (ms * 1e3),
      unit: "M logits/s",
    };
    console.log(
      `| ${row.backend} | ${row.kind} | ${row.shape} | — | ${ms.toFixed(3)} | ${row.figure.toFixed(0)} ${row.unit} |`,
    );
    return row;
  });
}

function benchQuant(backend: Backend, budget: number): Row[] {
  const rows: Row[] = [];
  for (const proj of QUANT_PROJ) {
    // 0x3c bytes make every block scale an f16 of about 1.06 and every code small: finite sums.
    using stored = Tensor.empty(backend, [proj.n, proj.k], proj.dtype);
    backend.fill(stored.pointer, 0x3c, stored.byteLength);
    using copy = Tensor.empty(backend, [proj.n, proj.k], proj.dtype);
    backend.copy(copy.pointer, stored.pointer, stored.byteLength);
    const repacked = repackForBackend(copy); // (in place: a view of `copy`, or `copy` itself where there is no layout)
    for (const w of repacked === copy ? [stored] : [stored, repacked]) {
      for (const m of QUANT_M) {
        using x = Tensor.empty(backend, [m, proj.k]);
        backend.fill(x.pointer, 0x3c, x.byteLength);
        using y = Tensor.empty(backend, [m, proj.n]);
        const ms = time(backend, () => linear(x, w, null, y), budget, quick ? 2 : 3);
        const row: Row = {
          backend: backend.kind,
          device: backend.deviceName,
          kind: "qgemm",
          shape: `${proj.label}, ${m} token${m === 1 ? "" : "s"}`,
          dtype: w.dtype,
          ms,
          figure: (2 * m * proj.n * proj.k) / (ms * 1e6),
          unit: "GFLOP/s",
        };
        rows.push(row);
        console.log(
          `| ${row.backend} | ${row.kind} | ${row.shape} | ${row.dtype} | ${row.ms.toFixed(3)} | ${
            row.figure.toFixed(1)
          } ${row.unit} |`,
        );
      }
    }
  }
  // Decode (one token) through every quantized format: the weight bandwidth each block decoder sustains, on a
  // 2048×2048 matrix (a whole number of blocks of every format).
  for (const dtype of QUANT_DTYPES) {
    const n = 2048, k = 2048;
    using w = Tensor.empty(backend, [n, k], dtype);
    backend.fill(w.pointer, 0x3c, w.byteLength);
    using x = Tensor.empty(backend, [1, k]);
    backend.fill(x.pointer, 0x3c, x.byteLength);
    using y = Tensor.empty(backend, [1, n]);
    const ms = time(backend, () => linear(x, w, null, y), budget, quick ? 2 : 3);
    const row: Row = {
      backend: backend.kind,
      device: backend.deviceName,
      kind: "qgemv",
      shape: `decode ${n}×${k}`,
      dtype,
      ms,
      figure: (n * k / QUANT_BLOCKS[dtype].elems * QUANT_BLOCKS[dtype].bytes) / (ms * 1e6),
      unit: "GB/s",
    };
    rows.push(row);
    console.log(
      `| ${row.backend} | ${row.kind} | ${row.shape} | ${row.dtype} | ${ms.toFixed(3)} | ${
        row.figure.toFixed(1)
      } GB/s |`,
    );
  }
  return rows;
}

function benchAttention(backend: Backend, s: AttentionShape, budget: number): Row {
  // Random scores, so the online softmax's running maximum moves as it would on real activations.
  const random = (n: number) => Float32Array.from({ length: n }, () => Math.random() * 2 - 1);
  using q = Tensor.fromArray(backend, random(s.qLen * s.qHeads * s.headDim), [s.qLen, s.qHeads, s.headDim]);
  using k = Tensor.fromArray(backend, random(s.kvLen * s.kvHeads * s.headDim), [s.kvLen, s.kvHeads, s.headDim]);
  using v = Tensor.fromArray(backend, random(s.kvLen * s.kvHeads * s.headDim), [s.kvLen, s.kvHeads, s.headDim]);
  using out = Tensor.empty(backend, [s.qLen, s.qHeads, s.headDim]);
  const options = { scale: 1 / Math.sqrt(s.headDim), causal: s.causal };
  const ms = time(backend, () => attentionPrefill(q, k, v, options, out), budget, quick ? 1 : 3);
  const row: Row = {
    backend: backend.kind,
    device: backend.deviceName,
    kind: "attention",
    shape: s.label,
    dtype: "f32",
    ms,
    figure: attentionFlops(s) / (ms * 1e6),
    unit: "GFLOP/s",
  };
  console.log(
    `| ${row.backend} | ${row.kind} | ${row.shape} | f32 | ${row.ms.toFixed(3)} | ${row.figure.toFixed(1)} GFLOP/s |`,
  );
  return row;
}

const wanted: ("cpu" | "cuda")[] = args.includes("--gpu")
  ? ["cuda"]
  : args.includes("--cpu")
  ? ["cpu"]
  : ["cpu", "cuda"];
const all: Row[] = [];
console.log(`gemmakit op benchmarks, ${new Date().toISOString().slice(0, 10)}`);
for (const kind of wanted) {
  try {
    openLibrary(kind);
  } catch (e) {
    const why = e instanceof Error ? e.message.split("\n")[0] : String(e);
    if (args.includes("--gpu")) {
      console.error(`--gpu: ${why}`);
      Deno.exit(1);
    }
    console.log(`\n${kind}: skipped (${why})`);
    continue;
  }
  using backend = Backend.open({ backend: kind });
  console.log(`\n${kind}: ${backend.deviceName}\n`);
  console.log("| backend | op | shape | weights | ms (median) | throughput |");
  console.log("| --- | --- | --- | --- | ---: | ---: |");
  all.push(...benchBackend(backend));
}
if (jsonPath) Deno.writeTextFileSync(jsonPath, JSON.stringify(all, null, 2));
