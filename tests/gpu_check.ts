/**
 * `deno task gpu-check`: the whole CUDA picture from one short run on a lent GPU, written to one report file.
 *
 * Needs: an NVIDIA GPU with driver >= 580 (the CUDA 13 runtime), build/out/libgemmakit_{cpu,cuda}.so (built here
 * when missing or stale; building CUDA needs nvcc, so on a machine without it carry a build/out made elsewhere
 * with `deno task build --require-cuda`), and for the bench step the npm cache (`deno cache tests/bench/bench.ts`,
 * carry DENO_DIR). Without a GPU it stops at step 0 with the reason and exits 1.
 *
 * Steps, each under its own time limit, cheapest and most telling first (~10 minutes in all):
 *   0. driver: nvidia-smi answers and the driver is new enough; the CUDA library opens a context.
 *   1. ops: every [cuda] op-parity row with CUDA_LAUNCH_BLOCKING=1, so an asynchronous fault is blamed on its
 *      own row rather than on a later one.
 *   2. programs: decode-program capture/replay (toy steps with gk_sample; run(n) and runAsync(n) chunks against
 *      the CPU's tokens) and the MoE block.
 *   3. models: tiny Gemma 3 / Gemma 4 checkpoints against transformers (Gemma 4 decodes through a recorded step);
 *      Gemma 3 generation on CUDA (decode graph + sampler, runAsync chunks) and bf16 tensor-core prefill vs the CPU.
 *   4. bench: Gemma 3 270M at real size (synthetic weights): 512-token prefill on tensor cores, 64 decode steps
 *      replayed from a CUDA graph; then the op benchmarks (--gpu --quick).
 *   5. vision towers, if the time budget allows.
 * Every test step runs with GEMMAKIT_REQUIRE_CUDA=1, so a CUDA test that would be skipped fails instead.
 *
 * Usage: deno task gpu-check [--report PATH] [--budget SECONDS]   (default report: build/out/gpu-check/report.md)
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const MIN_DRIVER = 580;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    report: { type: "string", default: join(ROOT, "build/out/gpu-check/report.md") },
    budget: { type: "string", default: "600" },
  },
});
const reportPath = values.report!;
const logDir = dirname(reportPath);
Deno.mkdirSync(logDir, { recursive: true });
const deadline = Date.now() + Number(values.budget) * 1000;

interface Step {
  name: string;
  rc: number | null; // null: not run
  seconds: number;
  summary: string;
  log?: string;
}
const steps: Step[] = [];
const lines: string[] = [`# gemmakit gpu-check, ${new Date().toISOString()}`, ""];

function writeReport(verdict: string): void {
  const table = [
    "| step | exit | seconds | summary |",
    "| --- | ---: | ---: | --- |",
    ...steps.map((s) => `| ${s.name} | ${s.rc ?? "not run"} | ${s.seconds.toFixed(0)} | ${s.summary} |`),
  ];
  const text = [...lines.slice(0, 2), `**${verdict}**`, "", ...table, "", ...lines.slice(2)].join("\n");
  Deno.writeTextFileSync(reportPath, text + "\n");
  console.log(`\n${verdict}\nreport: ${reportPath}`);
}

function fail(why: string): never {
  writeReport(`FAILED: ${why}`);
  Deno.exit(1);
}

/** Runs a command with a time limit; its output goes to <logDir>/<name>.txt and, trimmed, into the report. */
async function run(
  name: string,
  argv: string[],
  limitS: number,
  env: Record<string, string> = {},
): Promise<{ rc: number; out: string; seconds: number }> {
  const left = (deadline - Date.now()) / 1000;
  const limit = Math.max(10, Math.min(limitS, left));
  console.log(`== ${name} (limit ${limit.toFixed(0)} s): ${argv.join(" ")}`);
  const t0 = performance.now();
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: ROOT,
    env: { NO_COLOR: "1", GEMMAKIT_OFFLINE: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, limit * 1000);
  const result = await child.output();
  clearTimeout(timer);
  const seconds = (performance.now() - t0) / 1000;
  const dec = new TextDecoder();
  const out = dec.decode(result.stdout) + dec.decode(result.stderr);
  Deno.writeTextFileSync(join(logDir, `${name}.txt`), out);
  const rc = timedOut ? 124 : result.code;
  console.log(`   exit ${rc}${timedOut ? " (timed out)" : ""} after ${seconds.toFixed(0)} s`);
  return { rc, out, seconds };
}

