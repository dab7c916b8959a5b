/**
 * Structured output by constrained decoding: a JSON Schema, "any JSON object" or an EBNF grammar compiled by
 * xgrammar (the MLC project's engine, its WebAssembly build from npm: no native build) into a matcher that
 * gives the allowed-token bitmask of each step; the token loop applies it to the logits on the device
 * (gk_logits_process). Why xgrammar and the measured mask times: docs/structured-output.md.
 * @module
 */
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { ConstraintError } from "../errors.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import type { TokenConstraint } from "./result.ts";

/** What the answer must be: OpenAI's response_format, or a grammar. */
export type ResponseFormat =
  | { type: "text" }
  | { type: "json_object" }
  | { type: "json_schema"; schema: Record<string, unknown> | boolean }
  /**
   * An EBNF grammar in xgrammar's (GBNF-like) syntax, `root` its start rule. `specialTokens` (a family's markers,
   * by their text) are written in the grammar as `\uE000`, `\uE001`, ... in that order ({@link specialTokenChar}):
   * each stands for that one token, so a marker cannot be spelled out of ordinary pieces that decode to the same
   * text but that no parser would read as the marker. Other special tokens stay out of the answer.
   */
  | { type: "grammar"; grammar: string; specialTokens?: readonly string[] };

/**
 * Control characters stand for special tokens in grammars: ordinary pieces with control characters are out of
 * every vocabulary here (below), so nothing else can write them. Not private-use characters: xgrammar matches a
 * negated class like [^\uE002] byte by byte, so the three UTF-8 bytes of U+E002 pass it (measured: a string
 * could then swallow its own closing delimiter); a one-byte character cannot.
 */
const SPECIAL_BASE = 0x01;
const MAX_SPECIALS = 8;

/** How a grammar writes `specialTokens[index]`, as an xgrammar string-literal escape. */
export function specialTokenChar(index: number): string {
  if (index >= MAX_SPECIALS) throw new ConstraintError(`a grammar may name at most ${MAX_SPECIALS} special tokens`);
  return `\\u${(SPECIAL_BASE + index).toString(16).padStart(4, "0")}`;
}

/** A constraint for one generation; free it with dispose() (the matcher lives in WebAssembly memory). */
export interface DisposableConstraint extends TokenConstraint {
  dispose(): void;
}

// deno-lint-ignore no-explicit-any
type Xgr = any;
let module: Promise<Xgr> | undefined;

/**
 * The package ships one UMD file whose Node branch calls `require`, inside a package marked "type": "module",
 * so neither import nor require loads it as is: it is evaluated as the CommonJS module it is.
 */
function xgrammar(): Promise<Xgr> {
  module ??= (async () => {
    await import("@mlc-ai/web-xgrammar/package.json", { with: { type: "json" } }); // fetches the package
    // Resolved through the import map to the file in Deno's npm cache. Not `createRequire(import.meta.url)`: when
    // gemmakit itself is imported by URL, its modules are not files and createRequire refuses them.
    const file = fileURLToPath(import.meta.resolve("@mlc-ai/web-xgrammar"));
    const require = createRequire(file);
    const m = { exports: {} as Xgr };
    new Function("exports", "module", "require", "__filename", "__dirname", await Deno.readTextFile(file))(
      m.exports,
      m,
      require,
      file,
      file.replace(/[/\\][^/\\]*$/, ""),
    );
    return m.exports;
  })();
  return module;
}

interface Compiler {
  compiler: Xgr;
  /** Compiled grammars by request, so a repeated schema compiles once. */
  cache: Map<string, CachedGrammar>;
}

/**
 * A compiled grammar lives in WebAssembly memory, which no garbage collector frees. Matchers made from it count
 * as its users: evicted from the cache, it is freed at once when none is left, else when the last one is disposed.
 */
interface CachedGrammar {
  compiled: Promise<Xgr>;
  users: number;
  evicted: boolean;
}

let liveGrammars = 0;

/** Compiled grammars not yet freed (cached or still used by a matcher): for tests of the cache's bound. */
export function liveCompiledGrammars(): number {
  return liveGrammars;
}

function release(entry: CachedGrammar): void {
  if (!entry.evicted || entry.users > 0) return;
  entry.compiled.then((g) => {
    g.dispose();
    liveGrammars--;
  }, () => {/* a failed compile holds no memory */});
}
const compilers = new WeakMap<Tokenizer, Map<string, Promise<Compiler>>>();
const MAX_CACHED = 64;

/**
 * The tokenizer's vocabulary as xgrammar reads it: byte-fallback pieces, "" for ids never allowed as text, and
 * the `specials` a grammar writes as private-use characters (see ResponseFormat).
 */
