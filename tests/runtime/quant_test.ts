import assert from "node:assert/strict";
import { dequantize, QUANT_BLOCKS, QUANT_DTYPES, type QuantDType } from "../../src/runtime/quant.ts";
import { DTYPE_CODE } from "../../src/runtime/dtype.ts";

const decodeBase64 = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

// The reference dequantizer (the op-parity rows' oracle for every quantized kernel) against ggml's own
// formulas: gguf-py's dequantize on random blocks of every type (tests/fixtures/make_quant_oracle.py),
// bit for bit, f16 subnormal scales and every code pattern included.
const ORACLE: Record<string, { blocks: string; values: string }> = JSON.parse(
  Deno.readTextFileSync(new URL("../fixtures/quant_oracle/dequantized.json", import.meta.url)),
);

Deno.test("the oracle covers every quantized dtype", () => {
  assert.deepEqual(Object.keys(ORACLE).sort(), [...QUANT_DTYPES].sort());
});

for (const dtype of QUANT_DTYPES) {
  Deno.test(`dequantize ${dtype} equals ggml's values bit for bit`, () => {
    const { blocks, values } = ORACLE[dtype as QuantDType];
    const bytes = decodeBase64(blocks);
    const raw = decodeBase64(values);
    const expected = new Uint32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
    assert.equal(bytes.byteLength % QUANT_BLOCKS[dtype].bytes, 0);
    const got = new Uint32Array(dequantize(bytes, dtype).buffer);
    assert.equal(got.length, expected.length);
    const bad = got.findIndex((v, i) => v !== expected[i]);
    assert.equal(
      bad,
      -1,
      `element ${bad}: ${new Float32Array(got.buffer)[bad]} vs ggml's ${
        new Float32Array(raw.buffer, raw.byteOffset)[bad]
      }`,
    );
  });
}

Deno.test("DTYPE_CODE is the header's gk_dtype, name for name", () => {
  const header = Deno.readTextFileSync(new URL("../../kernels/include/gemmakit.h", import.meta.url));
  const body = header.slice(header.indexOf("typedef enum {\n  GK_F32"), header.indexOf("} gk_dtype;"));
  const codes = Object.fromEntries(
    [...body.matchAll(/^\s*GK_(\w+) = (\d+),/gm)].map(([, n, v]) => [n.toLowerCase(), +v]),
  );
  assert.deepEqual(codes, { ...DTYPE_CODE });
});
