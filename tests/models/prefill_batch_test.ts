/**
 * Multi-sequence prefill (prefillBatch): several prompts of different lengths in one forward, each over its own KV
 * cache, some from a cached prefix (one after its ring wrapped, one a single token), give each prompt the logits
 * its own prefillFrom gives, and leave caches from which the next decode steps give the same logits — for Gemma 3
 * and for Gemma 4's per-layer inputs with KV-shared layers, k_eq_v and MoE (sliding windows of 8-12 tokens, so
 * the sliding layers' rings wrap).
 */
import assert from "node:assert/strict";
import { Backend } from "../../src/runtime/backend.ts";
import type { KvCache } from "../../src/runtime/kv_cache.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import { Workspace } from "../../src/runtime/workspace.ts";
import { ShapeError } from "../../src/errors.ts";
import { loadGemma3Text } from "../../src/models/gemma3/load.ts";
import { loadGemma4Text } from "../../src/models/gemma4/load.ts";
import type { PrefillPart } from "../../src/models/common/step.ts";

const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;
/** Of the logits' scale (their largest magnitude). */
const TOLERANCE = 1e-4;

/** What the test needs of a text model. */
interface TextLM {
  readonly vocabSize: number;
  createCache(): KvCache;
  withCache<T>(cache: KvCache, f: () => T): T;
  prefillFrom(ids: ArrayLike<number>, start: number): Tensor;
  prefillBatch(parts: readonly PrefillPart[]): Tensor;
  decodeStep(token: Tensor, position: Tensor, ws: Workspace, logits: Tensor): Tensor;
}

/** Deterministic ids in [3, vocab) (no BOS, pad or EOS among them). */
function randomIds(n: number, vocab: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return 3 + (s % (vocab - 3));
  });
}

const argmax = (x: ArrayLike<number>) => {
  let at = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[at]) at = i;
  return at;
};

