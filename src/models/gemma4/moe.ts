/**
 * Gemma 4's mixture-of-experts branch (26B-A4B), as transformers computes it, composed from src/ops.
 * ref: transformers models/gemma4/modeling_gemma4.py — Gemma4TextRouter, Gemma4TextExperts, and the
 * `enable_moe_block` part of Gemma4TextDecoderLayer.forward:
 *
 *     _, top_k_weights, top_k_index = self.router(residual)
 *     hidden_states_2 = self.experts(self.pre_feedforward_layernorm_2(residual), top_k_index, top_k_weights)
 *
 * gemma4MoeExperts is that pair of calls (the caller applies pre_feedforward_layernorm_2 before and
 * post_feedforward_layernorm_2 after). The expert choice never leaves the device, so the decode step that
 * contains it can be recorded once and replayed.
 * @module
 */
import { ShapeError } from "../../errors.ts";
import { linear, moeExperts, moeRoute, moeScratchBytes, rmsNorm, scale } from "../../ops/mod.ts";
import { Tensor } from "../../runtime/tensor.ts";
import { Workspace } from "../../runtime/workspace.ts";

/** One layer's router and experts, named after transformers' parameters (`router.*`, `experts.*`). */
export interface Gemma4MoeWeights {
  /** router.proj.weight [E, H] */
  routerProj: Tensor;
  /** router.scale [H] */
  routerScale: Tensor;
  /** router.per_expert_scale [E] */
  perExpertScale: Tensor;
  /** experts.gate_up_proj [E, 2I, H]: rows 0..I are the gate, I..2I the up projection. */
  gateUp: Tensor;
  /** experts.down_proj [E, H, I] */
  down: Tensor;
}

export interface Gemma4MoeConfig {
  /** top_k_experts */
  topK: number;
  /** rms_norm_eps (the router's weightless norm) */
  eps: number;
  hiddenSize: number;
  numExperts: number;
  moeIntermediateSize: number;
}

/**
 * Prompt tokens routed per kernel call: bounds the scratch (≈ 29 MB at 26B-A4B's sizes) while each chunk still
 * gives every expert a few rows to amortise its weights over.
 */
const TOKENS_PER_CALL = 256;

function checkWeights(w: Gemma4MoeWeights, c: Gemma4MoeConfig): void {
  const [E, H, I] = [c.numExperts, c.hiddenSize, c.moeIntermediateSize];
  const want: [keyof Gemma4MoeWeights, number[]][] = [
    ["routerProj", [E, H]],
    ["routerScale", [H]],
    ["perExpertScale", [E]],
    ["gateUp", [E, 2 * I, H]],
    ["down", [E, H, I]],
  ];
  const bad = want.filter(([k, s]) => w[k].shape.length !== s.length || w[k].shape.some((d, i) => d !== s[i]));
  if (bad.length) {
    const list = bad.map(([k, s]) => `${k} is [${w[k].shape.join(", ")}], expected [${s.join(", ")}]`).join("; ");
    throw new ShapeError("gemma4MoeExperts", list);
  }
}

/**
 * Gemma4TextRouter(residual) feeding Gemma4TextExperts(expertsInput): f32 [T, H], before
 * post_feedforward_layernorm_2.
 *
 * - residual: the layer's residual stream r (f32 [T, H]); the router reads it, not the normed input.
 * - expertsInput: pre_feedforward_layernorm_2(r) (f32 [T, H]).
 * - ws: the forward pass's Workspace. With one, all buffers (the result included) are its `moe_*` buffers, so a
 *   decode step allocates only on its first call and can be recorded; without one, the result is a fresh tensor
 *   the caller disposes.
 */
export function gemma4MoeExperts(
  residual: Tensor,
  expertsInput: Tensor,
  w: Gemma4MoeWeights,
  cfg: Gemma4MoeConfig,
  ws?: Workspace,
): Tensor {
  checkWeights(w, cfg);
  const [T, H] = residual.shape;
  if (residual.shape.length !== 2 || H !== cfg.hiddenSize) {
    throw new ShapeError(
      "gemma4MoeExperts",
      `residual is [${residual.shape.join(", ")}], expected [T, ${cfg.hiddenSize}]`,
    );
  }
  if (expertsInput.shape.length !== 2 || expertsInput.shape[0] !== T || expertsInput.shape[1] !== H) {
    throw new ShapeError(
      "gemma4MoeExperts",
      `expertsInput is [${expertsInput.shape.join(", ")}], expected [${T}, ${H}] like residual`,
    );
  }
  const [E, I, K] = [cfg.numExperts, cfg.moeIntermediateSize, cfg.topK];
  const local = ws ? undefined : new Workspace(residual.backend);
  const scratchWs = ws ?? local!;
  const out = ws ? ws.get("moe_out", [T, H]) : Tensor.empty(residual.backend, [T, H]);
  try {
    const C = Math.min(T, TOKENS_PER_CALL);
    const z = scratchWs.get("moe_router_z", [C, H]);
    const logits = scratchWs.get("moe_router_logits", [C, E]);
    const ids = scratchWs.get("moe_ids", [C, K], "i32");
    const weights = scratchWs.get("moe_weights", [C, K]);
    const scratch = scratchWs.get("moe_scratch", [Math.ceil(moeScratchBytes(C, K, E, H, I) / 4)]);
    for (let t0 = 0; t0 < T; t0 += C) {
      const n = Math.min(C, T - t0);
      const view = (t: Tensor) => n === C ? t : t.rows(0, n);
      // Gemma4TextRouter: norm (no weight), then * scale * hidden_size**-0.5, proj, softmax, top-k, renormalise,
      // * per_expert_scale. rmsNorm "scale" computes (x · rsqrt) · scale, the order of the two multiplies there.
      const zn = rmsNorm(residual.rows(t0, n), w.routerScale, { mode: "scale", eps: cfg.eps }, view(z));
      scale(zn, H ** -0.5, zn);
      const lg = linear(zn, w.routerProj, null, view(logits));
      const route = moeRoute(lg, w.perExpertScale, K, { ids: view(ids), weights: view(weights) });
      // Gemma4TextExperts on this chunk's rows.
      moeExperts(expertsInput.rows(t0, n), route.ids, route.weights, w.gateUp, w.down, scratch, out.rows(t0, n));
    }
    return out;
  } catch (e) {
    if (!ws) out.dispose();
    throw e;
  } finally {
    local?.dispose();
  }
}
