/**
 * `deno task chat`: an interactive conversation with a model (the default model unless --model), streamed to
 * stdout. The history stays in the model's KV cache between turns, so a turn costs its new tokens only. Works on
 * a terminal and piped (no prompts are printed then; one message per line, EOF ends). Exit codes as generate's.
 */
import { parseArgs } from "node:util";
import { GemmakitError } from "../errors.ts";
import type { BackendChoice } from "../ffi/library.ts";
import type { GenerationResult } from "../generate/result.ts";
import type { ChatSession, UserContent } from "../generate/session.ts";
import { loadModel } from "../models/load.ts";
import { stderrProgress } from "../hub/progress.ts";
import { responsePrinter } from "./response_printer.ts";
import { MMPROJ_USAGE, mmprojOption, number, runMain, UsageError } from "./common.ts";

const USAGE = `usage: deno task chat [options]

  --model PATH|REPO       a GGUF file, a checkpoint directory, or a hub repo id; default: Gemma 3 270M
                          Q4_K_M (a base model: it chats in Gemma 3's turn format)
${MMPROJ_USAGE}
  --system TEXT           a system prompt (kept when old turns are dropped to fit the context)
  --max-tokens N          most new tokens per answer (default 512)
  --temperature T  --top-k K  --top-p P  --seed N   sampling (default: the checkpoint's, greedy for GGUF)
  --stats                 print tokens and tok/s after each answer (toggle with /stats)
  --backend auto|cpu|cuda (default auto, or GEMMAKIT_BACKEND)
  --max-context N         KV cache length (default min(model limit, 8192))
  -h, --help

In the chat:
  a line ending in \\ continues on the next line; """ on a line of its own opens and closes a block
  /image PATH   attach an image to the next message (models with a vision tower)
  /reset        forget the conversation        /stats   toggle tok/s after each answer
  /save PATH    save the conversation and its KV cache      /load PATH   restore one
  /exit         leave (or Ctrl-D)
Ctrl-C stops an answer; a second Ctrl-C (or one at the prompt) exits.`;

/** Lines of stdin as they arrive (null at EOF). */
function lineReader(): () => Promise<string | null> {
  const reader = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "", done = false;
  return async () => {
    while (true) {
      const nl = buffer.indexOf("\n");
      if (nl >= 0) {
        const line = buffer.slice(0, nl).replace(/\r$/, "");
        buffer = buffer.slice(nl + 1);
        return line;
      }
      if (done) {
        if (!buffer) return null;
        const line = buffer;
        buffer = "";
        return line;
      }
      const r = await reader.read();
      if (r.done) done = true;
      else buffer += r.value;
    }
  };
}

