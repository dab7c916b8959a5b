/** `deno task generate` flags for Gemma 4 chat: --think, --hide-reasoning, --tools, in a child process. */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;
const GEMMA3 = `${ROOT}tests/fixtures/gemma3-text-mixed`;
const GEMMA4 = `${ROOT}tests/fixtures/gemma4-text-e`;

async function cli(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", `${ROOT}deno.json`, `${ROOT}src/cli/generate.ts`, ...args],
    stdin: "null",
    env: { GEMMAKIT_BACKEND: "cpu" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("generate: --think/--tools need the chat template; a bad --tools file is a usage error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const raw = await cli(["--model", GEMMA3, "--raw", "--think", "hi"]);
    assert.equal(raw.code, 2, raw.stderr);
    assert.match(raw.stderr, /--think and --tools need the chat template/);
    await Deno.writeTextFile(`${dir}/bad.json`, '[{"name": "add"}]');
    const bad = await cli(["--model", GEMMA3, "--tools", `${dir}/bad.json`, "hi"]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /tools\[0\] must be \{type: "function"/);
    const missing = await cli(["--model", GEMMA3, "--tools", `${dir}/none.json`, "hi"]);
    assert.equal(missing.code, 2, missing.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("generate: --think --hide-reasoning on a Gemma 3 model streams the same greedy text", async () => {
  const args = ["--model", GEMMA3, "--prompt", "hi", "--max-tokens", "8", "--temperature", "0"];
  const plain = await cli(args);
  const think = await cli([...args, "--think", "--hide-reasoning"]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(think.code, 0, think.stderr);
  // Gemma 3's template ignores enable_thinking and has no response parser: output unchanged.
  assert.equal(think.stdout, plain.stdout);
});

// Until the Gemma 4 loader lands (another piece of work) the checkpoint does not load: then the test is
// ignored with the reason printed, not passed. The printer itself is tested in response_printer_test.ts.
const probe = await cli(["--model", GEMMA4, "--prompt", "hi", "--max-tokens", "2", "--temperature", "0"]);
const gemma4Missing = probe.code === 3 ? probe.stderr.trim().split("\n").at(-1) : undefined;
if (gemma4Missing) console.log(`ignoring the Gemma 4 CLI test: ${GEMMA4} does not load yet (${gemma4Missing})`);

Deno.test(
  { name: "generate: a Gemma 4 checkpoint runs with --think and --tools", ignore: !!gemma4Missing },
  async () => {
    assert.equal(probe.code, 0, probe.stderr);
    const dir = await Deno.makeTempDir();
    try {
      const tools = [{ type: "function", function: { name: "add", parameters: { type: "object", properties: {} } } }];
      await Deno.writeTextFile(`${dir}/tools.json`, JSON.stringify(tools));
      const r = await cli([
        "--model",
        GEMMA4,
        "--prompt",
        "hi",
        "--max-tokens",
        "8",
        "--temperature",
        "0",
        "--think",
        "--tools",
        `${dir}/tools.json`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /finish: (length|stop)/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
