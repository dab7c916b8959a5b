/**
 * Run by .ci/arm64 with Deno's linux-arm64 build under qemu-user (not by `deno test`: it needs the
 * cross-compiled library in GEMMAKIT_LIB_DIR): the TypeScript bindings open the arm64 CPU library and a
 * matrix-vector product (the NEON kernel) and a tiled one give the exact answers.
 */
import { Backend } from "../../../src/runtime/backend.ts";
import { Tensor } from "../../../src/runtime/tensor.ts";
import { linear } from "../../../src/ops/linear.ts";

if (Deno.build.arch !== "aarch64") throw new Error(`expected Deno for aarch64, this is ${Deno.build.arch}`);
using backend = Backend.open({ backend: "cpu" });
console.log(`${Deno.build.arch}: ${backend.deviceName} from ${backend.libraryPath}`);
// W [n=3, k=16] in bf16 with small integers, so every product and sum is exact in f32.
const k = 16, n = 3;
const wValues = Array.from({ length: n * k }, (_, i) => (i % 7) - 3);
using w = Tensor.fromArray(backend, wValues, [n, k], "bf16");
for (const m of [1, 9]) {
  const xValues = Array.from({ length: m * k }, (_, i) => (i % 5) - 2);
  using x = Tensor.fromArray(backend, xValues, [m, k]);
  using y = linear(x, w);
  const got = Array.from(y.toArray());
  const want = Array.from({ length: m * n }, (_, o) => {
    const i = Math.floor(o / n), j = o % n;
    let s = 0;
    for (let c = 0; c < k; c++) s += xValues[i * k + c] * wValues[j * k + c];
    return s;
  });
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    throw new Error(`linear m=${m}: got ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
  }
  console.log(`linear m=${m} n=${n} k=${k}: exact`);
}
