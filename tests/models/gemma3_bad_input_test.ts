/** A Gemma 3 checkpoint that is damaged or does not fit: a clear typed error, and no device memory left behind. */
import assert from "node:assert/strict";
import { Backend } from "../../src/runtime/backend.ts";
import { loadGemma3Text } from "../../src/models/gemma3/load.ts";
import { ConfigError } from "../../src/errors.ts";
import { WeightsError } from "../../src/errors.ts";
import { FormatError } from "../../src/errors.ts";
import { ContextLengthError } from "../../src/errors.ts";
import { thrown } from "../helpers.ts";

const FIXTURE = new URL("../fixtures/gemma3-text-mixed/", import.meta.url).pathname;

async function copyFixture(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "gemmakit-bad-" });
  for (const f of ["config.json", "model.safetensors"]) await Deno.copyFile(`${FIXTURE}${f}`, `${dir}/${f}`);
  return dir;
}

Deno.test("a truncated safetensors file is a FormatError naming the file", async () => {
  const dir = await copyFixture();
  try {
    const size = (await Deno.stat(`${dir}/model.safetensors`)).size;
    await Deno.truncate(`${dir}/model.safetensors`, Math.floor(size / 2));
    using backend = Backend.open({ backend: "cpu" });
    const err = thrown(() => loadGemma3Text(backend, dir), FormatError);
    assert.match(err.message, /model\.safetensors/);
    assert.equal(backend.memoryStats().inUse, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("weights that do not fit the config: every mismatch in one WeightsError", async () => {
  const dir = await copyFixture();
  try {
    const config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ ...config, intermediate_size: 128 }));
    using backend = Backend.open({ backend: "cpu" });
    const err = thrown(() => loadGemma3Text(backend, dir), WeightsError);
    // gate, up and down of all 8 layers.
    assert.equal(err.problems.length, 24, err.message);
    assert.match(
      err.message,
      /model\.layers\.0\.mlp\.gate_proj\.weight.*\[160, 64\].*\[128, 64\]|\[128, 64\].*\[160, 64\]/,
    );
    assert.equal(backend.memoryStats().inUse, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an unknown config value is a ConfigError before any weight is read", async () => {
  const dir = await copyFixture();
  try {
    const config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify({ ...config, hidden_activation: "swish" }));
    using backend = Backend.open({ backend: "cpu" });
    assert.throws(() => loadGemma3Text(backend, dir), ConfigError);
    await Deno.writeTextFile(`${dir}/config.json`, "{ not json");
    assert.throws(() => loadGemma3Text(backend, dir), /not valid JSON/);
    assert.equal(backend.memoryStats().inUse, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a prompt over the context says how long it was and what the limit is", () => {
  using backend = Backend.open({ backend: "cpu" });
  const model = loadGemma3Text(backend, FIXTURE, { maxContext: 16 });
  try {
    const err = thrown(() => model.prefill(new Array(17).fill(5)), ContextLengthError);
    assert.deepEqual([err.promptTokens, err.limit], [17, 16]);
    assert.match(err.message, /the prompt is 17 tokens, over the context limit of 16/);
    assert.throws(() => loadGemma3Text(backend, FIXTURE, { maxContext: 5000 }), /max_position_embeddings=1024/);
  } finally {
    model.dispose();
  }
});
