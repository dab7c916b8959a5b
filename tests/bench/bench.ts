/** `deno task bench`: model benchmarks with --model/--synthetic, else the op benchmarks. */
// --quant-sweep DIR: decode tok/s of every GGUF in DIR (one per quant type; quant_sweep.ts).
const quantSweep = Deno.args.some((a) => a === "--quant-sweep" || a.startsWith("--quant-sweep="));
const modelBench = !Deno.args.includes("--chat") &&
  Deno.args.some((a) =>
    a === "--model" || a === "--synthetic" || a.startsWith("--model=") || a.startsWith("--synthetic=")
  );
// --threads N: the CPU library's OpenMP threads, which libgomp reads once when the library is loaded.
const threads = Deno.args.find((_, i) => Deno.args[i - 1] === "--threads") ??
  Deno.args.find((a) => a.startsWith("--threads="))?.slice("--threads=".length);
if (threads !== undefined) Deno.env.set("OMP_NUM_THREADS", threads);
// --synthetic gemma3-4b-vision: image encoding time and TTFT with one image (tests/bench/vision_bench.ts);
// gemma4-e2b-vision: the same for Gemma 4 at several budgets, TTFT cached and not (gemma4_vision_bench.ts);
// video: frames/s of ffmpeg decoding + the Gemma 4 video processor (video_bench.ts);
// constraint: structured output's mask time per token on the 262k vocabulary (constraint_bench.ts).
const synthetic = (name: string) => Deno.args.some((a) => a === name || a === `--synthetic=${name}`);
// --chat: TTFT of turn N of a conversation, cold vs with the history's KV reused (chat_bench.ts).
const chat = Deno.args.includes("--chat");
// --fidelity: top-1 and KL against transformers on the real 270M fixture, default vs int8 activations.
const fidelity = Deno.args.includes("--fidelity");
// --streams 1,2,4,8,16: N concurrent streams on one model, against llama-server with --peer (batch_bench.ts).
const streams = Deno.args.some((a) => a === "--streams" || a.startsWith("--streams="));
await import(
  fidelity
    ? "./fidelity_bench.ts"
    : streams
    ? "./batch_bench.ts"
    : quantSweep
    ? "./quant_sweep.ts"
    : chat
    ? "./chat_bench.ts"
    : synthetic("gemma3-4b-vision")
    ? "./vision_bench.ts"
    : synthetic("gemma4-e2b-vision")
    ? "./gemma4_vision_bench.ts"
    : synthetic("video")
    ? "./video_bench.ts"
    : synthetic("constraint")
    ? "./constraint_bench.ts"
    : modelBench
    ? "./model_bench.ts"
    : "./ops_bench.ts"
);
