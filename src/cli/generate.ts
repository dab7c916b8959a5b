/**
 * `deno task generate [--model PATH] [--backend auto|cpu|cuda] PROMPT`
 *
 * Text generation arrives with the Gemma 3 text model (issue #4) and the default Gemma 3 270M model
 * (issue #6). Until then this command checks its arguments, opens the backend, and says plainly that
 * no model can be loaded yet, exiting non-zero.
 */
import { parseArgs } from "node:util";
import { Backend } from "../runtime/backend.ts";
import { GemmakitError } from "../ffi/errors.ts";
import type { BackendChoice } from "../ffi/library.ts";

const USAGE = `usage: deno task generate [options] PROMPT

  --model PATH        GGUF file or Hugging Face checkpoint directory
  --backend NAME      auto (default), cpu or cuda (also GEMMAKIT_BACKEND)
  --max-tokens N      maximum new tokens (default 256)
  -h, --help          this text

example: deno task generate "Why is the sky blue?"`;

function main(argv: string[]): number {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      model: { type: "string" },
      backend: { type: "string", default: Deno.env.get("GEMMAKIT_BACKEND") ?? "auto" },
      "max-tokens": { type: "string", default: "256" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const prompt = positionals.join(" ").trim();
  if (!prompt) {
    console.error(`generate: no prompt given\n\n${USAGE}`);
    return 2;
  }
  const maxTokens = Number(values["max-tokens"]);
  if (!Number.isInteger(maxTokens) || maxTokens < 1) {
    console.error(`generate: --max-tokens must be a positive integer, got "${values["max-tokens"]}"`);
    return 2;
  }
  using backend = Backend.open({ backend: values.backend as BackendChoice });
  console.error(`backend: ${backend.kind} (${backend.deviceName})`);
  console.error(
    "generate: no model family is implemented yet — this build has the kernel pack and runtime only.\n" +
      "  Gemma 3 text (issue #4) and the default Gemma 3 270M download (issue #6) come next.",
  );
  return 1;
}

try {
  Deno.exit(main(Deno.args));
} catch (e) {
  if (e instanceof GemmakitError || (e instanceof TypeError && "code" in e)) {
    console.error(`generate: ${e.message}`);
    Deno.exit(2);
  }
  throw e;
}
