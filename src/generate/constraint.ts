/**
 * Structured output by constrained decoding: a JSON Schema, "any JSON object" or an EBNF grammar compiled by
 * xgrammar (the MLC project's engine, its WebAssembly build from npm: no native build) into a matcher that
 * gives the allowed-token bitmask of each step; the token loop applies it to the logits on the device
 * (gk_logits_process). Why xgrammar and the measured mask times: docs/structured-output.md.
 * @module
 */
import { createRequire } from "node:module";
import { ConstraintError } from "../errors.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import type { TokenConstraint } from "./result.ts";

/** What the answer must be: OpenAI's response_format, or a grammar. */
export type ResponseFormat =
  | { type: "text" }
  | { type: "json_object" }
  | { type: "json_schema"; schema: Record<string, unknown> | boolean }
  /** An EBNF grammar in xgrammar's (GBNF-like) syntax, `root` its start rule. */
  | { type: "grammar"; grammar: string };

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
    const require = createRequire(import.meta.url);
    const file = require.resolve("@mlc-ai/web-xgrammar/lib/index.js");
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
  cache: Map<string, Promise<Xgr>>;
}
const compilers = new WeakMap<Tokenizer, Map<number, Promise<Compiler>>>();
const MAX_CACHED = 64;

/** The tokenizer's vocabulary as xgrammar reads it: byte-fallback pieces, "" for ids never allowed as text. */
function compilerFor(tokenizer: Tokenizer, vocabSize: number): Promise<Compiler> {
  let bySize = compilers.get(tokenizer);
  if (!bySize) compilers.set(tokenizer, bySize = new Map());
  let c = bySize.get(vocabSize);
  if (!c) {
    c = (async () => {
      const x = await xgrammar();
      const stops = new Set(tokenizer.stopTokenIds);
      const vocab = Array.from({ length: vocabSize }, (_, i) => {
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
    bySize.set(vocabSize, c);
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
  const { compiler, cache } = await compilerFor(tokenizer, vocabSize);
  const key = JSON.stringify(format);
  let compiled = cache.get(key);
  if (!compiled) {
    compiled = (async () => {
      try {
        if (format.type === "json_object") return await compiler.compileBuiltinJSONGrammar();
        if (format.type === "json_schema") {
          // Compact JSON (no free whitespace: a model cannot pad forever), every declared property in order.
          return await compiler.compileJSONSchema(JSON.stringify(format.schema), false, undefined, undefined, true);
        }
        return await compiler.compileGrammar(format.grammar, "root");
      } catch (e) {
        cache.delete(key);
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
    if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value!);
    cache.set(key, compiled);
  }
  const x = await xgrammar();
  const matcher = await x.GrammarMatcher.createGrammarMatcher(await compiled);
  return {
    nextMask: () => matcher.getNextTokenBitmask(),
    accept: (id: number) => void matcher.acceptToken(id),
    dispose: () => matcher.dispose(),
  };
}
