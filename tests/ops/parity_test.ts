/**
 * Op parity: every row of cases.ts on the CPU library against the TypeScript reference, and on the
 * CUDA library against the CPU library when a GPU answers (NMSE, and max|Δ|/rms per element). Without one,
 * each CUDA row is reported as ignored and the reason is printed once (a failure under GEMMAKIT_REQUIRE_CUDA=1).
 */
import assert from "node:assert/strict";
import { Backend } from "../../src/runtime/backend.ts";
import { cudaOrSkip } from "../helpers.ts";
import { CUDA_MAX_REL, OP_CASES, type OpCase, Rng } from "./cases.ts";

export function nmse(out: ArrayLike<number>, want: ArrayLike<number>): number {
  let err = 0, norm = 0;
  for (let i = 0; i < want.length; i++) {
    err += (out[i] - want[i]) ** 2;
    norm += want[i] ** 2;
  }
  return norm === 0 ? err : err / norm;
}

/** max|out − want| / rms(want): one bad element of a large output shows here long before it moves the NMSE. */
export function maxRel(out: ArrayLike<number>, want: ArrayLike<number>): { rel: number; at: number } {
  let sq = 0, worst = 0, at = -1;
  let n = 0;
  for (let i = 0; i < want.length; i++) {
    if (!Number.isFinite(want[i])) continue; // non-finite outputs are compare()'s first check
    sq += want[i] ** 2;
    n++;
    const d = Math.abs(out[i] - want[i]);
    if (d > worst) {
      worst = d;
      at = i;
    }
  }
  const rms = Math.sqrt(sq / Math.max(1, n));
  return { rel: rms === 0 ? worst : worst / rms, at };
}

function compare(
  c: OpCase,
  out: ArrayLike<number>,
  want: ArrayLike<number>,
  limit: number,
  against: string,
  maxRelLimit?: number,
): void {
  const label = `${c.op} [${c.name}] vs ${against}`;
  assert.equal(out.length, want.length, `${label}: ${out.length} outputs, expected ${want.length}`);
  for (let i = 0; i < out.length; i++) {
    if (!Number.isFinite(out[i]) && Number.isFinite(want[i])) {
      assert.fail(`${label}: output[${i}] is ${out[i]} where ${against} has ${want[i]}`);
    }
  }
  if (c.exact) {
    const bad = Array.from(want).findIndex((w, i) => out[i] !== w);
    assert.equal(bad, -1, `${label}: output[${bad}] = ${out[bad]}, expected ${want[bad]}`);
    return;
  }
  const e = nmse(out, want);
  assert.ok(e <= limit, `${label}: NMSE ${e.toExponential(2)} exceeds ${limit.toExponential(0)}`);
  if (maxRelLimit !== undefined) {
    const { rel, at } = maxRel(out, want);
    assert.ok(
      rel <= maxRelLimit,
      `${label}: output[${at}] = ${out[at]} vs ${want[at]}: |Δ|/rms ${rel.toExponential(2)} exceeds ${maxRelLimit}`,
    );
  }
}

/** Runs a case on one backend and checks it frees everything it allocated. */
function runChecked(backend: Backend, c: OpCase, seed: number): ArrayLike<number> {
  const before = backend.memoryStats().inUse;
  const out = c.setup(new Rng(seed)).run(backend);
  assert.equal(backend.memoryStats().inUse, before, `${c.op} [${c.name}] leaked device memory`);
  return out;
}

const seedOf = (i: number) => 1000 + i;
const cpu = Backend.open({ backend: "cpu" });

for (const [i, c] of OP_CASES.entries()) {
  Deno.test({
    name: `[cpu] ${c.op}: ${c.name}`,
    fn() {
      const want = c.setup(new Rng(seedOf(i))).reference();
      compare(c, runChecked(cpu, c, seedOf(i)), want, c.nmse, "reference");
    },
  });
}

const { cuda } = cudaOrSkip("CUDA op-parity rows");

for (const [i, c] of OP_CASES.entries()) {
  Deno.test({
    name: `[cuda] ${c.op}: ${c.name}${cuda ? "" : " (skipped: no CUDA device)"}`,
    ignore: !cuda,
    fn() {
      const want = runChecked(cpu, c, seedOf(i));
      const out = runChecked(cuda!, c, seedOf(i));
      compare(c, out, want, c.cudaNmse ?? c.nmse, "cpu library", c.cudaMaxRel ?? CUDA_MAX_REL);
    },
  });
}

Deno.test("op table covers every op of the C header", () => {
  const header = Deno.readTextFileSync(new URL("../../kernels/include/gemmakit.h", import.meta.url));
  const runtime = new Set([
    "abi_version",
    "backend_kind",
    "last_error",
    "device_count",
    "device_name",
    "context_create",
    "context_destroy",
    "context_default_stream",
    "stream_create",
    "stream_destroy",
    "stream_synchronize",
    "malloc",
    "free",
    "memcpy_h2d",
    "memcpy_d2h",
    "memcpy_d2d",
    "memset",
    "memory_stats",
    "memory_reset_peak",
    // decode programs: runtime entries, tested in tests/runtime/program_test.ts
    "program_begin",
    "program_end",
    "program_run",
    "program_last_error",
    "program_destroy",
  ]);
  const declared = [...header.matchAll(/GK_API [^(]*\bgk_(\w+)\(/g)].map((m) => m[1]).filter((n) => !runtime.has(n));
  const covered = new Set(OP_CASES.map((c) => c.op));
  assert.deepEqual(declared.filter((op) => !covered.has(op)), [], "ops declared in gemmakit.h without parity rows");
});

Deno.test("every CPU op records itself when a decode program is being recorded", () => {
  // An op without GK_CPU_RECORD would run once at record time and never on replay: silent wrong output.
  const dir = new URL("../../kernels/cpu/", import.meta.url);
  const notRecorded = new Set([
    "gk_stream_destroy",
    "gk_stream_synchronize",
    "gk_memcpy_h2d",
    "gk_memcpy_d2h",
    "gk_program_begin",
    "gk_program_end",
    "gk_program_run",
    // A load-time rewrite of a weight, which refuses to run while recording (kernels/cpu/repack.cpp).
    "gk_repack",
  ]);
  const missing: string[] = [];
  let ops = 0;
  for (const entry of Deno.readDirSync(dir)) {
    if (!entry.name.endsWith(".cpp")) continue;
    const source = Deno.readTextFileSync(new URL(entry.name, dir));
    for (const [, name] of source.matchAll(/GK_API gk_status (gk_\w+)\(gk_stream\* s\b/g)) {
      if (notRecorded.has(name)) continue;
      ops++;
      if (!new RegExp(`^\\s*GK_CPU_RECORD\\(\\s*s,\\s*${name}\\(`, "m").test(source)) {
        missing.push(`${entry.name}: ${name}`);
      }
    }
  }
  assert.ok(ops >= 17, `found only ${ops} CPU ops; has the entry-point signature style changed?`);
  assert.deepEqual(missing, [], "CPU ops without GK_CPU_RECORD");
});