function compilerFor(tokenizer: Tokenizer, vocabSize: number, specials: readonly string[] = []): Promise<Compiler> {
  let bySize = compilers.get(tokenizer);
  if (!bySize) compilers.set(tokenizer, bySize = new Map());
  const key = JSON.stringify([vocabSize, specials]);
  let c = bySize.get(key);
  if (!c) {
    c = (async () => {
      const x = await xgrammar();
      const stops = new Set(tokenizer.stopTokenIds);
      const special = new Map<number, string>();
      specials.forEach((text, k) => {
        const id = tokenizer.tokenToId(text);
        if (id === undefined) throw new ConstraintError(`the grammar's special token ${text} is not in the vocabulary`);
        special.set(id, String.fromCharCode(SPECIAL_BASE + k));
      });
      const vocab = Array.from({ length: vocabSize }, (_, i) => {
        if (special.has(i)) return special.get(i)!;
        if (i >= tokenizer.vocabSize || (tokenizer.isSpecialId(i) && !stops.has(i))) return "";
        const token = tokenizer.idToToken(i) ?? "";
        // Left out of constrained answers: a non-ASCII fallback byte is a piece of a character the matcher checks
        // only structurally (it accepted sequences that decode to U+FFFD, each counted as one character against
        // maxLength), and control characters (its JSON strings let U+0014 through, which JSON.parse refuses). Every
        // character a model writes in practice has whole tokens; newline stays (JSON whitespace, never inside a string).
        const byte = tokenizer.isByteFallbackId(i) ? /^<0x([0-9A-F]{2})>$/i.exec(token) : null;
        if (byte && parseInt(byte[1], 16) >= 0x80) return "";
        // deno-lint-ignore no-control-regex
        if (/[\x00-\x09\x0b-\x1f\x7f]/.test(byte ? String.fromCharCode(parseInt(byte[1], 16)) : token)) return "";
        return token;
      });
      const info = await x.TokenizerInfo.createTokenizerInfo(vocab, "byte_fallback", false, vocabSize, [...stops]);
      return { compiler: await x.GrammarCompiler.createGrammarCompiler(info, true), cache: new Map() };
    })();
    bySize.set(key, c);
  }
  return c;
}

/** Compiles `format` for the tokenizer (first use: about 2 s to index a 262k vocabulary; then cached). */
export async function compileConstraint(
  tokenizer: Tokenizer,
  vocabSize: number,
  format: ResponseFormat,
): Promise<DisposableConstraint | undefined> {
  if (format.type === "text") return undefined;
  const { compiler, cache } = await compilerFor(
    tokenizer,
    vocabSize,
    format.type === "grammar" ? format.specialTokens : undefined,
  );
  const key = JSON.stringify(format);
  let entry = cache.get(key);
  if (!entry) {
    // Cached before its compile starts, so a compile that fails at once still finds itself to remove.
    const fresh: CachedGrammar = { compiled: Promise.resolve(), users: 0, evicted: false };
    if (cache.size >= MAX_CACHED) {
      const [oldestKey, oldest] = cache.entries().next().value!;
      cache.delete(oldestKey);
      oldest.evicted = true;
      release(oldest);
    }
    cache.set(key, fresh);
    fresh.compiled = (async () => {
      try {
        let g: Xgr;
        if (format.type === "json_object") g = await compiler.compileBuiltinJSONGrammar();
        else if (format.type === "json_schema") {
          // Compact JSON (no free whitespace: a model cannot pad forever), every declared property in order.
          g = await compiler.compileJSONSchema(JSON.stringify(format.schema), false, undefined, undefined, true);
        } else g = await compiler.compileGrammar(format.grammar, "root");
        liveGrammars++;
        return g;
      } catch (e) {
        if (cache.get(key) === fresh) cache.delete(key);
        const what = format.type === "grammar" ? "grammar" : "JSON Schema";
        throw new ConstraintError(`the ${what} does not compile: ${e instanceof Error ? e.message : e}`, {
          hint: format.type === "grammar"
            ? "write it in xgrammar's EBNF (GBNF-like) syntax with a `root` rule"
            : "use the JSON Schema subset structured-output engines support (types, properties, required, enum, " +
              "const, items, anyOf, $ref, string/number bounds)",
          cause: e,
        });
      }
    })();
    entry = fresh;
  }
  const held = entry;
  held.users++;
  let matcher: Xgr;
  try {
    const x = await xgrammar();
    matcher = await x.GrammarMatcher.createGrammarMatcher(await held.compiled);
  } catch (e) {
    held.users--;
    release(held);
    throw e;
  }
  let disposed = false;
  return {
    nextMask: () => matcher.getNextTokenBitmask(),
    accept: (id: number) => void matcher.acceptToken(id),
    dispose: () => {
      if (disposed) return;
      disposed = true;
      matcher.dispose();
      held.users--;
      release(held);
    },
  };
}
