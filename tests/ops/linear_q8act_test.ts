/**
 * gk_linear's integer-activation paths on the CPU (kernels/cpu/linear_q8act.cpp, and linear_x24_avx2.cpp on AVX2
 * builds without VNNI), each in a child process (the library reads its variables once):
 * - the default decode path: one row of x (m = 1) with Q5_0 / Q4_K / Q6_K weights, x as 24-bit integers per
 *   4-element lane (GEMMAKIT_CPU_X24_ACTIVATIONS=0 turns it off: the control);
 * - the opt-in int8 path (GEMMAKIT_CPU_Q8_ACTIVATIONS=1): x quantized per 32 elements to int8, with AVX512-VNNI
 *   Q8_0 / Q5_0 / Q4_K / Q6_K weights and 1..8 rows of x, with AVX2 alone Q4_K / Q6_K and 1..8 rows, Q5_0 and 1..4
 *   (the rest stays on the f32 path there).
 * Each child prints the NMSE of y against the f64 product with the dequantized weights for every (dtype, k, m).
 *
 * Limits: the f32 path gives ~1e-13; the 24-bit path must stay within 1e-10 as well (x's rounding is an f32
 * rounding's size), and its products must differ bitwise from the f32 path's (else it did not run). int8 rounding of
 * x (step d = max|x| / 127 per 32 elements) gives NMSE ~1e-5..5e-5 on these random inputs (measured 7e-6..3.4e-5);
 * a wrong code, scale, min or lane gives 1e-2 or worse, so an NMSE above 1e-9 also proves the int8 path ran. Both
 * are skipped where the CPU has neither AVX512-VNNI nor AVX2: the child reports that and the test says so.
 * @module
 */
import assert from "node:assert/strict";

const CHILD = new URL("./linear_q8act_child.ts", import.meta.url);

type Rows = {
  vnni: boolean;
  avx2: boolean;
  rows: { name: string; nmse: number; hash?: string }[];
  alone: { name: string; same: boolean }[];
};

async function child(env: Record<string, string>): Promise<Rows> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CHILD.pathname],
    env: { GEMMAKIT_BACKEND: "cpu", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, `child failed: ${new TextDecoder().decode(out.stderr)}`);
  return JSON.parse(text.trim().split("\n").at(-1)!);
}

const isBad = (name: string) => name.includes("NaN") || name.includes("Infinity");

Deno.test("gk_linear: the default path, and with GEMMAKIT_CPU_X24_ACTIVATIONS=0, within f32 rounding of the exact product", async () => {
  const [x24, f32] = await Promise.all([child({}), child({ GEMMAKIT_CPU_X24_ACTIVATIONS: "0" })]);
  for (const [mode, rows] of [["default", x24], ["f32 x", f32]] as const) {
    for (const r of rows.rows.filter((r) => !isBad(r.name))) {
      assert.ok(r.nmse < 1e-10, `${mode} ${r.name}: NMSE ${r.nmse}`);
    }
    // A bad row reports 1e-5 when the NaN / infinity reached exactly the outputs it should, 1 otherwise.
    for (const r of rows.rows.filter((r) => isBad(r.name))) assert.equal(r.nmse, 1e-5, `${mode} ${r.name}`);
  }
  if (!x24.vnni && !x24.avx2) {
    console.log("ignoring the 24-bit path's checks: this CPU has neither AVX512-VNNI nor AVX2 (the f32 path ran)");
    return;
  }
  // Where the 24-bit path runs (m = 1, not Q8_0) its sums differ from the f32 path's in the last bits; elsewhere the
  // two modes run the same code.
  const decodeRows = x24.rows.filter((r) => r.hash && / m=1 /.test(r.name) && !r.name.startsWith("q8_0"));
  assert.equal(decodeRows.length, 3);
  for (const r of x24.rows.filter((r) => r.hash)) {
    const other = f32.rows.find((o) => o.name === r.name)!;
    if (decodeRows.includes(r)) assert.notEqual(r.hash, other.hash, `${r.name}: the 24-bit path did not run`);
    else assert.equal(r.hash, other.hash, `${r.name}: not a decode product, yet the modes differ`);
  }
});

Deno.test("gk_linear, GEMMAKIT_CPU_Q8_ACTIVATIONS=1: int8 activations within int8 rounding of the exact product", async () => {
  const on = await child({ GEMMAKIT_CPU_Q8_ACTIVATIONS: "1" });
  for (const r of on.rows.filter((r) => isBad(r.name))) assert.equal(r.nmse, 1e-5, r.name);
  if (!on.vnni && !on.avx2) {
    console.log("ignoring the int8 checks: this CPU has neither AVX512-VNNI nor AVX2 (the f32 path ran)");
    return;
  }
  // AVX2 without VNNI: neither Q8_0 nor 8 rows of Q5_0 take the int8 path; those products keep the f32 path.
  const int8 = (name: string) => on.vnni || !(name.startsWith("q8_0") || /^q5_0 m=8 /.test(name));
  const good = on.rows.filter((r) => !isBad(r.name));
  assert.equal(good.filter((r) => int8(r.name)).length, on.vnni ? 16 : 11);
  for (const r of good) {
    if (!int8(r.name)) {
      assert.ok(r.nmse < 1e-10, `${r.name} (f32 path): NMSE ${r.nmse}`);
      continue;
    }
    assert.ok(r.nmse < 2e-4, `int8 path ${r.name}: NMSE ${r.nmse}`);
    assert.ok(r.nmse > 1e-9, `int8 path ${r.name}: NMSE ${r.nmse} is the f32 path's (the int8 path did not run)`);
  }
});

Deno.test("gk_linear, GEMMAKIT_CPU_Q8_ACTIVATIONS=1 on AVX2: a batched row's int8 product is its single-row product", async () => {
  const on = await child({ GEMMAKIT_CPU_Q8_ACTIVATIONS: "1" });
  if (on.vnni || !on.avx2) {
    console.log(`ignoring: the check is of the AVX2 int8 path (this CPU: ${on.vnni ? "AVX512-VNNI" : "no AVX2"})`);
    return;
  }
  // Up to 8 rows of Q4_K / Q6_K and 4 of Q5_0 share the one-row kernel's sums; Q5_0's 8 rows take the f32 path.
  assert.equal(on.alone.length, 12);
  for (const r of on.alone) assert.equal(r.same, r.name !== "q5_0 m=8", r.name);
});
