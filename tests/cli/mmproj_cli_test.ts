/**
 * `--mmproj` / `--no-mmproj` on `deno task generate` and the example server, in child processes: bad
 * combinations are usage errors (exit 2), a projector that does not fit the model is a bad model (exit 3, both
 * files named), and a text-only GGUF's image prompt names --mmproj. (The tiny fixture pair's "gpt2" vocabulary is
 * not read by gemmakit's GGUF tokenizer, so a full image answer through the CLI is tested on the library path in
 * tests/models/gemma3_mmproj_load_test.ts.)
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;
const PAIR = `${ROOT}tests/fixtures/gemma3-vision-gguf`;
const G4_MMPROJ = `${ROOT}tests/fixtures/gemma4-vision-gguf/mmproj-gemma4-f32.gguf`;

async function run(script: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", `${ROOT}deno.json`, `${ROOT}${script}`, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { GEMMAKIT_BACKEND: "cpu" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("generate: --mmproj with --no-mmproj is a usage error; the help lists both", async () => {
  const both = await run("src/cli/generate.ts", ["--mmproj", "x.gguf", "--no-mmproj", "hi"]);
  assert.equal(both.code, 2, both.stderr);
  assert.match(both.stderr, /--mmproj and --no-mmproj exclude each other/);
  const help = await run("src/cli/generate.ts", ["--help"]);
  assert.match(help.stdout, /--mmproj FILE/);
  assert.match(help.stdout, /--no-mmproj/);
});

Deno.test("generate: another family's projector is a bad model (exit 3) naming both files", async () => {
  const r = await run("src/cli/generate.ts", ["--model", `${PAIR}/model-f32.gguf`, "--mmproj", G4_MMPROJ, "hi"]);
  assert.equal(r.code, 3, r.stderr);
  assert.match(
    r.stderr,
    /mmproj-gemma4-f32\.gguf is a vision projector of type "gemma4v", but the model .*model-f32\.gguf/,
  );
  assert.match(r.stderr, /--no-mmproj/);
});

Deno.test("server: --mmproj with --no-mmproj is a usage error (exit 2)", async () => {
  const r = await run("examples/server/main.ts", ["--mmproj", "x.gguf", "--no-mmproj", "--port", "0"]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /--mmproj and --no-mmproj exclude each other/);
});
