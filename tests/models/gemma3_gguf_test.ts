import assert from "node:assert/strict";
import { join } from "node:path";
import { Backend } from "../../src/runtime/backend.ts";
import { encode, MATMUL_WEIGHT_DTYPES, QUANT_BLOCKS } from "../../src/runtime/dtype.ts";
import { FormatError } from "../../src/errors.ts";
import { type GgufFile, openGguf } from "../../src/formats/gguf.ts";
import { ConfigError } from "../../src/errors.ts";
import {
  GEMMA3_GGUF_FACTS,
  gemma3ConfigFromGguf,
  gemma3HfName,
  ggufWeightSource,
} from "../../src/models/gemma3/gguf.ts";
import { gemma3TextWeights } from "../../src/models/gemma3/weights.ts";
import { checkWeights, loadWeights, type WeightSpec } from "../../src/models/common/weights.ts";
import { thrown } from "../helpers.ts";
import { realGguf270m } from "./real_gguf.ts";

// A minimal GGUF writer (scalars, string arrays, f32/f16/q8_0 tensors); tests/formats/gguf_test.ts has the full one.
type Meta = [key: string, type: "u32" | "f32" | "string" | "strings" | "u32s", value: unknown];
interface TensorSpec {
  name: string;
  ne: number[];
  type: number;
  data: Uint8Array;
}
const F32 = 0, F16 = 1, Q8_0 = 8;

function writeGguf(path: string, meta: Meta[], tensors: TensorSpec[]): void {
  const parts: number[] = [];
  const raw = (b: Uint8Array) => parts.push(...b);
  const num = (size: number, set: (d: DataView) => void) => {
    const b = new Uint8Array(size);
    set(new DataView(b.buffer));
    raw(b);
  };
  const u32 = (v: number) => num(4, (d) => d.setUint32(0, v, true));
  const u64 = (v: number) => num(8, (d) => d.setBigUint64(0, BigInt(v), true));
  const str = (s: string) => {
    const b = new TextEncoder().encode(s);
    u64(b.length);
    raw(b);
  };
  raw(new TextEncoder().encode("GGUF"));
  u32(3);
  u64(tensors.length);
  u64(meta.length);
  for (const [key, type, value] of meta) {
    str(key);
    if (type === "u32") u32(4), u32(value as number);
    else if (type === "f32") u32(6), num(4, (d) => d.setFloat32(0, value as number, true));
    else if (type === "string") u32(8), str(value as string);
    else if (type === "strings") u32(9), u32(8), u64((value as string[]).length), (value as string[]).forEach(str);
    else u32(9), u32(4), u64((value as number[]).length), (value as number[]).forEach(u32);
  }
  let offset = 0;
  for (const t of tensors) {
    str(t.name);
    u32(t.ne.length);
    t.ne.forEach(u64);
    u32(t.type);
    u64(offset);
    offset += Math.ceil(t.data.length / 32) * 32;
  }
  const pad = () => parts.push(...new Uint8Array((32 - (parts.length % 32)) % 32));
  pad();
  for (const t of tensors) raw(t.data), pad();
  Deno.writeFileSync(path, Uint8Array.from(parts));
}

const floats = (n: number, seed = 1, center = 0) =>
  Array.from({ length: n }, (_, i) => center + Math.sin(seed * 7.3 + i * 1.7) * 0.5);
const q8 = (ne: number[], seed: number) =>
  Uint8Array.from({ length: (ne[0] * ne[1] / 32) * QUANT_BLOCKS.q8_0.bytes }, (_, i) => (i * 31 + seed) & 0xff);

/** A small Gemma 3: hidden 64, 2 heads of 32, 1 kv head, I 128, vocab 96, `layers` layers, window 16. */
const SMALL = { hidden: 64, heads: 2, kvHeads: 1, headDim: 32, inter: 128, vocab: 96 };

