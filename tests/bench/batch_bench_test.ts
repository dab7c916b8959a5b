/** The figures of `deno task bench --streams` (batch_bench.ts) from made-up arrival times. */
import assert from "node:assert/strict";
import { figures, prompts, quantile, tokenGaps, tokensAfterFirst } from "./batch_bench.ts";

Deno.test("tokenGaps: one piece per event gives the plain gaps", () => {
  assert.deepEqual(tokenGaps([100, 110, 130, 160]), [10, 20, 30]);
  assert.deepEqual(tokenGaps([5]), []);
  assert.deepEqual(tokenGaps([]), []);
});

Deno.test("tokenGaps: a burst of k pieces after a gap g counts as k gaps of g/k", () => {
  // First token at 100; a chunk of 4 at 180 (within 1 ms of each other); a chunk of 2 at 220.
  const gaps = tokenGaps([100, 180, 180.2, 180.4, 180.5, 220, 220.1]);
  assert.equal(gaps.length, 6);
  for (const g of gaps.slice(0, 4)) assert.ok(Math.abs(g - 80.5 / 4) < 1e-9, `${g}`);
  for (const g of gaps.slice(4)) assert.ok(Math.abs(g - (220.1 - 180.5) / 2) < 1e-9, `${g}`);
});

Deno.test("quantile interpolates between order statistics", () => {
  assert.equal(quantile([3, 1, 2], 0.5), 2);
  assert.equal(quantile([1, 2, 3, 4], 0.5), 2.5);
  assert.ok(Math.abs(quantile([0, 10], 0.9) - 9) < 1e-12);
  assert.ok(Number.isNaN(quantile([], 0.5)));
});

Deno.test("figures: aggregate tok/s over the wall time from sending to the last token; TTFT from sending", () => {
  const f = figures(1000, [
    { arrivals: [1100, 1200, 1300], tokens: 3 },
    { arrivals: [1500, 1600, 2000], tokens: 3 },
  ]);
  assert.equal(f.tokens, 6);
  assert.equal(f.aggregateTps, 6 / 1); // 6 tokens in the second from 1000 to 2000
  assert.equal(f.ttftMedianMs, (100 + 500) / 2);
  assert.equal(f.itlMedianMs, 100); // gaps 100, 100, 100, 400
  assert.ok(Math.abs(f.itlP90Ms - 310) < 1e-9);
});

Deno.test("figures: decode tok/s counts the tokens after each first, from the first stream's first token", () => {
  const f = figures(1000, [
    { arrivals: [1100, 1200, 1300], tokens: 3 },
    { arrivals: [1500, 1600, 2000], tokens: 3 },
  ]);
  // 2 + 2 tokens after the firsts, in the 0.9 s from 1100 (the first first token) to 2000: the second stream's
  // prefill (1100-1500) stays inside the window, so the figure never exceeds the steady rate.
  assert.ok(Math.abs(f.decodeTps - 4 / 0.9) < 1e-9, `${f.decodeTps}`);
  assert.ok(Number.isNaN(figures(0, [{ arrivals: [5], tokens: 1 }]).decodeTps)); // nothing after the first
});

Deno.test("tokensAfterFirst: a first burst (a decode chunk delivered together) is not decode after the first", () => {
  assert.equal(tokensAfterFirst({ arrivals: [100, 200, 300], tokens: 3 }), 2);
  assert.equal(tokensAfterFirst({ arrivals: [100, 100.3, 100.6, 200], tokens: 4 }), 1);
  // Pieces that carry more than one token each: the tokens in proportion to the pieces.
  assert.equal(tokensAfterFirst({ arrivals: [100, 200], tokens: 4 }), 2);
  assert.equal(tokensAfterFirst({ arrivals: [], tokens: 0 }), 0);
});

Deno.test("prompts: one per stream, all distinct", () => {
  const p = prompts(16);
  assert.equal(new Set(p).size, 16);
});