/** pass/fail/ignored counts of a `deno test` run, and the failed tests' names. */
function testSummary(out: string): { summary: string; failed: string[]; ignored: number } {
  const count = (what: string) => [...out.matchAll(new RegExp(`(\\d+) ${what}`, "g"))].reduce((a, m) => a + +m[1], 0);
  const failed = [...new Set([...out.matchAll(/^(.+?) \.\.\. FAILED/gm)].map((m) => m[1].trim()))];
  const ignored = count("ignored");
  return { summary: `${count("passed")} passed, ${count("failed")} failed, ${ignored} ignored`, failed, ignored };
}

async function testStep(name: string, files: string[], limitS: number, env: Record<string, string> = {}) {
  if (Date.now() > deadline) {
    steps.push({ name, rc: null, seconds: 0, summary: "skipped: time budget spent" });
    return;
  }
  const deno = Deno.execPath();
  const { rc, out, seconds } = await run(
    name,
    [deno, "test", "-A", "--no-check", ...files, "--filter", "[cuda]"],
    limitS,
    {
      GEMMAKIT_REQUIRE_CUDA: "1",
      ...env,
    },
  );
  const { summary, failed, ignored } = testSummary(out);
  steps.push({ name, rc, seconds, summary: rc === 124 ? `timed out; ${summary}` : summary, log: `${name}.txt` });
  lines.push(`## ${name}`, "", `\`${files.join(" ")}\` — exit ${rc}, ${summary} (full log: ${name}.txt)`, "");
  if (ignored > 0) lines.push(`- ${ignored} ignored: CUDA tests that did not run; see the log.`);
  if (failed.length) {
    lines.push("Failed (under CUDA_LAUNCH_BLOCKING=1 the first one is the culprit; rerun it alone with --filter):");
    for (const f of failed.slice(0, 40)) lines.push(`- ${f}`);
    lines.push(
      "",
      "```",
      ...out.split("\n").filter((l) => /error|Error|FAILED|NMSE|exceeds/.test(l)).slice(0, 60),
      "```",
    );
  }
  lines.push("");
}

// ---- 0. driver and device -------------------------------------------------------------------------------------
lines.push("## 0. driver and device", "");
const t0 = performance.now();
let smi: Deno.CommandOutput;
try {
  smi = await new Deno.Command("nvidia-smi", {
    args: ["--query-gpu=name,driver_version,memory.total,compute_cap", "--format=csv,noheader"],
    stdout: "piped",
    stderr: "piped",
  }).output();
} catch {
  steps.push({ name: "0-driver", rc: 1, seconds: 0, summary: "nvidia-smi not found" });
  lines.push("nvidia-smi was not found: this machine has no NVIDIA driver.", "");
  fail(`gpu-check needs an NVIDIA GPU with driver >= ${MIN_DRIVER}; nvidia-smi was not found on this machine`);
}
const gpu = new TextDecoder().decode(smi.stdout).trim();
lines.push("```", gpu || new TextDecoder().decode(smi.stderr).trim(), "```", "");
const driver = Number(gpu.split("\n")[0]?.split(",")[1]?.trim().split(".")[0]);
if (!smi.success || !gpu) {
  steps.push({ name: "0-driver", rc: smi.code, seconds: 0, summary: "nvidia-smi found no GPU" });
  fail("nvidia-smi found no usable GPU");
}
if (!(driver >= MIN_DRIVER)) {
  steps.push({ name: "0-driver", rc: 1, seconds: 0, summary: `driver ${driver} < ${MIN_DRIVER}` });
  fail(`driver ${driver} is older than ${MIN_DRIVER}, which the CUDA 13 runtime needs: every CUDA test would fail`);
}

