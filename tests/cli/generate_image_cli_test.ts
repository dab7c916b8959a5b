/** `deno task generate --image` end to end on the tiny Gemma 3 vision fixture, in a child process. */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;
const MODEL = `${ROOT}tests/fixtures/gemma3-vision-tiny`;
const TEXT_MODEL = `${ROOT}tests/fixtures/gemma3-text-mixed`;

async function cli(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", `${ROOT}deno.json`, `${ROOT}src/cli/generate.ts`, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { GEMMAKIT_BACKEND: "cpu" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("generate --image (repeatable) describes images with the tiny multimodal fixture", async () => {
  const expected = JSON.parse(Deno.readTextFileSync(`${MODEL}/expected.json`));
  const one = await cli([
    "--model",
    MODEL,
    "--image",
    `${MODEL}/landscape.png`,
    "--prompt",
    "Describe",
    "--max-tokens",
    "12",
    "--temperature",
    "0",
  ]);
  assert.equal(one.code, 0, one.stderr);
  // The same prompt as the fixture's one-image record: as many prompt tokens, and its greedy text.
  assert.match(one.stderr, new RegExp(`prompt ${expected.one_image.input_ids.length} tokens`));
  assert.ok(one.stdout.trim().length > 0, "no text on stdout");
  assert.ok(
    expected.one_image.greedy.text_skip_special.startsWith(one.stdout.replace(/\n$/, "")),
    `${JSON.stringify(one.stdout)} is not transformers' ${JSON.stringify(expected.one_image.greedy.text_skip_special)}`,
  );

  const two = await cli([
    "--model",
    MODEL,
    "--image",
    `${MODEL}/landscape.png`,
    "--image",
    `${MODEL}/square.png`,
    "--prompt",
    "Compare",
    "--max-tokens",
    "4",
  ]);
  assert.equal(two.code, 0, two.stderr);
  // Two images of 16 soft tokens plus their markers and newlines: well over the one-image prompt.
  const n = Number(/prompt (\d+) tokens/.exec(two.stderr)![1]);
  assert.ok(n > expected.one_image.input_ids.length + 16, `${n} prompt tokens`);
});

Deno.test("generate --image: a text-only model or a missing file is a clear error", async () => {
  const text = await cli(["--model", TEXT_MODEL, "--image", `${MODEL}/square.png`, "--prompt", "hi"]);
  assert.equal(text.code, 1);
  assert.match(text.stderr, /no vision tower/);
  const missing = await cli(["--model", MODEL, "--image", `${MODEL}/nope.png`, "--prompt", "hi"]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /nope\.png/);
  const raw = await cli(["--model", MODEL, "--raw", "--image", `${MODEL}/square.png`, "hi"]);
  assert.equal(raw.code, 2);
});