function expectClose(label: string, got: Float32Array, want: Float32Array) {
  assert.equal(got.length, want.length, `${label}: length`);
  let diff = 0, scale = 1;
  for (let i = 0; i < want.length; i++) {
    diff = Math.max(diff, Math.abs(got[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  assert.ok(!Number.isNaN(diff) && diff <= TOLERANCE * scale, `${label}: |Δlogit| ${diff.toExponential(2)}`);
  assert.equal(argmax(got), argmax(want), `${label}: argmax`);
}

/** A cache holding positions 0..start-1 of `ids` (a cached prefix), or nothing. */
function cacheWith(lm: TextLM, ids: number[], start: number): KvCache {
  const cache = lm.createCache();
  if (start > 0) lm.withCache(cache, () => lm.prefillFrom(ids.slice(0, start), 0)).dispose();
  return cache;
}

/** Greedy decode steps over `cache` after the prompt `ids`, starting from `first`: each step's logits. */
function decodeAfter(lm: TextLM, backend: Backend, cache: KvCache, ids: number[], first: number, steps: number) {
  using ws = new Workspace(backend);
  using token = Tensor.fromArray(backend, Int32Array.of(first), [1], "i32");
  using position = Tensor.fromArray(backend, Int32Array.of(ids.length), [1], "i32");
  using logits = Tensor.empty(backend, [1, lm.vocabSize]);
  const out: Float32Array[] = [];
  for (let i = 0; i < steps; i++) {
    const row = lm.withCache(cache, () => lm.decodeStep(token, position, ws, logits)).toArray() as Float32Array;
    out.push(row);
    token.write(Int32Array.of(argmax(row)));
    position.write(Int32Array.of(ids.length + i + 1));
  }
  return out;
}

/** Prompt lengths and where each starts: fresh, over a prefix, past a wrapped ring, a one-token follow-up. */
const SHAPES = [
  { length: 9, start: 0 },
  { length: 30, start: 0 },
  { length: 40, start: 25 },
  { length: 110, start: 70 },
  { length: 20, start: 19 },
];

function checkBatch(name: string, lm: TextLM, backend: Backend) {
  const prompts = SHAPES.map((p, j) => ({ ...p, ids: randomIds(p.length, lm.vocabSize, 11 + j) }));
  const alone = prompts.map((p) => cacheWith(lm, p.ids, p.start));
  const together = prompts.map((p) => cacheWith(lm, p.ids, p.start));
  try {
    const want = prompts.map((p, j) => {
      using t = lm.withCache(alone[j], () => lm.prefillFrom(p.ids, p.start));
      return t.toArray() as Float32Array;
    });
    // Every subset order the scheduler could hand in: all of them, and two in reverse order.
    using all = lm.prefillBatch(prompts.map((p, j) => ({ ids: p.ids, start: p.start, cache: together[j] })));
    assert.deepEqual(all.shape, [prompts.length, lm.vocabSize]);
    const got = all.toArray() as Float32Array;
    prompts.forEach((_, j) => {
      expectClose(`${name}: prompt ${j}`, got.subarray(j * lm.vocabSize, (j + 1) * lm.vocabSize), want[j]);
    });
    // The caches it left behind: greedy decode steps read them as they read the ones prefilled alone.
    prompts.forEach((p, j) => {
      const first = argmax(want[j]);
      const a = decodeAfter(lm, backend, alone[j], p.ids, first, 3);
      const b = decodeAfter(lm, backend, together[j], p.ids, first, 3);
      a.forEach((row, i) => expectClose(`${name}: prompt ${j}, decode step ${i}`, b[i], row));
    });
  } finally {
    for (const c of [...alone, ...together]) c.dispose();
  }
  // Two prompts, the longer first: the segments' order and sizes are free.
  const [x, y] = [prompts[3], prompts[0]];
  const caches = [cacheWith(lm, x.ids, x.start), cacheWith(lm, y.ids, y.start)];
  const refs = [cacheWith(lm, x.ids, x.start), cacheWith(lm, y.ids, y.start)];
  try {
    using pair = lm.prefillBatch([
      { ids: x.ids, start: x.start, cache: caches[0] },
      { ids: y.ids, start: y.start, cache: caches[1] },
    ]);
    const got = pair.toArray() as Float32Array;
    [x, y].forEach((p, j) => {
      using t = lm.withCache(refs[j], () => lm.prefillFrom(p.ids, p.start));
      expectClose(
        `${name}: pair ${j}`,
        got.subarray(j * lm.vocabSize, (j + 1) * lm.vocabSize),
        t.toArray() as Float32Array,
      );
    });
  } finally {
    for (const c of [...caches, ...refs]) c.dispose();
  }
}

const TEXT = [
  ["gemma3-text-mixed", 3],
  ["gemma3-text-softcap", 3],
  ["gemma4-text-e", 4],
  ["gemma4-text-k-eq-v", 4],
  ["gemma4-text-moe", 4],
] as const;

for (const [fixture, family] of TEXT) {
  Deno.test(`prefillBatch: ${fixture} — each prompt's logits and cache equal its prefill alone`, () => {
    using backend = Backend.open({ backend: "cpu" });
    const dir = FIXTURES + fixture;
    using lm = family === 3
      ? loadGemma3Text(backend, dir, { maxContext: 160 })
      : loadGemma4Text(backend, dir, { maxContext: 160 });
    checkBatch(fixture, lm, backend);
  });
}

Deno.test("prefillBatch: empty input, an empty prompt or a bad start is a ShapeError", () => {
  using backend = Backend.open({ backend: "cpu" });
  using lm = loadGemma3Text(backend, FIXTURES + "gemma3-text-mixed", { maxContext: 64 });
  using cache = lm.createCache();
  assert.throws(() => lm.prefillBatch([]), ShapeError);
  assert.throws(() => lm.prefillBatch([{ ids: [5, 6], start: 0, cache }, { ids: [], start: 0, cache }]), ShapeError);
  assert.throws(() => lm.prefillBatch([{ ids: [5, 6], start: 2, cache }]), ShapeError);
});