// Build what is missing or stale. --require-cuda only when the CUDA library is absent: a carried build/out is
// enough on a machine without nvcc, and build.ts then rebuilds nothing.
const haveCuda = (() => {
  try {
    return Deno.statSync(join(ROOT, "build/out/libgemmakit_cuda.so")).isFile;
  } catch {
    return false;
  }
})();
const b = await run("0-build", [
  Deno.execPath(),
  "run",
  "-A",
  "build/build.ts",
  ...(haveCuda ? [] : ["--require-cuda"]),
], 300);
if (b.rc !== 0) {
  steps.push({ name: "0-driver", rc: b.rc, seconds: b.seconds, summary: "build failed (0-build.txt)" });
  fail("the native libraries could not be built; see 0-build.txt");
}
const open = await run("0-open", [
  Deno.execPath(),
  "eval",
  'import { Backend } from "./src/runtime/backend.ts"; const b = Backend.open({ backend: "cuda" }); ' +
  'console.log("opened", b.deviceName, JSON.stringify(b.memoryStats())); b.dispose();',
], 60);
lines.push("```", open.out.trim(), "```", "");
steps.push({
  name: "0-driver",
  rc: open.rc,
  seconds: (performance.now() - t0) / 1000,
  summary: open.rc === 0 ? `driver ${driver}; ${open.out.trim().split("\n").at(-1)}` : "the CUDA library did not open",
});
if (open.rc !== 0) fail("the CUDA library did not open a context (0-open.txt)");

// ---- 1-3. tests -----------------------------------------------------------------------------------------------
await testStep("1-ops", ["tests/ops/"], 240, { CUDA_LAUNCH_BLOCKING: "1" });
// Graph capture is refused under CUDA_LAUNCH_BLOCKING on some drivers, and replay timing matters: launched normally.
await testStep("2-programs", [
  "tests/runtime/program_test.ts",
  "tests/runtime/program_replay_test.ts",
  "tests/models/gemma4_moe_block_test.ts",
], 150);
await testStep("3-models", [
  "tests/models/gemma3_parity_test.ts",
  "tests/models/gemma4_parity_test.ts",
  // Gemma 3 generation through the captured decode graph with the sampler; bf16 weights on tensor cores.
  "tests/models/gemma3_cuda_model_test.ts",
  // Continuous batching: the batched step captured once per batch composition, greedy equal to alone.
  "tests/generate/batch_cuda_test.ts",
], 240);

// ---- 4. bench -------------------------------------------------------------------------------------------------
if (Date.now() < deadline) {
  const deno = Deno.execPath();
  const m = await run("4-bench", [
    deno,
    "run",
    "-A",
    "--no-check",
    "tests/bench/bench.ts",
    "--synthetic",
    "gemma3-270m",
    "--backend",
    "cuda",
    "--prompt-tokens",
    "6,512",
    "--decode-tokens",
    "64",
    "--runs",
    "1",
  ], 150);
  const o = await run("4-ops-bench", [deno, "run", "-A", "--no-check", "tests/bench/bench.ts", "--gpu", "--quick"], 90);
  steps.push({
    name: "4-bench",
    rc: m.rc || o.rc,
    seconds: m.seconds + o.seconds,
    summary: "model and op figures below",
  });
  lines.push("## 4. bench", "", "```", m.out.trim().split("\n").slice(-30).join("\n"), "```", "");
  lines.push("```", o.out.trim().split("\n").slice(-60).join("\n"), "```", "");
} else {
  steps.push({ name: "4-bench", rc: null, seconds: 0, summary: "skipped: time budget spent" });
}

// ---- 5. vision, if time remains ---------------------------------------------------------------------------------
await testStep(
  "5-vision",
  ["tests/models/gemma3_vision_parity_test.ts", "tests/models/gemma4_vision_parity_test.ts"],
  120,
);

const bad = steps.filter((s) => s.rc !== 0 && s.rc !== null);
writeReport(bad.length ? `FAILED: ${bad.map((s) => s.name).join(", ")}` : "OK: every step that ran passed");
Deno.exit(bad.length ? 1 : 0);
