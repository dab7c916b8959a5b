/**
 * Gemma 4's mixture-of-experts branch (src/models/gemma4/moe.ts) against transformers' Gemma4TextRouter and
 * Gemma4TextExperts on random weights (tests/fixtures/gemma4-moe-block, written by make_gemma4_moe_block.py):
 * the whole prompt at once, each token alone (the decode shape), and a recorded decode program replayed over new
 * inputs (the expert choice is re-read on the device). Every test runs on the CPU library and, when a GPU answers,
 * on the CUDA library (otherwise reported as ignored, with the reason printed once).
 */
import assert from "node:assert/strict";
import { GemmakitError, ShapeError } from "../../src/errors.ts";
import { openSafetensors } from "../../src/formats/safetensors.ts";
import { type Gemma4MoeConfig, gemma4MoeExperts, type Gemma4MoeWeights } from "../../src/models/gemma4/moe.ts";
import * as ops from "../../src/ops/mod.ts";
import { Backend } from "../../src/runtime/backend.ts";
import { DecodeProgram } from "../../src/runtime/program.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import { Workspace } from "../../src/runtime/workspace.ts";
import { cudaOrSkip, thrown } from "../helpers.ts";

const DIR = new URL("../fixtures/gemma4-moe-block/", import.meta.url);
const sizes = JSON.parse(Deno.readTextFileSync(new URL("config.json", DIR)));
const cfg: Gemma4MoeConfig = {
  topK: sizes.top_k_experts,
  eps: sizes.rms_norm_eps,
  hiddenSize: sizes.hidden_size,
  numExperts: sizes.num_experts,
  moeIntermediateSize: sizes.moe_intermediate_size,
};
const T: number = sizes.tokens, H = cfg.hiddenSize, K = cfg.topK;
/** transformers' f32 result vs ours: a different summation order, nothing more. */
const TOL = 1e-5;

const cpu = Backend.open({ backend: "cpu" });
const { cuda } = cudaOrSkip("CUDA Gemma 4 MoE block tests");

function test(name: string, fn: (backend: Backend) => void) {
  Deno.test({ name: `[cpu] ${name}`, fn: () => checkNoLeak(cpu, fn) });
  Deno.test({
    name: `[cuda] ${name}${cuda ? "" : " (skipped: no CUDA device)"}`,
    ignore: !cuda,
    fn: () => checkNoLeak(cuda!, fn),
  });
}

function checkNoLeak(backend: Backend, fn: (backend: Backend) => void) {
  const before = backend.memoryStats().inUse;
  fn(backend);
  assert.equal(backend.memoryStats().inUse, before, "the test leaked device memory");
}

/** The fixture's tensors on `backend`, disposed with the returned object. */
function load(backend: Backend) {
  using st = openSafetensors(new URL("block.safetensors", DIR).pathname);
  const host = (name: string) => st.loadTensor(cpu, name);
  const read = (name: string) => {
    using t = host(name);
    return t.toArray();
  };
  const made: Tensor[] = [];
  const dev = (name: string) => {
    const t = st.loadTensor(backend, name);
    made.push(t);
    return t;
  };
  const weights: Gemma4MoeWeights = {
    routerProj: dev("router.proj.weight"),
    routerScale: dev("router.scale"),
    perExpertScale: dev("router.per_expert_scale"),
    gateUp: dev("experts.gate_up_proj"),
    down: dev("experts.down_proj"),
  };
  return {
    weights,
    residual: read("residual") as Float32Array,
    expertsInput: read("experts_input") as Float32Array,
    ids: read("top_k_index") as Int32Array,
    topKWeights: read("top_k_weights") as Float32Array,
    out: read("out") as Float32Array,
    [Symbol.dispose]: () => made.forEach((t) => t.dispose()),
  };
}

function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string) {
  assert.equal(got.length, want.length, `${what}: length`);
  let worst = 0, at = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= worst)) [worst, at] = [d, i];
  }
  assert.ok(worst <= tol, `${what}: |diff| ${worst.toExponential(2)} at ${at} (${got[at]} vs ${want[at]}) > ${tol}`);
}

