import { ShapeError } from "../errors.ts";
import { DTYPE_CODE, FLOAT_DTYPES, isQuantized, MATMUL_WEIGHT_DTYPES, QUANT_BLOCKS } from "../runtime/dtype.ts";
import { Tensor } from "../runtime/tensor.ts";
import { expectDType, expectRank, expectSameBackend, expectShape, fmt, output, run } from "./check.ts";

/** The kernels keep the running top-k on chip; no released model comes near it (Gemma 4 26B-A4B: 8). */
export const MOE_MAX_TOP_K = 64;

function checkTopK(op: string, topK: number, experts: number): void {
  if (!Number.isInteger(topK) || topK < 1 || topK > Math.min(experts, MOE_MAX_TOP_K)) {
    throw new ShapeError(op, `topK=${topK} must be an integer in [1, min(experts=${experts}, ${MOE_MAX_TOP_K})]`);
  }
}

/**
 * The router of Gemma 4's MoE layers, after its projection: `p = softmax(logits)` in f32 over the experts, the
 * `topK` largest (descending; equal values to the lower expert id — torch.topk leaves ties unordered), their weights divided by
 * their sum and multiplied by `perExpertScale[id]`. logits f32 [tokens, experts] → ids i32 and weights f32
 * [tokens, topK], left on the device for {@link moeExperts}.
 */
export function moeRoute(
  logits: Tensor,
  perExpertScale: Tensor | null,
  topK: number,
  out?: { ids: Tensor; weights: Tensor },
): { ids: Tensor; weights: Tensor } {
  const op = "moeRoute";
  const backend = expectSameBackend(op, {
    logits,
    perExpertScale: perExpertScale ?? undefined,
    ids: out?.ids,
    weights: out?.weights,
  });
  expectDType(op, "logits", logits, ["f32"]);
  expectRank(op, "logits", logits, 2);
  const [tokens, experts] = logits.shape;
  checkTopK(op, topK, experts);
  if (perExpertScale) {
    expectDType(op, "perExpertScale", perExpertScale, FLOAT_DTYPES);
    expectShape(op, "perExpertScale", perExpertScale, [experts]);
  }
  const ids = output(op, backend, [tokens, topK], "i32", out?.ids);
  let weights: Tensor;
  try {
    weights = output(op, backend, [tokens, topK], "f32", out?.weights);
  } catch (e) {
    if (!out) ids.dispose();
    throw e;
  }
  try {
    run(op, backend, weights, !out, () =>
      backend.symbols.gk_moe_route(
        backend.stream,
        logits.pointer,
        perExpertScale?.pointer ?? null,
        DTYPE_CODE[perExpertScale?.dtype ?? "f32"],
        tokens,
        experts,
        topK,
        ids.pointer,
        weights.pointer,
      ));
  } catch (e) {
    if (!out) ids.dispose();
    throw e;
  }
  return { ids, weights };
}

/** Bytes of scratch {@link moeExperts} needs (the formula of gemmakit.h's gk_moe_experts). */
export function moeScratchBytes(tokens: number, topK: number, experts: number, hidden: number, inter: number): number {
  const pairs = tokens * topK;
  return 4 * (pairs * (2 * hidden + 3 * inter) + 4 * (experts + pairs) + 256);
}

/**
 * The experts of Gemma 4's MoE layers (transformers' Gemma 4 text experts): for each token and each of its `topK` chosen experts e, `down[e] · (gelu_tanh(g) ⊙ u)` with
 * `[g; u] = gateUp[e] · x`, scaled by the router weight and summed in ascending expert id (transformers' order).
 * x f32 [tokens, hidden]; ids i32 / weights f32 [tokens, topK] from {@link moeRoute}; gateUp [E, 2·inter, hidden],
 * down [E, hidden, inter], each in f32/f16/bf16 or a GGUF quantization, the two types independent (llama-quantize's
 * mixes often store down in another type from gateUp; a quantized tensor's rows must be whole blocks). `scratch`
 * is any tensor of at least {@link moeScratchBytes} bytes (a Workspace buffer, so a recorded decode step allocates
 * nothing); without it a temporary is made and freed. Returns out f32 [tokens, hidden].
 */
export function moeExperts(
  x: Tensor,
  ids: Tensor,
  weights: Tensor,
  gateUp: Tensor,
  down: Tensor,
  scratch?: Tensor | null,
  out?: Tensor,
): Tensor {
  const op = "moeExperts";
  const backend = expectSameBackend(op, { x, ids, weights, gateUp, down, scratch: scratch ?? undefined, out });
  expectDType(op, "x", x, ["f32"]);
  expectRank(op, "x", x, 2);
  expectDType(op, "ids", ids, ["i32"]);
  expectDType(op, "weights", weights, ["f32"]);
  expectDType(op, "gateUp", gateUp, MATMUL_WEIGHT_DTYPES);
  expectRank(op, "gateUp", gateUp, 3);
  expectDType(op, "down", down, MATMUL_WEIGHT_DTYPES);
  const [tokens, hidden] = x.shape;
  const [experts, twoInter] = gateUp.shape;
  const inter = twoInter / 2;
  if (!Number.isInteger(inter) || gateUp.shape[2] !== hidden) {
    throw new ShapeError(op, `gateUp is ${fmt(gateUp)}; expected [experts, 2·inter, hidden=${hidden}]`);
  }
  expectShape(op, "down", down, [experts, hidden, inter]);
  const topK = ids.shape.at(-1)!;
  checkTopK(op, topK, experts);
  expectShape(op, "ids", ids, [tokens, topK]);
  expectShape(op, "weights", weights, [tokens, topK]);
  // Each tensor's rows are whole blocks of its own type: gateUp's are hidden long, down's inter.
  for (const [name, t, cols] of [["gateUp", gateUp, hidden], ["down", down, inter]] as const) {
    if (isQuantized(t.dtype) && cols % QUANT_BLOCKS[t.dtype].elems !== 0) {
      throw new ShapeError(
        op,
        `${name} is ${fmt(t)}: its rows (${cols}) must be whole ${QUANT_BLOCKS[t.dtype].elems}-element blocks`,
      );
    }
  }
  const need = moeScratchBytes(tokens, topK, experts, hidden, inter);
  if (scratch && scratch.byteLength < need) {
    throw new ShapeError(op, `scratch is ${fmt(scratch)} (${scratch.byteLength} bytes); it needs ${need} bytes`);
  }
  const tmp = scratch ? undefined : Tensor.empty(backend, [Math.ceil(need / 4)], "f32");
  const sc = scratch ?? tmp!;
  try {
    const y = output(op, backend, [tokens, hidden], "f32", out);
    if (out && Deno.UnsafePointer.equals(out.pointer, x.pointer)) throw new ShapeError(op, "out must not be x");
    return run(op, backend, y, !out, () =>
      backend.symbols.gk_moe_experts(
        backend.stream,
        x.pointer,
        ids.pointer,
        weights.pointer,
        tokens,
        topK,
        gateUp.pointer,
        DTYPE_CODE[gateUp.dtype],
        down.pointer,
        DTYPE_CODE[down.dtype],
        experts,
        hidden,
        inter,
        sc.pointer,
        BigInt(sc.byteLength),
        y.pointer,
      ));
  } finally {
    // On CUDA freeing waits for the device, so the temporary outlives the kernels that use it.
    tmp?.dispose();
  }
}