function gemma3Meta(layers: number, extra: Meta[] = []): Meta[] {
  return [
    ["general.architecture", "string", "gemma3"],
    ["general.name", "string", "tiny gemma3"],
    ["gemma3.context_length", "u32", 256],
    ["gemma3.embedding_length", "u32", SMALL.hidden],
    ["gemma3.block_count", "u32", layers],
    ["gemma3.feed_forward_length", "u32", SMALL.inter],
    ["gemma3.attention.head_count", "u32", SMALL.heads],
    ["gemma3.attention.layer_norm_rms_epsilon", "f32", 1e-6],
    ["gemma3.attention.key_length", "u32", SMALL.headDim],
    ["gemma3.attention.value_length", "u32", SMALL.headDim],
    ["gemma3.rope.freq_base", "f32", 1e6],
    ["gemma3.attention.sliding_window", "u32", 16],
    ["gemma3.attention.head_count_kv", "u32", SMALL.kvHeads],
    ["tokenizer.ggml.bos_token_id", "u32", 2],
    ["tokenizer.ggml.eos_token_id", "u32", 1],
    ["tokenizer.ggml.padding_token_id", "u32", 0],
    ...extra,
  ];
}

/** Every text tensor of a small Gemma 3, as llama.cpp names and lays them out (ne innermost first). */
function gemma3Tensors(layers: number, withOutput = false): TensorSpec[] {
  const { hidden: H, heads, kvHeads, headDim: hd, inter: I, vocab: V } = SMALL;
  const norm = (name: string, n: number, seed: number): TensorSpec => ({
    name,
    ne: [n],
    type: F32,
    data: encode(floats(n, seed, 1), "f32"), // stored as 1 + w, as the converter writes them
  });
  const f16 = (name: string, ne: number[], seed: number): TensorSpec => ({
    name,
    ne,
    type: F16,
    data: encode(floats(ne[0] * ne[1], seed), "f16"),
  });
  const tensors: TensorSpec[] = [
    norm("output_norm.weight", H, 1),
    { name: "token_embd.weight", ne: [H, V], type: Q8_0, data: q8([H, V], 2) },
  ];
  for (let i = 0; i < layers; i++) {
    const s = 10 * (i + 1);
    tensors.push(
      { name: `blk.${i}.attn_q.weight`, ne: [H, heads * hd], type: Q8_0, data: q8([H, heads * hd], s) },
      f16(`blk.${i}.attn_k.weight`, [H, kvHeads * hd], s + 1),
      f16(`blk.${i}.attn_v.weight`, [H, kvHeads * hd], s + 2),
      { name: `blk.${i}.attn_output.weight`, ne: [heads * hd, H], type: Q8_0, data: q8([heads * hd, H], s + 3) },
      norm(`blk.${i}.attn_q_norm.weight`, hd, s + 4),
      norm(`blk.${i}.attn_k_norm.weight`, hd, s + 5),
      norm(`blk.${i}.attn_norm.weight`, H, s + 6),
      norm(`blk.${i}.post_attention_norm.weight`, H, s + 7),
      norm(`blk.${i}.ffn_norm.weight`, H, s + 8),
      norm(`blk.${i}.post_ffw_norm.weight`, H, s + 9),
      f16(`blk.${i}.ffn_gate.weight`, [H, I], s + 10),
      f16(`blk.${i}.ffn_up.weight`, [H, I], s + 11),
      { name: `blk.${i}.ffn_down.weight`, ne: [I, H], type: Q8_0, data: q8([I, H], s + 12) },
    );
  }
  if (withOutput) tensors.push({ name: "output.weight", ne: [H, V], type: Q8_0, data: q8([H, V], 3) });
  return tensors;
}

