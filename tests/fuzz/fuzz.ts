/**
 * `deno task fuzz [--target NAME[,NAME]] [--seconds N] [--max-execs N] [--seed N]`: coverage-less mutation fuzzing
 * of every input parser gemmakit exposes to untrusted bytes (targets.ts). Inputs come from the seeds and the
 * committed corpus (tests/fuzz/corpus/<target>/), mutated here (bit flips, interesting integers, splices,
 * chunk insert/delete/duplicate; numbers and tokens in JSON text), and are run by a worker subprocess
 * (worker.ts), never in this process: a worker that throws an untyped exception, dies (crash), stalls over 5 s
 * (hang) or passes 2 GB RSS (blow-up) is a finding; its input is saved to tests/fuzz/findings/<target>/ and a
 * fresh worker takes over. Findings make the exit code 1; copy a fixed one into the corpus so that
 * `deno task test` replays it for good (tests/fuzz/corpus_test.ts).
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";
import { TARGETS } from "./targets.ts";

const HANG_MS = 5000;
const RSS_LIMIT = 2 * 1024 ** 3;
const HERE = new URL(".", import.meta.url).pathname;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    target: { type: "string" },
    seconds: { type: "string", default: "30" },
    "max-execs": { type: "string" },
    seed: { type: "string" },
    quiet: { type: "boolean", default: false },
  },
});
const names = values.target ? values.target.split(",") : Object.keys(TARGETS);
for (const n of names) if (!TARGETS[n]) throw new Error(`unknown target ${n}; targets: ${Object.keys(TARGETS)}`);
const seconds = Number(values.seconds);
const maxExecs = values["max-execs"] ? Number(values["max-execs"]) : Infinity;
let rng = Number(values.seed ?? Date.now()) >>> 0 || 1;

/** xorshift32: fast, seeded, good enough to pick mutations. */
function rand(n: number): number {
  rng ^= rng << 13;
  rng ^= rng >>> 17;
  rng ^= rng << 5;
  return (rng >>> 0) % n;
}

const INTERESTING32 = [
  0,
  1,
  0x7f,
  0x80,
  0xff,
  0x100,
  0x7fff,
  0x8000,
  0xffff,
  0x10000,
  0x7fffffff,
  0x80000000,
  0xffffffff,
  1000000,
  65536 * 4000,
];
const INTERESTING_TEXT = [
  "0",
  "-1",
  "1",
  "2147483648",
  "4294967296",
  "9007199254740992",
  "1e308",
  "-1e308",
  "1000000",
  "1.5",
  "null",
  "true",
  '""',
  "[]",
  "{}",
  '"\\u0000"',
  "NaN",
  '"' + "A".repeat(300) + '"',
];

function mutate(input: Uint8Array, corpus: Uint8Array[], text: boolean): Uint8Array<ArrayBuffer> {
  let b: Uint8Array = input.slice();
  const rounds = 1 + rand(4);
  for (let r = 0; r < rounds; r++) {
    const op = rand(text ? 9 : 7);
    const at = b.length ? rand(b.length) : 0;
    if (op === 0 && b.length) b[at] ^= 1 << rand(8);
    else if (op === 1 && b.length) b[at] = [0, 0xff, 0x7f, 0x80, 0x20, 0x30][rand(6)];
    else if (op === 2 && b.length >= 4) {
      const v = INTERESTING32[rand(INTERESTING32.length)];
      const p = rand(b.length - 3);
      new DataView(b.buffer).setUint32(p, v, rand(2) === 0);
    } else if (op === 3 && b.length) {
      const len = 1 + rand(Math.min(64, b.length - at));
      b = concat(b.subarray(0, at), b.subarray(at + len));
    } else if (op === 4 && b.length) {
      const len = 1 + rand(Math.min(64, b.length - at));
      b = concat(b.subarray(0, at + len), b.subarray(at, at + len), b.subarray(at + len));
    } else if (op === 5) {
      const other = corpus[rand(corpus.length)];
      const from = rand(other.length + 1);
      b = concat(b.subarray(0, at), other.subarray(from, from + rand(256)), b.subarray(at));
    } else if (op === 6 && b.length) {
      b = b.subarray(0, at); // truncation
    } else if (op === 7 || op === 8) {
      // JSON text: replace a number or a literal with an interesting token
      const s = new TextDecoder().decode(b);
      const spots = [...s.matchAll(/-?\d+(\.\d+)?(e[+-]?\d+)?|true|false|null|"[^"]{0,40}"/g)];
      if (spots.length) {
        const m = spots[rand(spots.length)];
        const rep = INTERESTING_TEXT[rand(INTERESTING_TEXT.length)];
        b = new TextEncoder().encode(s.slice(0, m.index) + rep + s.slice(m.index! + m[0].length));
      }
    }
  }
  return b.length > 1 << 22 ? b.slice(0, 1 << 22) : b.slice();
}

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return out;
}

