/**
 * `deno task bench --chat`: time to first token of turn N of a conversation, cold (the whole conversation
 * prefilled) against reused (the history's KV taken from the previous turn, only the new turn prefilled), for
 * histories of several lengths, on the default model (or --model).
 *
 *   deno task bench --chat [--model PATH] [--history 500,2000,8000] [--runs 3] [--backend cpu|cuda]
 *
 * TTFT is the wall time of a generate() call with maxTokens 1: rendering and tokenizing the conversation,
 * the prefill and the first sampled token.
 */
import { parseArgs } from "node:util";
import { loadModel } from "../../src/models/load.ts";
import type { ChatMessage } from "../../src/tokenizer/chat_template.ts";
import type { BackendChoice } from "../../src/ffi/library.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    chat: { type: "boolean" },
    model: { type: "string" },
    history: { type: "string", default: "500,2000,8000" },
    runs: { type: "string", default: "3" },
    backend: { type: "string", default: "auto" },
    threads: { type: "string" },
  },
});
const sizes = values.history!.split(",").map(Number);
const runs = Number(values.runs);
const maxContext = Math.max(...sizes) + 1024;
using model = await loadModel(values.model, { backend: values.backend as BackendChoice, maxContext });

const SENTENCES = [
  "The river bends twice before it reaches the old mill, where the water slows and turns green.",
  "Tell me more about how the mill was built and who worked there in the early years.",
  "Bricks came by boat from the coast, and the wheel was carved from a single oak trunk.",
  "What happened to the village when the railway arrived and the mill was no longer needed?",
];

/** A conversation of alternating turns whose prompt is about `tokens` tokens long. */
function history(tokens: number): ChatMessage[] {
  const messages: ChatMessage[] = [];
  for (let i = 0; model.encode({ messages }).length < tokens; i++) {
    const role = i % 2 === 0 ? "user" : "assistant";
    messages.push({ role, content: `${SENTENCES[i % 4]} ${SENTENCES[(i + 1) % 4]} ${SENTENCES[(i + 2) % 4]}` });
  }
  if (messages.at(-1)!.role === "user") messages.pop();
  return messages;
}

const ttft = async (messages: ChatMessage[], reuse: boolean) => {
  if (!reuse) model.resetCache();
  const t0 = performance.now();
  const r = await model.generate({ messages }, { maxTokens: 1, temperature: 0 });
  return { ms: performance.now() - t0, prompt: r.promptTokens, cached: r.cachedTokens };
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

console.log(`model ${values.model ?? "default (Gemma 3 270M Q4_K_M)"}, backend ${model.backend.kind}, ${runs} runs\n`);
console.log("| history | turn-N prompt | cold TTFT | reused TTFT (cached tokens) | reused / cold |");
console.log("|---:|---:|---:|---:|---:|");
for (const size of sizes) {
  const h = history(size);
  const cold: number[] = [], warm: number[] = [];
  let prompt = 0, cached = 0;
  for (let run = 0; run < runs; run++) {
    // Turn N-1 leaves its prompt and answer in the cache; turn N adds one exchange.
    const previous: ChatMessage[] = [...h, { role: "user", content: `Question ${run}: what came next?` }];
    const answer = await model.generate({ messages: previous }, { maxTokens: 16, temperature: 0 });
    const turn: ChatMessage[] = [
      ...previous,
      { role: "assistant", content: answer.text },
      { role: "user", content: "Summarize that in one line." },
    ];
    const w = await ttft(turn, true);
    warm.push(w.ms);
    [prompt, cached] = [w.prompt, w.cached];
    // Cold runs of the longest histories cost tens of seconds on a CPU: one is enough.
    if (run === 0 || size <= 2000) cold.push((await ttft(turn, false)).ms);
  }
  const c = median(cold), w = median(warm);
  console.log(
    `| ${size} | ${prompt} | ${c.toFixed(0)} ms | ${w.toFixed(0)} ms (${cached}) | ${(w / c).toFixed(3)} |`,
  );
}