export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: "string" },
      mmproj: { type: "string" },
      "no-mmproj": { type: "boolean" },
      system: { type: "string" },
      "max-tokens": { type: "string" },
      temperature: { type: "string" },
      "top-k": { type: "string" },
      "top-p": { type: "string" },
      seed: { type: "string" },
      stats: { type: "boolean" },
      backend: { type: "string" },
      "max-context": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const backend = values.backend ?? Deno.env.get("GEMMAKIT_BACKEND") ?? "auto";
  if (!["auto", "cpu", "cuda"].includes(backend)) throw new UsageError(`--backend must be auto, cpu or cuda`);
  const defaults = {
    maxTokens: number(values, "max-tokens", true) ?? 512,
    temperature: number(values, "temperature"),
    topK: number(values, "top-k", true),
    topP: number(values, "top-p"),
    seed: number(values, "seed", true),
  };
  const tty = Deno.stdin.isTerminal();
  const enc = new TextEncoder();
  const write = (t: string) => Deno.stdout.writeSync(enc.encode(t));
  const note = (t: string) => Deno.stderr.writeSync(enc.encode(`${t}\n`));

  const mmproj = mmprojOption(values);
  using model = await loadModel(values.model, {
    backend: backend as BackendChoice,
    mmproj,
    maxContext: number(values, "max-context", true),
    onDownload: stderrProgress(),
  });
  if (!model.canChat) throw new GemmakitError("chat", "this checkpoint has no chat template and no turn format");
  if (model.chatNote) note(`note: ${model.chatNote}`);
  const chat: ChatSession = model.chat({
    system: values.system,
    defaults: Object.fromEntries(Object.entries(defaults).filter(([, v]) => v !== undefined)),
  });
  let stats = values.stats ?? false;
  let images: string[] = [];

  // Ctrl-C: stops a running answer; at the prompt, or a second time, it exits.
  let answer: AbortController | undefined;
  const onInterrupt = () => {
    if (answer && !answer.signal.aborted) return answer.abort();
    write("\n");
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onInterrupt);

  const readLine = lineReader();
  /** One message: continued lines (trailing \) and """ blocks joined; null at EOF. */
  const readMessage = async (): Promise<string | null> => {
    if (tty) write("> ");
    const first = await readLine();
    if (first === null) return null;
    if (first.trim() === '"""') {
      const lines: string[] = [];
      while (true) {
        if (tty) write("… ");
        const line = await readLine();
        if (line === null || line.trim() === '"""') return lines.join("\n");
        lines.push(line);
      }
    }
    let text = first;
    while (text.endsWith("\\")) {
      if (tty) write("… ");
      const line = await readLine();
      text = text.slice(0, -1) + "\n" + (line ?? "");
      if (line === null) break;
    }
    return text;
  };

  const printer = responsePrinter({ write, ansi: Deno.stdout.isTerminal() });
  while (true) {
    const message = await readMessage();
    if (message === null) break;
    const text = message.trim();
    if (!text) continue;
    if (text.startsWith("/")) {
      const [command, ...rest] = text.split(/\s+/);
      const arg = rest.join(" ");
      try {
        if (command === "/exit" || command === "/quit") break;
        else if (command === "/reset") {
          chat.reset();
          images = [];
          note("[conversation reset]");
        } else if (command === "/stats") {
          stats = !stats;
          note(`[stats ${stats ? "on" : "off"}]`);
        } else if (command === "/image") {
          if (!model.supportsImages) note("[this model has no vision tower: it does not take images]");
          else if (!arg) note("[usage: /image PATH]");
          else {
            await Deno.stat(arg);
            images.push(arg);
            note(`[image attached to the next message: ${arg}]`);
          }
        } else if (command === "/save" || command === "/load") {
          if (!arg) note(`[usage: ${command} PATH]`);
          else if (command === "/save") {
            await chat.save(arg);
            note(`[saved ${chat.history.length} messages to ${arg}]`);
          } else {
            await chat.load(arg);
            note(`[loaded ${chat.history.length} messages from ${arg}]`);
          }
        } else if (command === "/help") note(USAGE.slice(USAGE.indexOf("In the chat:")));
        else note(`[unknown command ${command}; /help lists them]`);
      } catch (e) {
        note(`[${command}: ${e instanceof Error ? e.message : e}]`);
      }
      continue;
    }
    const content: UserContent = images.length
      ? [...images.map((path) => ({ type: "image", path })), { type: "text", text: message }]
      : message;
    images = [];
    answer = new AbortController();
    let result: GenerationResult | undefined;
    try {
      result = await chat.promptWithResult(content, {
        signal: answer.signal,
        ...(model.parsesResponses ? { onEvent: printer.onEvent } : { onText: write }),
      });
    } catch (e) {
      note(`\n[error: ${e instanceof Error ? e.message : e}]`);
    } finally {
      printer.end();
      answer = undefined;
    }
    write("\n");
    if (result?.finishReason === "abort") note("[stopped]");
    if (result && stats) {
      const t = result.timings;
      note(
        `[${result.completionTokens} tokens at ${t.decodeTokensPerSecond.toFixed(1)} tok/s; prompt ` +
          `${result.promptTokens} tokens (${result.cachedTokens} from the cache) in ${t.prefillMs.toFixed(0)} ms]`,
      );
    }
  }
  Deno.removeSignalListener("SIGINT", onInterrupt);
  return 0;
}

if (import.meta.main) await runMain("chat", () => main(Deno.args));
