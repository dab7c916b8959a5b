/**
 * The bounded body reader, each bound on its own and deterministically (the attack test in hardening_test.ts sees
 * them together, where which one a trickling body hits first depends on the machine's timing).
 */
import assert from "node:assert/strict";
import { BodyBudget, readJsonBody } from "../../examples/server/body.ts";
import { ApiError } from "../../examples/server/errors.ts";

/** A request whose body yields `chunks` (after `delayMs` each) and then ends, or never ends with `endless`. */
function request(chunks: string[], options: { delayMs?: number; endless?: boolean; length?: number } = {}): Request {
  const enc = new TextEncoder();
  let i = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(c) {
      if (options.delayMs) await new Promise((r) => setTimeout(r, options.delayMs));
      if (i < chunks.length) c.enqueue(enc.encode(chunks[i++]));
      else if (!options.endless) c.close();
      else await new Promise(() => {}); // hold the connection open
    },
  });
  const headers = options.length === undefined ? undefined : { "content-length": String(options.length) };
  return new Request("http://x/", { method: "POST", body, headers });
}

async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (e) {
    assert.ok(e instanceof ApiError, String(e));
    return e.status;
  }
}

Deno.test("readJsonBody: a body within every bound parses, and gives its bytes back to the budget", async () => {
  const budget = new BodyBudget(1000);
  assert.deepEqual(await readJsonBody(request(['{"a":', ' [1, "é"]}']), { maxBytes: 100, timeoutMs: 1000, budget }), {
    a: [1, "é"],
  });
  assert.equal(budget.held, 0);
});

Deno.test("readJsonBody: over its size (declared or sent) 413, past the deadline 408, over the budget 503", async () => {
  const budget = new BodyBudget(1000);
  assert.equal(
    await status(readJsonBody(request(["{}"], { length: 5000 }), { maxBytes: 100, timeoutMs: 1000, budget })),
    413,
  );
  assert.equal(
    await status(readJsonBody(request(["x".repeat(60), "y".repeat(60)]), { maxBytes: 100, timeoutMs: 1000, budget })),
    413,
  );
  assert.equal(
    await status(readJsonBody(request(["{"], { endless: true }), { maxBytes: 100, timeoutMs: 200, budget })),
    408,
  );
  // Another request holds 950 of the 1000 bytes: this one's 100 do not fit.
  assert.ok(budget.take(950));
  assert.equal(
    await status(readJsonBody(request(["x".repeat(100)]), { maxBytes: 1000, timeoutMs: 1000, budget })),
    503,
  );
  budget.give(950);
  assert.equal(budget.held, 0, "refused requests give their bytes back");
  assert.equal(await status(readJsonBody(request(["{nope"]), { maxBytes: 100, timeoutMs: 1000, budget })), 400);
});