test("the prompt at once matches transformers (ids exactly, weights and output within 1e-5)", (backend) => {
  using f = load(backend);
  using ws = new Workspace(backend);
  using r = Tensor.fromArray(backend, f.residual, [T, H]);
  using x = Tensor.fromArray(backend, f.expertsInput, [T, H]);
  const out = gemma4MoeExperts(r, x, f.weights, cfg, ws);
  assert.deepEqual(Array.from(ws.get("moe_ids", [T, K], "i32").toArray()), Array.from(f.ids));
  assertClose(ws.get("moe_weights", [T, K]).toArray(), f.topKWeights, 1e-6, "top_k_weights");
  assertClose(out.toArray(), f.out, TOL, "experts output");
  // The reference is not trivially small: a broken kernel cannot pass by returning zeros.
  assert.ok(Math.max(...f.out.map(Math.abs)) > 0.1);
});

test("each token alone (the decode shape) and without a workspace matches transformers", (backend) => {
  using f = load(backend);
  for (let t = 0; t < T; t++) {
    using r = Tensor.fromArray(backend, f.residual.subarray(t * H, (t + 1) * H), [1, H]);
    using x = Tensor.fromArray(backend, f.expertsInput.subarray(t * H, (t + 1) * H), [1, H]);
    using out = gemma4MoeExperts(r, x, f.weights, cfg);
    assertClose(out.toArray(), f.out.subarray(t * H, (t + 1) * H), TOL, `token ${t}`);
  }
});

test("a recorded decode step re-routes every replay from the inputs on the device", (backend) => {
  using f = load(backend);
  using ws = new Workspace(backend);
  using r = Tensor.fromArray(backend, f.residual.subarray(0, H), [1, H]);
  using x = Tensor.fromArray(backend, f.expertsInput.subarray(0, H), [1, H]);
  gemma4MoeExperts(r, x, f.weights, cfg, ws); // first call allocates the workspace buffers
  let out!: Tensor;
  using program = DecodeProgram.record(backend, () => {
    out = gemma4MoeExperts(r, x, f.weights, cfg, ws);
  });
  // Tokens 3 and 5 choose other experts than token 0 (the fixture's top_k_index): a replay that kept the
  // recorded choice would be off by far more than the tolerance.
  for (const t of [3, 5, 0]) {
    r.write(f.residual.subarray(t * H, (t + 1) * H));
    x.write(f.expertsInput.subarray(t * H, (t + 1) * H));
    program.run(1);
    assertClose(out.toArray(), f.out.subarray(t * H, (t + 1) * H), TOL, `replay of token ${t}`);
    assert.deepEqual(
      Array.from(ws.get("moe_ids", [1, K], "i32").toArray()),
      Array.from(f.ids.subarray(t * K, t * K + K)),
    );
  }
});

test("bad shapes and expert ids are typed errors", (backend) => {
  using f = load(backend);
  using r = Tensor.fromArray(backend, f.residual, [T, H]);
  const e = thrown(() => gemma4MoeExperts(r, r, f.weights, { ...cfg, moeIntermediateSize: 25 }), ShapeError);
  assert.match(e.message, /gateUp is \[16, 48, 64\], expected \[16, 50, 64\]/);
  thrown(() => ops.moeRoute(r, null, cfg.numExperts + 100), ShapeError);
  using ids = Tensor.fromArray(backend, Array.from({ length: T * K }, (_, i) => i % K), [T, K], "i32");
  using w = Tensor.zeros(backend, [T, K]);
  thrown(() => ops.moeExperts(r, ids, w, f.weights.down, f.weights.down), ShapeError);
  using small = Tensor.empty(backend, [4]);
  thrown(() => ops.moeExperts(r, ids, w, f.weights.gateUp, f.weights.down, small), ShapeError);
  if (backend.kind === "cpu") {
    // CUDA reads ids on the device and skips a bad one (no host round trip in a recorded step); the CPU says so.
    ids.write(Array.from({ length: T * K }, (_, i) => (i === 5 ? cfg.numExperts : i % K)));
    const err = thrown(() => ops.moeExperts(r, ids, w, f.weights.gateUp, f.weights.down), GemmakitError);
    assert.match(err.message, /ids\[5\] = 16 is outside \[0, 16\)/);
  }
});