function loadCorpus(name: string): Uint8Array[] {
  const dir = join(HERE, "corpus", name);
  const out: Uint8Array[] = [];
  try {
    for (const e of Deno.readDirSync(dir)) if (e.isFile) out.push(Deno.readFileSync(join(dir, e.name)));
  } catch { /* no corpus yet */ }
  return out;
}

async function sha(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const h = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return [...h.slice(0, 8)].map((x) => x.toString(16).padStart(2, "0")).join("");
}

class Worker {
  #child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #lines: AsyncIterator<string>;
  constructor(target: string) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--v8-flags=--max-old-space-size=2560", join(HERE, "worker.ts"), target],
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    this.#writer = this.#child.stdin.getWriter();
    this.#lines = this.#child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(lineSplitter())[
      Symbol.asyncIterator
    ]();
  }
  /** One input: its answer line, or "hang" / "crash" / "rss". */
  async run(input: Uint8Array): Promise<string> {
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, input.length, true);
    try {
      await this.#writer.write(concat(len, input));
    } catch {
      return "crash";
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const hang = new Promise<string>((r) => (timer = setTimeout(() => r("hang"), HANG_MS)));
    const next = this.#lines.next().then((r) => (r.done ? "crash" : r.value));
    const answer = await Promise.race([next, hang]);
    clearTimeout(timer);
    if (answer === "hang" || answer === "crash") return answer;
    const rss = Number(answer.slice(answer.lastIndexOf(" ") + 1));
    if (rss > RSS_LIMIT) return `rss ${rss}`;
    return answer.slice(0, answer.lastIndexOf(" "));
  }
  kill() {
    try {
      this.#child.kill("SIGKILL");
    } catch { /* gone already */ }
    this.#writer.releaseLock();
  }
}

function lineSplitter(): TransformStream<string, string> {
  let rest = "";
  return new TransformStream({
    transform(chunk, ctl) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      for (const p of parts) ctl.enqueue(p);
    },
  });
}

let findings = 0;
const totals: Record<string, number> = {};
for (const name of names) {
  const target = TARGETS[name];
  const corpus = [...target.seeds(), ...loadCorpus(name)];
  let worker = new Worker(name);
  const deadline = performance.now() + seconds * 1000;
  let execs = 0;
  // Every corpus entry once as is, then mutations of random entries.
  while (performance.now() < deadline && execs < maxExecs) {
    const input = execs < corpus.length ? corpus[execs] : mutate(corpus[rand(corpus.length)], corpus, !!target.text);
    const answer = await worker.run(input);
    execs++;
    if (answer === "ok") continue;
    findings++;
    const dir = join(HERE, "findings", name);
    Deno.mkdirSync(dir, { recursive: true });
    const file = join(dir, `${await sha(input.slice())}.bin`);
    Deno.writeFileSync(file, input);
    console.error(`[${name}] FINDING (${answer.split("\\n")[0].slice(0, 300)}): saved ${file}`);
    if (answer !== "ok" && !answer.startsWith("bug")) {
      worker.kill();
      worker = new Worker(name);
    }
  }
  worker.kill();
  totals[name] = execs;
  if (!values.quiet) console.log(`${name}: ${execs} executions in ${seconds} s`);
}
const total = Object.values(totals).reduce((a, b) => a + b, 0);
console.log(JSON.stringify({ total, findings, totals }));
Deno.exit(findings ? 1 : 0);
