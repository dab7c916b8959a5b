/**
 * Gemma 4 checkpoints that contradict their config: a clear typed error naming the tensors, before anything
 * reaches the device, and no device memory left behind.
 */
import assert from "node:assert/strict";
import { Backend } from "../../src/runtime/backend.ts";
import { loadGemma4Text } from "../../src/models/gemma4/load.ts";
import { ConfigError } from "../../src/models/gemma4/config.ts";
import { WeightsError } from "../../src/errors.ts";
import { thrown } from "../helpers.ts";

const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;

interface Entry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/**
 * Copies a fixture to a temporary folder, letting `edit` change the safetensors header (entries keep pointing
 * into the original data; `extra` bytes are appended after it for new entries).
 */
async function editedFixture(
  name: string,
  edit: (header: Record<string, Entry>, dataBytes: number) => Uint8Array | void,
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "gemmakit-g4-bad-" });
  await Deno.copyFile(`${FIXTURES}${name}/config.json`, `${dir}/config.json`);
  const bytes = await Deno.readFile(`${FIXTURES}${name}/model.safetensors`);
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  const data = bytes.subarray(8 + n);
  const extra = edit(header, data.length) ?? new Uint8Array();
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length + extra.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  out.set(extra, 8 + json.length + data.length);
  await Deno.writeFile(`${dir}/model.safetensors`, out);
  return dir;
}

async function withDir(dir: Promise<string>, fn: (dir: string) => void) {
  const d = await dir;
  try {
    fn(d);
  } finally {
    await Deno.remove(d, { recursive: true });
  }
}

Deno.test("a KV-shared layer that carries k/v weights is a WeightsError naming them", async () => {
  // gemma4-text-e: layers 4..6 share; give layer 5 (sliding, 1 kv head × 16) a k_proj and v_proj.
  await withDir(
    editedFixture("gemma4-text-e", (h, end) => {
      const bytes = 16 * 32 * 4;
      h["model.layers.5.self_attn.k_proj.weight"] = { dtype: "F32", shape: [16, 32], data_offsets: [end, end + bytes] };
      h["model.layers.5.self_attn.v_proj.weight"] = {
        dtype: "F32",
        shape: [16, 32],
        data_offsets: [end + bytes, end + 2 * bytes],
      };
      return new Uint8Array(2 * bytes);
    }),
    (dir) => {
      using backend = Backend.open({ backend: "cpu" });
      const err = thrown(() => loadGemma4Text(backend, dir), WeightsError);
      assert.equal(err.problems.length, 2, err.message);
      assert.match(err.message, /model\.layers\.5\.self_attn\.k_proj\.weight: present, but layer 5 is KV-shared/);
      assert.match(err.message, /layers\.5\.self_attn\.v_proj/);
      assert.equal(backend.memoryStats().inUse, 0);
    },
  );
});

Deno.test("a MoE checkpoint with an expert missing is a WeightsError naming the expert tensors", async () => {
  // Layer 3 holds 7 of its 8 experts.
  await withDir(
    editedFixture("gemma4-text-moe", (h) => {
      for (const w of ["gate_up_proj", "down_proj"]) {
        const e = h[`model.layers.3.experts.${w}`];
        const [start, stop] = e.data_offsets;
        e.shape = [7, ...e.shape.slice(1)];
        e.data_offsets = [start, start + ((stop - start) / 8) * 7];
      }
    }),
    (dir) => {
      using backend = Backend.open({ backend: "cpu" });
      const err = thrown(() => loadGemma4Text(backend, dir), WeightsError);
      assert.equal(err.problems.length, 2, err.message);
      assert.match(err.message, /model\.layers\.3\.experts\.gate_up_proj: shape \[7, 32, 32\], expected \[8, 32, 32\]/);
      assert.match(err.message, /model\.layers\.3\.experts\.down_proj: shape \[7, 32, 16\], expected \[8, 32, 16\]/);
      assert.equal(backend.memoryStats().inUse, 0);
    },
  );
});

Deno.test("a k_eq_v full layer that carries a v_proj is a WeightsError", async () => {
  await withDir(
    editedFixture("gemma4-text-moe", (h, end) => {
      const bytes = 32 * 32 * 4;
      h["model.layers.2.self_attn.v_proj.weight"] = { dtype: "F32", shape: [32, 32], data_offsets: [end, end + bytes] };
      return new Uint8Array(bytes);
    }),
    (dir) => {
      using backend = Backend.open({ backend: "cpu" });
      const err = thrown(() => loadGemma4Text(backend, dir), WeightsError);
      assert.match(err.message, /layers\.2\.self_attn\.v_proj\.weight: present, but layer 2 uses attention_k_eq_v/);
      assert.equal(backend.memoryStats().inUse, 0);
    },
  );
});

Deno.test("a Gemma 4 config missing a required field fails before any weight is read", async () => {
  const dir = await Deno.makeTempDir({ prefix: "gemmakit-g4-bad-" });
  try {
    const { num_attention_heads: _, ...config } = JSON.parse(
      await Deno.readTextFile(`${FIXTURES}gemma4-text-e/config.json`),
    );
    await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config));
    using backend = Backend.open({ backend: "cpu" });
    const err = thrown(() => loadGemma4Text(backend, dir), ConfigError);
    assert.match(err.message, /num_attention_heads is required/);
    assert.equal(backend.memoryStats().inUse, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
