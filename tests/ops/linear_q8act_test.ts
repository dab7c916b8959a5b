/**
 * The opt-in int8-activation path of gk_linear on the CPU (GEMMAKIT_CPU_Q8_ACTIVATIONS=1,
 * kernels/cpu/linear_q8act.cpp): x quantized per 32 elements to int8, AVX512-VNNI products, for Q8_0 / Q5_0 /
 * Q4_K / Q6_K weights and 1..8 rows of x. The library reads the variable once, so the products run in a child
 * process with it set (and one without, the control). Each prints the NMSE of y against the f64 product with
 * the dequantized weights for every (dtype, k, m).
 *
 * Limits: int8 rounding of x (step d = max|x| / 127 per 32 elements) gives NMSE ~1e-5..5e-5 on these random
 * inputs (measured 7e-6..3.4e-5); a wrong code, scale, min or lane gives 1e-2 or worse. The f32 path gives
 * ~1e-13, so an NMSE above 1e-9 also proves the int8 path ran (it is skipped where the CPU or build lacks
 * AVX512-VNNI: the child reports that and the test says so).
 * @module
 */
import assert from "node:assert/strict";

const CHILD = new URL("./linear_q8act_child.ts", import.meta.url);

async function child(q8: boolean): Promise<{ vnni: boolean; rows: { name: string; nmse: number }[] }> {
  const env: Record<string, string> = { GEMMAKIT_BACKEND: "cpu" };
  if (q8) env.GEMMAKIT_CPU_Q8_ACTIVATIONS = "1";
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CHILD.pathname],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, `child failed: ${new TextDecoder().decode(out.stderr)}`);
  return JSON.parse(text.trim().split("\n").at(-1)!);
}

Deno.test("gk_linear, GEMMAKIT_CPU_Q8_ACTIVATIONS=1: int8 activations within int8 rounding of the exact product", async () => {
  const [on, off] = await Promise.all([child(true), child(false)]);
  for (const r of off.rows.filter((r) => !r.name.includes("NaN"))) {
    assert.ok(r.nmse < 1e-10, `default path ${r.name}: NMSE ${r.nmse}`);
  }
  // The NaN row reports 1e-5 when the NaN reached exactly its row's outputs, 1 otherwise.
  for (const r of [...off.rows, ...on.rows].filter((r) => r.name.includes("NaN"))) assert.equal(r.nmse, 1e-5, r.name);
  if (!on.vnni) {
    console.log("ignoring the int8 checks: this CPU or build has no AVX512-VNNI (the f32 path ran)");
    return;
  }
  for (const r of on.rows) {
    assert.ok(r.nmse < 2e-4, `int8 path ${r.name}: NMSE ${r.nmse}`);
    assert.ok(r.nmse > 1e-9, `int8 path ${r.name}: NMSE ${r.nmse} is the f32 path's (the int8 path did not run)`);
  }
});
