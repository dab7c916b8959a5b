/**
 * src/ffi/symbols.ts mirrors kernels/include/gemmakit.h by hand; this test reads the header and checks every
 * GK_API entry against the table: the same names, and for each the same arity, parameter kinds and result.
 * A mismatch would otherwise be found only as a crash (or silent garbage) at the FFI boundary.
 */
import assert from "node:assert/strict";
import { ABI_VERSION, symbols } from "../../src/ffi/symbols.ts";

const HEADER = new URL("../../kernels/include/gemmakit.h", import.meta.url);

/** The FFI kinds a C type may be declared as: pointers as "pointer" or "buffer", scalars as their own. */
function kindsOf(cType: string): readonly string[] {
  const t = cType.replace(/\bconst\b/g, "").replace(/\s+/g, " ").trim();
  if (t.includes("*")) return ["pointer", "buffer"];
  const scalar: Record<string, string> = {
    int32_t: "i32",
    gk_status: "i32",
    gk_dtype: "i32",
    gk_norm_mode: "i32",
    int: "i32",
    uint32_t: "u32",
    int64_t: "i64",
    uint64_t: "u64",
    float: "f32",
    double: "f64",
    void: "void",
  };
  const kind = scalar[t];
  if (!kind) throw new Error(`the test does not know the C type "${cType}": add it to kindsOf`);
  return [kind];
}

interface CDecl {
  name: string;
  result: string;
  params: { type: string; name: string }[];
}

/** Every `GK_API <result> <name>(<params>);` of the header, comments removed. */
function parseHeader(text: string): CDecl[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, " ").replace(/\/\/.*$/gm, " ");
  const decls: CDecl[] = [];
  for (const m of code.matchAll(/GK_API\s+([^;(]*?)\b(gk_\w+)\s*\(([^)]*)\)\s*;/g)) {
    const [, result, name, list] = m;
    const params = list.trim() === "void" || list.trim() === "" ? [] : list.split(",").map((p) => {
      const pm = p.trim().match(/^(.*?)(\w+)(\s*\[\s*\d*\s*\])?$/s);
      if (!pm) throw new Error(`${name}: cannot read the parameter "${p.trim()}"`);
      // `T name[]` is a pointer too.
      return { type: pm[1].trim() + (pm[3] ? "*" : ""), name: pm[2] };
    });
    decls.push({ name, result: result.trim(), params });
  }
  return decls;
}

const header = Deno.readTextFileSync(HEADER);
const decls = parseHeader(header);

Deno.test("ffi: the header parses into every GK_API entry", () => {
  const count = header.split("\n").filter((l) => /^\s*GK_API\s/.test(l)).length;
  assert.equal(decls.length, count, "every GK_API line must parse as one declaration");
  assert.ok(decls.length > 40, `only ${decls.length} entries read`);
});

type Entry = { name?: string; parameters: readonly string[]; result: string };
/** Table entries by the C name they bind (an entry may bind another name, e.g. a nonblocking twin). */
const entries = Object.entries(symbols as Record<string, Entry>).map(([key, e]) => ({ key, c: e.name ?? key, ...e }));

Deno.test("ffi: symbols.ts names exactly the header's GK_API entries", () => {
  const inHeader = new Set(decls.map((d) => d.name));
  const inTable = new Set(entries.map((e) => e.c));
  assert.deepEqual([...inHeader].filter((n) => !inTable.has(n)), [], "declared in the header, missing in symbols.ts");
  assert.deepEqual([...inTable].filter((n) => !inHeader.has(n)), [], "in symbols.ts, not declared in the header");
});

Deno.test("ffi: each symbol's arity, parameter kinds and result match its C declaration", () => {
  const problems: string[] = [];
  for (const s of entries) {
    const d = decls.find((d) => d.name === s.c);
    if (!d) continue;
    if (s.parameters.length !== d.params.length) {
      problems.push(`${s.key}: ${s.parameters.length} parameters in symbols.ts, ${d.params.length} in the header`);
      continue;
    }
    d.params.forEach((p, i) => {
      const allowed = kindsOf(p.type);
      if (!allowed.includes(s.parameters[i])) {
        problems.push(`${s.key} parameter ${i} (${p.type} ${p.name}): "${s.parameters[i]}", expected ${allowed}`);
      }
    });
    const result = kindsOf(d.result);
    if (!result.includes(s.result)) problems.push(`${s.key} result (${d.result}): "${s.result}", expected ${result}`);
  }
  assert.deepEqual(problems, []);
});

Deno.test("ffi: ABI_VERSION matches the header's GK_ABI_VERSION", () => {
  const m = header.match(/#define GK_ABI_VERSION (\d+)/);
  assert.ok(m, "GK_ABI_VERSION is not defined in the header");
  assert.equal(ABI_VERSION, Number(m[1]));
});
