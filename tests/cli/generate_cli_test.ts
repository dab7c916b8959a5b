/** `deno task generate` end to end on a fixture model, in a child process: output, summary, exit codes. */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;
const MODEL = `${ROOT}tests/fixtures/gemma3-text-mixed`;

async function cli(args: string[], stdin?: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", `${ROOT}deno.json`, `${ROOT}src/cli/generate.ts`, ...args],
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: { GEMMAKIT_BACKEND: "cpu" },
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("generate streams a greedy answer and prints a speed summary", async () => {
  const r = await cli(["--model", MODEL, "--prompt", "hi", "--max-tokens", "12", "--temperature", "0"]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdout.trim().length > 0, "no text on stdout");
  assert.match(
    r.stderr,
    /\[cpu\] prompt \d+ tokens at [\d.]+ tok\/s, generated \d+ at [\d.]+ tok\/s .* finish: (length|stop)/,
  );
  // The same prompt from stdin gives the same text: greedy decoding is deterministic.
  const again = await cli(["--model", MODEL, "--max-tokens", "12", "--temperature", "0"], "hi");
  assert.equal(again.stdout, r.stdout);
});

Deno.test("exit codes: 2 for bad arguments, 3 for a bad model", async () => {
  const noPrompt = await cli(["--model", MODEL]);
  assert.equal(noPrompt.code, 2);
  assert.match(noPrompt.stderr, /no prompt/);
  const badFlag = await cli(["--model", MODEL, "--temperature", "warm", "hi"]);
  assert.equal(badFlag.code, 2);
  assert.match(badFlag.stderr, /--temperature must be a number, got "warm"/);
  const unknown = await cli(["--frobnicate", "hi"]);
  assert.equal(unknown.code, 2);
  const missing = await cli(["--model", "/nonexistent/model", "hi"]);
  assert.equal(missing.code, 3);
  assert.match(missing.stderr, /bad model: model: \/nonexistent\/model does not exist/);
  const help = await cli(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /examples: deno task generate "Why is the sky blue\?"/);
});
