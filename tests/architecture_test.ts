/**
 * The shape docs/architecture.md describes, checked from the code's own imports: every module imports only
 * from its layer or the layers below, families do not import each other, no files import each other in a
 * circle, and family names appear only in their folders, the registry and the re-exports.
 */
import assert from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";

const ROOT = normalize(join(import.meta.dirname!, ".."));

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(join(ROOT, dir))) {
    const path = join(dir, e.name);
    if (e.isDirectory) out.push(...tsFiles(path));
    else if (e.name.endsWith(".ts")) out.push(path);
  }
  return out;
}

/**
 * The layer of a file, bottom (0) to top. Files may import their own layer and those below.
 * errors, fs helpers and the build driver (build/, which the native installer runs) → ffi and the native-library
 * installer → runtime → leaves (ops, formats, tokenizer, vision, hub) → generate → models/common and the Family
 * interface → the families → registry and loadModel → the CLI.
 */
function layer(file: string): number {
  const parts = file.split("/");
  if (file === "src/errors.ts" || file === "src/fs.ts" || parts[0] === "build") return 0;
  const ranks: Record<string, number> = {
    ffi: 1,
    native: 1,
    runtime: 2,
    ops: 3,
    formats: 3,
    tokenizer: 3,
    vision: 3,
    hub: 3,
  };
  if (parts[1] in ranks) return ranks[parts[1]];
  if (parts[1] === "generate") return 4;
  if (parts[1] === "models") {
    if (parts[2] === "common" || file === "src/models/family.ts") return 5;
    return parts.length === 4 ? 6 : 7; // a family's folder, or registry / load / resolve
  }
  if (parts[1] === "cli") return 8;
  throw new Error(`${file}: no layer; place it in docs/architecture.md and in this test`);
}

/** The leaves of layer 3 are independent of each other. */
const leaf = (file: string) => layer(file) === 3 ? file.split("/")[1] : undefined;
const family = (file: string) =>
  file.startsWith("src/models/") && file.split("/").length === 4 ? file.split("/")[2] : undefined;

const IMPORT = /(?:import|export)\s[^;]*?from\s*"(\.{1,2}\/[^"]+)"|import\s*\(\s*"(\.{1,2}\/[^"]+)"/g;
const files = tsFiles("src");
const graph = new Map(files.map((f) => {
  const text = Deno.readTextFileSync(join(ROOT, f));
  const deps = [...text.matchAll(IMPORT)].map((m) => relative(ROOT, join(ROOT, dirname(f), m[1] ?? m[2])));
  return [f, deps];
}));

Deno.test("architecture: no module imports from a layer above it, or from another leaf or family", () => {
  const problems: string[] = [];
  for (const [f, deps] of graph) {
    for (const d of deps) {
      if (layer(d) > layer(f)) problems.push(`${f} (layer ${layer(f)}) imports ${d} (layer ${layer(d)})`);
      if (leaf(f) && leaf(d) && leaf(f) !== leaf(d)) problems.push(`${f} imports the other leaf ${d}`);
      if (family(f) && family(d) && family(f) !== family(d) && family(d) !== "common") {
        problems.push(`${f} imports the other family's ${d}`);
      }
    }
  }
  assert.deepEqual(problems, []);
});

Deno.test("architecture: no import circles between files", () => {
  const circles: string[] = [];
  const state = new Map<string, "open" | "done">();
  const visit = (f: string, path: string[]) => {
    state.set(f, "open");
    for (const d of graph.get(f) ?? []) {
      if (state.get(d) === "open") circles.push([...path.slice(path.indexOf(d)), d].join(" -> "));
      else if (!state.has(d)) visit(d, [...path, d]);
    }
    state.set(f, "done");
  };
  for (const f of files) if (!state.has(f)) visit(f, [f]);
  assert.deepEqual(circles, []);
});

Deno.test("architecture: family names appear only in their folders and the registry", () => {
  const outside: string[] = [];
  for (const f of files) {
    const text = Deno.readTextFileSync(join(ROOT, f)).toLowerCase();
    for (const name of ["gemma3", "gemma4"]) {
      if (text.includes(name) && !f.startsWith(`src/models/${name}/`) && f !== "src/models/registry.ts") {
        outside.push(`${f} mentions ${name}`);
      }
    }
  }
  assert.deepEqual(outside, []);
});

Deno.test("architecture: the test sees the tree (guards against an empty walk)", () => {
  assert.ok(files.length > 80, `${files.length} files under src/`);
  assert.ok([...graph.values()].flat().length > 200);
});