function withTempDir(fn: (dir: string) => void): () => void {
  return () => {
    const dir = Deno.makeTempDirSync({ prefix: "gemmakit-g3gguf-" });
    try {
      fn(dir);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  };
}

/** The weight table with quantized dtypes allowed for the matmul/embedding rows (norms stay float). */
const quantRows = (rows: WeightSpec[]): WeightSpec[] =>
  rows.map((r) => /(proj|embed_tokens|lm_head)\.weight$/.test(r.name) ? { ...r, dtypes: MATMUL_WEIGHT_DTYPES } : r);

Deno.test(
  "a small gemma3 GGUF maps to the Gemma 3 config and the HF weight table",
  withTempDir((dir) => {
    const path = join(dir, "tiny.gguf");
    const layers = 7;
    const tensors = gemma3Tensors(layers);
    writeGguf(path, gemma3Meta(layers), tensors);
    using backend = Backend.open({ backend: "cpu" });
    using gguf = openGguf(path);
    const config = gemma3ConfigFromGguf(gguf);
    assert.equal(config.architecture, "causal_lm");
    assert.deepEqual({ ...config.text, layerTypes: undefined, rope: undefined }, {
      vocabSize: 96,
      hiddenSize: 64,
      intermediateSize: 128,
      numHiddenLayers: 7,
      numAttentionHeads: 2,
      numKeyValueHeads: 1,
      headDim: 32,
      rmsNormEps: 1e-6, // the f32 in the file, given back as the decimal the converter wrote
      queryPreAttnScalar: 32, // llama.cpp: 1/sqrt(n_embd_head_k)
      slidingWindow: 16,
      maxPositionEmbeddings: 256,
      finalLogitSoftcapping: null,
      layerTypes: undefined,
      rope: undefined,
      tieWordEmbeddings: true,
      bosTokenId: 2,
      eosTokenIds: [1],
      padTokenId: 0,
    });
    // llama.cpp's set_swa_pattern(6): every 6th layer is global.
    assert.deepEqual(config.layers.map((l) => [l.type, l.window]), [
      ...Array(5).fill(["sliding_attention", 16]),
      ["full_attention", 0],
      ["sliding_attention", 16],
    ]);
    assert.deepEqual(config.text.rope, {
      full_attention: { type: "default", theta: 1e6, factor: 1 },
      sliding_attention: { type: "default", theta: 1e4, factor: 1 },
    });

    const source = ggufWeightSource(gguf, config);
    assert.equal(source.path, path);
    assert.equal(source.normAlreadyOffset, true);
    assert.equal(GEMMA3_GGUF_FACTS.normAlreadyOffset, true);
    assert.equal(source.tensors.length, tensors.length);
    assert.equal(source.ggufName("model.norm.weight"), "output_norm.weight");
    assert.equal(source.ggufName("model.layers.6.mlp.down_proj.weight"), "blk.6.ffn_down.weight");
    const byName = new Map(source.tensors.map((t) => [t.name, t]));
    assert.deepEqual(byName.get("model.embed_tokens.weight"), {
      name: "model.embed_tokens.weight",
      dtype: "q8_0",
      shape: [96, 64],
      bytes: (96 * 64 / 32) * 34,
    });
    assert.deepEqual(byName.get("model.layers.0.self_attn.o_proj.weight")?.shape, [64, 64]);
    assert.deepEqual(byName.get("model.layers.0.mlp.down_proj.weight")?.shape, [64, 128]);
    assert.deepEqual(byName.get("model.layers.0.self_attn.k_proj.weight")?.shape, [32, 64]);

    // The unchanged weight table, with quantized dtypes allowed, matches every row and leaves nothing over.
    const rows = quantRows(gemma3TextWeights(config));
    const { found, unclaimed } = checkWeights(source, rows);
    assert.equal(found.size, rows.length);
    assert.deepEqual(unclaimed, []);
    const weights = loadWeights(backend, source, rows);
    try {
      assert.equal(weights.size, 2 + 13 * layers);
      const raw = (name: string) => gguf.readBytes(name);
      assert.deepEqual(weights.get("model.layers.3.self_attn.q_proj.weight")!.toBytes(), raw("blk.3.attn_q.weight"));
      assert.equal(weights.get("model.layers.3.self_attn.q_proj.weight")!.dtype, "q8_0");
      assert.deepEqual(weights.get("model.layers.3.mlp.up_proj.weight")!.toBytes(), raw("blk.3.ffn_up.weight"));
      assert.deepEqual(
        weights.get("model.layers.5.pre_feedforward_layernorm.weight")!.toBytes(),
        raw("blk.5.ffn_norm.weight"),
      );
      assert.deepEqual(
        weights.get("model.norm.weight")!.toArray(),
        Float32Array.from(floats(64, 1, 1)),
        "norms come as stored (1 + w)",
      );
    } finally {
      for (const t of weights.values()) t.dispose();
    }
    assert.match(thrown(() => source.loadTensor(backend, "blk.0.attn_q.weight"), FormatError).message, /no tensor/);
  }),
);

Deno.test(
  "output.weight unties the head; rope scaling, softcapping and the 27B attention scale map through",
  withTempDir((dir) => {
    const path = join(dir, "untied.gguf");
    writeGguf(
      path,
      gemma3Meta(2, [
        ["gemma3.rope.scaling.type", "string", "linear"],
        ["gemma3.rope.scaling.factor", "f32", 8],
        ["gemma3.final_logit_softcapping", "f32", 30],
        ["tokenizer.ggml.eot_token_id", "u32", 106],
      ]),
      [...gemma3Tensors(2, true), { name: "rope_freqs.weight", ne: [16], type: F32, data: new Uint8Array(64) }],
    );
    using gguf = openGguf(path);
    const config = gemma3ConfigFromGguf(gguf);
    assert.equal(config.text.tieWordEmbeddings, false);
    assert.equal(config.text.finalLogitSoftcapping, 30);
    assert.deepEqual(config.text.eosTokenIds, [1, 106]);
    assert.deepEqual(config.text.rope, {
      full_attention: { type: "linear", theta: 1e6, factor: 8 },
      sliding_attention: { type: "default", theta: 1e4, factor: 1 }, // llama.cpp: rope_freq_scale_train_swa = 1
    });
    const source = ggufWeightSource(gguf, config);
    const rows = quantRows(gemma3TextWeights(config));
    const { found, unclaimed } = checkWeights(source, rows);
    assert.equal(found.get("lm_head.weight")?.shape.join(), "96,64");
    assert.deepEqual(unclaimed, ["rope_freqs.weight"], "tensors outside the text model keep their GGUF names");

    // llama.cpp: a 62-layer gemma3 is 27B, whose attention scale is 1/sqrt(hidden / heads) = 1/sqrt(168).
    const big = join(dir, "27b.gguf");
    writeGguf(big, [
      ["general.architecture", "string", "gemma3"],
      ["gemma3.context_length", "u32", 131072],
      ["gemma3.embedding_length", "u32", 5376],
      ["gemma3.block_count", "u32", 62],
      ["gemma3.feed_forward_length", "u32", 21504],
      ["gemma3.attention.head_count", "u32", 32],
      ["gemma3.attention.head_count_kv", "u32", 16],
      ["gemma3.attention.key_length", "u32", 128],
      ["gemma3.attention.layer_norm_rms_epsilon", "f32", 1e-6],
      ["gemma3.attention.sliding_window", "u32", 1024],
      ["tokenizer.ggml.tokens", "strings", ["<pad>", "<eos>", "<bos>"]],
    ], []);
    using g27 = openGguf(big);
    const c27 = gemma3ConfigFromGguf(g27);
    assert.equal(c27.text.queryPreAttnScalar, 168);
    assert.equal(c27.text.headDim, 128);
    assert.equal(c27.text.vocabSize, 3, "without token_embd the vocabulary is the token list");
    assert.equal(c27.text.rope.full_attention.theta, 10_000, "llama.cpp's default when rope.freq_base is absent");
    assert.equal(c27.layers.filter((l) => l.type === "full_attention").length, 10);
  }),
);

Deno.test(
  "another architecture, missing keys, and values the model cannot run are ConfigErrors",
  withTempDir((dir) => {
    const open = (name: string, meta: Meta[], tensors: TensorSpec[] = []): GgufFile => {
      const path = join(dir, name);
      writeGguf(path, meta, tensors);
      return openGguf(path);
    };
    using llama = open("llama.gguf", [["general.architecture", "string", "llama"]]);
    const e = thrown(() => gemma3ConfigFromGguf(llama), ConfigError);
    assert.deepEqual(e.problems, ['general.architecture is "llama", not Gemma 3 ("gemma3")']);
    assert.match(e.message, /llama\.gguf/);

    using none = open("none.gguf", []);
    assert.deepEqual(thrown(() => gemma3ConfigFromGguf(none), ConfigError).problems, [
      "general.architecture is missing",
    ]);

    using sparse = open("sparse.gguf", [
      ["general.architecture", "string", "gemma3"],
      ["gemma3.embedding_length", "string", "640"],
    ]);
    assert.deepEqual(thrown(() => gemma3ConfigFromGguf(sparse), ConfigError).problems, [
      'gemma3.embedding_length is string "640", not a number',
      "gemma3.block_count is missing",
      "gemma3.feed_forward_length is missing",
      "gemma3.attention.head_count is missing",
      "gemma3.attention.layer_norm_rms_epsilon is missing",
      "gemma3.attention.sliding_window is missing",
      "gemma3.context_length is missing",
      "token_embd.weight is missing, so the vocabulary size is unknown",
    ]);

    // Per-layer arrays are fine when uniform (llama.cpp get_key_or_arr), refused when they vary.
    const tensors = gemma3Tensors(2);
    using uniform = open("uniform.gguf", [
      ...gemma3Meta(2).filter(([k]) => k !== "gemma3.feed_forward_length"),
      ["gemma3.feed_forward_length", "u32s", [128, 128]],
    ], tensors);
    assert.equal(gemma3ConfigFromGguf(uniform).text.intermediateSize, 128);
    using varying = open("varying.gguf", [
      ...gemma3Meta(2).filter(([k]) => k !== "gemma3.feed_forward_length"),
      ["gemma3.feed_forward_length", "u32s", [128, 256]],
    ], tensors);
    assert.match(
      thrown(() => gemma3ConfigFromGguf(varying), ConfigError).problems[0],
      /feed_forward_length varies per layer \(128, 256…\)/,
    );

    // Validation is parseGemma3Config's: a RoPE kind Gemma 3 does not use, bad head counts.
    using yarn = open(
      "yarn.gguf",
      gemma3Meta(2, [
        ["gemma3.rope.scaling.type", "string", "yarn"],
        ["gemma3.rope.scaling.factor", "f32", 4],
      ]),
      tensors,
    );
    assert.match(thrown(() => gemma3ConfigFromGguf(yarn), ConfigError).message, /rope_type "yarn" is not supported/);
    using heads = open("heads.gguf", [
      ...gemma3Meta(2).filter(([k]) => k !== "gemma3.attention.head_count_kv"),
      ["gemma3.attention.head_count_kv", "u32", 3],
    ], tensors);
    assert.match(thrown(() => gemma3ConfigFromGguf(heads), ConfigError).message, /not a multiple of num_key_value/);
  }),
);

Deno.test("GGUF tensor names map to the HF names of the weight table", () => {
  const cases: [string, string | undefined][] = [
    ["token_embd.weight", "model.embed_tokens.weight"],
    ["output_norm.weight", "model.norm.weight"],
    ["output.weight", "lm_head.weight"],
    ["blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight"],
    ["blk.1.attn_k.weight", "model.layers.1.self_attn.k_proj.weight"],
    ["blk.2.attn_v.weight", "model.layers.2.self_attn.v_proj.weight"],
    ["blk.3.attn_output.weight", "model.layers.3.self_attn.o_proj.weight"],
    ["blk.4.attn_q_norm.weight", "model.layers.4.self_attn.q_norm.weight"],
    ["blk.5.attn_k_norm.weight", "model.layers.5.self_attn.k_norm.weight"],
    ["blk.6.attn_norm.weight", "model.layers.6.input_layernorm.weight"],
    ["blk.7.post_attention_norm.weight", "model.layers.7.post_attention_layernorm.weight"],
    ["blk.8.ffn_norm.weight", "model.layers.8.pre_feedforward_layernorm.weight"],
    ["blk.9.post_ffw_norm.weight", "model.layers.9.post_feedforward_layernorm.weight"],
    ["blk.10.ffn_gate.weight", "model.layers.10.mlp.gate_proj.weight"],
    ["blk.11.ffn_up.weight", "model.layers.11.mlp.up_proj.weight"],
    ["blk.17.ffn_down.weight", "model.layers.17.mlp.down_proj.weight"],
    ["blk.18.ffn_down.weight", undefined], // past the last layer
    ["blk.01.ffn_down.weight", undefined],
    ["blk.0.ffn_down.bias", undefined],
    ["blk.0.constructor", undefined],
    ["rope_freqs.weight", undefined],
  ];
  for (const [gguf, hf] of cases) assert.equal(gemma3HfName(gguf, 18), hf, gguf);
});

const real = await realGguf270m();
const REAL = real.path ?? "";
const realMissing = real.skip ?? null;
if (realMissing) console.log(`ignoring the real-GGUF test: ${realMissing}`);

Deno.test({
  name: "the real gemma-3-270m Q4_K_M GGUF: listing, config, weight table, norm offset",
  ignore: realMissing !== null,
  fn() {
    using gguf = openGguf(REAL);
    assert.equal(gguf.tensors.length, 236);
    assert.equal(gguf.getString("general.architecture"), "gemma3");
    assert.deepEqual(
      new Set(gguf.tensors.map((t) => t.ggmlType)),
      new Set(["F32", "Q5_0", "Q4_K", "Q8_0", "Q6_K"]),
    );
    // Cross-checked with gguf-py (GGUFReader.tensors[i].data_offset, bytes): absolute offset, size, byte sum.
    const expected: [string, number, number, number][] = [
      ["blk.0.attn_output.weight", 184901824, 368640, 47680912],
      ["blk.17.ffn_down.weight", 250227904, 1075200, 130571372],
      ["blk.3.attn_v.weight", 197309632, 112640, 13912511],
      ["output_norm.weight", 6525120, 2560, 135666],
    ];
    for (const [name, start, bytes, sum] of expected) {
      const t = gguf.get(name)!;
      assert.deepEqual(t.byteRange, [start, start + bytes], name);
      assert.equal(gguf.readBytes(name).reduce((a, b) => a + b, 0), sum, name);
    }

    const config = gemma3ConfigFromGguf(gguf);
    const c = config.text;
    assert.deepEqual(
      [c.hiddenSize, c.numHiddenLayers, c.numAttentionHeads, c.numKeyValueHeads, c.headDim, c.slidingWindow],
      [640, 18, 4, 1, 256, 512],
    );
    assert.deepEqual([c.vocabSize, c.intermediateSize, c.queryPreAttnScalar, c.rmsNormEps], [262144, 2048, 256, 1e-6]);
    assert.equal(c.tieWordEmbeddings, true);
    assert.deepEqual([c.bosTokenId, c.eosTokenIds, c.padTokenId], [2, [1], 0]);
    assert.deepEqual(config.layers.filter((l) => l.type === "full_attention").map((l) => l.index), [5, 11, 17]);
    assert.deepEqual(c.rope.full_attention, { type: "default", theta: 1e6, factor: 1 });
    assert.deepEqual(c.rope.sliding_attention, { type: "default", theta: 1e4, factor: 1 });

    // Every HF row of the weight table maps to a tensor of the right shape; nothing is left over.
    const source = ggufWeightSource(gguf, config);
    const rows = quantRows(gemma3TextWeights(config));
    const { found, unclaimed } = checkWeights(source, rows);
    assert.equal(found.size, rows.length);
    assert.equal(rows.length, 236);
    assert.deepEqual(unclaimed, []);
    assert.deepEqual(found.get("model.embed_tokens.weight")?.shape, [262144, 640]);
    assert.equal(found.get("model.embed_tokens.weight")?.dtype, "q8_0");

    // Norms hold 1 + w (convert_hf_to_gguf.py adds the 1): the HF weights are bf16, so every stored value
    // minus 1 is exactly a bf16 number, while the stored values themselves mostly are not.
    let values = 0, offsetExact = 0, storedExact = 0;
    const isBf16 = (x: number) => (new Uint32Array(Float32Array.of(x).buffer)[0] & 0xffff) === 0;
    for (const row of rows.filter((r) => /norm\.weight$/.test(r.name))) {
      const bytes = gguf.readBytes(source.ggufName(row.name)!);
      for (const v of new Float32Array(bytes.buffer)) {
        values++;
        if (isBf16(Math.fround(v - 1))) offsetExact++;
        if (isBf16(v)) storedExact++;
      }
    }
    assert.equal(values, 640 + 18 * (4 * 640 + 2 * 256));
    assert.equal(offsetExact, values, "every norm value is 1 + a bf16 number");
    assert.ok(storedExact < 0.9 * values, `only ${storedExact} of ${values} stored values are bf16 themselves`);
    // The stored scale is what multiplies: far from zero-centred (the brief's "mean in [0.5, 5]" does not hold
    // for the final norm, whose HF weights average ~25; the layer q/k norms are near 1).
    const mean = (name: string) => {
      const v = new Float32Array(gguf.readBytes(name).buffer);
      return v.reduce((a, b) => a + b, 0) / v.length;
    };
    assert.ok(Math.abs(mean("output_norm.weight") - 26.3464) < 1e-3);
    for (let i = 0; i < 18; i++) {
      const m = mean(`blk.${i}.attn_q_norm.weight`);
      assert.ok(m > 1 && m < 5, `blk.${i}.attn_q_norm mean ${m}`);
    }

    // A few tensors of every stored type load to the device as stored.
    using backend = Backend.open({ backend: "cpu" });
    for (
      const name of [
        "model.norm.weight",
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.o_proj.weight",
        "model.layers.0.self_attn.v_proj.weight",
        "model.layers.0.mlp.down_proj.weight",
      ]
    ) {
      using t = source.loadTensor(backend, name);
      const info = found.get(name)!;
      assert.deepEqual([t.dtype, t.shape], [info.dtype, info.shape], name);
      assert.deepEqual(t.toBytes(), gguf.readBytes(source.ggufName(name)!), name);
    }
    // Dequantized on the host (loadTensor's dtype option): the sums gguf-py's `quants.dequantize` gives.
    const sums: [string, string, number, number][] = [
      ["model.layers.0.self_attn.o_proj.weight", "q4_k", -1.833076, 18307.241332],
      ["model.layers.17.mlp.down_proj.weight", "q6_k", -0.207175, 16216.572547],
      ["model.layers.9.self_attn.q_proj.weight", "q5_0", -19.230354, 17901.773582],
      ["model.layers.0.self_attn.v_proj.weight", "q8_0", 1.554487, 5098.48862],
    ];
    for (const [name, dtype, sum, absSum] of sums) {
      assert.equal(found.get(name)!.dtype, dtype);
      using t = source.loadTensor(backend, name, { dtype: "f32" });
      let s = 0, a = 0;
      for (const x of t.toArray()) s += x, a += Math.abs(x);
      assert.ok(Math.abs(s - sum) < 1e-3 && Math.abs(a - absSum) < 1e-2, `${name}: sum ${s}, |sum| ${a}`);
    }
  },
});
