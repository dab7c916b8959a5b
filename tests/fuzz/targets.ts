/**
 * The fuzz targets: each takes one input's bytes and must either accept it or refuse it with a typed error
 * (a GemmakitError; the server's ApiError for the request parser). Anything else that escapes (a TypeError, a
 * RangeError, a native crash, a hang, a memory blow-up) is a finding. Shared by the fuzzer's worker
 * (tests/fuzz/worker.ts) and the corpus replay in `deno task test` (tests/fuzz/corpus_test.ts).
 * @module
 */
import { join } from "node:path";
import { GemmakitError } from "../../src/errors.ts";
import { openSafetensors } from "../../src/formats/safetensors.ts";
import { openGguf } from "../../src/formats/gguf.ts";
import { gemma3ConfigFromGguf } from "../../src/models/gemma3/gguf.ts";
import { decodeImage } from "../../src/vision/image.ts";
import { resizeBilinearAntialias } from "../../src/vision/resize.ts";
import { parseGemma3Config } from "../../src/models/gemma3/config.ts";
import { parseGemma4Config } from "../../src/models/gemma4/config.ts";
import { parseGemma3VisionConfig } from "../../src/models/gemma3/vision_config.ts";
import { parseGemma4VisionConfig } from "../../src/models/gemma4/vision_config.ts";
import { Gemma3ImageProcessorConfig } from "../../src/models/gemma3/processor.ts";
import { ChatTemplate } from "../../src/tokenizer/chat_template.ts";
import { validateTools } from "../../src/generate/tools.ts";
import { decodeVideo } from "../../src/vision/video.ts";
import { decodeBase64, decodeDataUrl } from "../../src/runtime/bounds.ts";
import { parseChatRequest, parseCompletionRequest } from "../../examples/server/request.ts";
import { ApiError } from "../../examples/server/errors.ts";
import { DEFAULT_LIMITS } from "../../examples/server/limits.ts";
import { blackPng, pngWithRaw, tinyGif, tinyJpeg } from "../vision/hostile_images.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const FIXTURES = join(ROOT, "tests/fixtures");
const enc = new TextEncoder();
const dec = new TextDecoder();

export interface Target {
  /** Starting inputs (the committed corpus is added to them). */
  seeds(): Uint8Array[];
  /** Runs one input; returns normally or throws a typed error. */
  run(input: Uint8Array): void | Promise<void>;
  /** Whether an error is one this target may throw. */
  typed?(e: unknown): boolean;
  /** Inputs are text (JSON): mutate numbers and tokens too. */
  text?: boolean;
}

let scratch: string | undefined;
/** One private temp file per process, rewritten per input: file-based parsers read it. */
function scratchFile(bytes: Uint8Array, ext: string): string {
  scratch ??= Deno.makeTempDirSync({ prefix: "gemmakit-fuzz-" });
  const path = join(scratch, `input${ext}`);
  Deno.writeFileSync(path, bytes);
  return path;
}

function readFixture(path: string): Uint8Array {
  return Deno.readFileSync(join(FIXTURES, path));
}

function safetensorsBytes(tensors: Record<string, { dtype: string; shape: number[] }>): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const n = t.shape.reduce((a, b) => a * b, 1) * (t.dtype === "F32" ? 4 : 2);
    header[name] = { ...t, data_offsets: [off, off + n] };
    off += n;
  }
  const h = enc.encode(JSON.stringify(header));
  const out = new Uint8Array(8 + h.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  return out;
}

/** A minimal GGUF v3: a few gemma3 metadata keys and one f32 tensor. */
function ggufBytes(): Uint8Array {
  const parts: number[] = [];
  const u32 = (v: number) => parts.push(v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff);
  const u64 = (v: number) => (u32(v), u32(0));
  const str = (s: string) => (u64(s.length), parts.push(...enc.encode(s)));
  parts.push(...enc.encode("GGUF"));
  u32(3);
  u64(1); // tensors
  u64(5); // metadata
  str("general.architecture"), u32(8), str("gemma3");
  str("gemma3.block_count"), u32(4), u32(2);
  str("gemma3.embedding_length"), u32(4), u32(8);
  str("gemma3.attention.head_count"), u32(4), u32(2);
  str("gemma3.context_length"), u32(4), u32(64);
  str("token_embd.weight"), u32(2), u64(8), u64(16), u32(0), u64(0);
  while (parts.length % 32) parts.push(0);
  for (let i = 0; i < 8 * 16 * 4; i++) parts.push(0);
  return new Uint8Array(parts);
}

function json(bytes: Uint8Array): unknown | undefined {
  try {
    return JSON.parse(dec.decode(bytes));
  } catch {
    return undefined; // not JSON: the parsers under test take parsed JSON, JSON.parse's errors are not theirs
  }
}

const isTyped = (e: unknown) => e instanceof GemmakitError;

const TEMPLATE = Deno.readTextFileSync(join(FIXTURES, "gemma4-tokenizer/chat_template.jinja"));
let chatTemplate: ChatTemplate | undefined;

export const TARGETS: Record<string, Target> = {
  safetensors: {
    seeds: () => [
      safetensorsBytes({ "a.weight": { dtype: "F32", shape: [2, 3] }, "b": { dtype: "BF16", shape: [4] } }),
      readFixture("gemma3-text-mixed/model.safetensors").subarray(0, 4096),
    ],
    run(input) {
      using f = openSafetensors(scratchFile(input, ".safetensors"));
      for (const t of f.tensors) void t.shape;
    },
  },
  gguf: {
    seeds: () => [ggufBytes()],
    run(input) {
      using g = openGguf(scratchFile(input, ".gguf"));
      if (g.get("general.architecture") !== undefined) gemma3ConfigFromGguf(g);
    },
  },
  images: {
    seeds: () => [
      ...["palette_png.png", "gray16_png.png", "exif6_jpeg.jpg", "anim_gif.gif", "gray_jpeg.jpg"].map((n) =>
        readFixture(`images/${n}`)
      ),
      blackPng(3, 2),
      pngWithRaw(20, 20, 1 << 16),
      tinyGif(300, 300),
      tinyJpeg(500, 500),
    ],
    run(input) {
      const img = decodeImage(input, { maxPixels: 4_000_000 });
      resizeBilinearAntialias({ ...img, channels: 3 }, 16, 16);
    },
  },
  configs: {
    text: true,
    seeds: () =>
      ["gemma3-text-mixed", "gemma3-vision-tiny", "gemma4-text-moe", "gemma4-vision-tiny", "gemma4-text-e"].map((d) =>
        readFixture(`${d}/config.json`)
      ).concat([readFixture("gemma3-vision-tiny/processor_config.json")]),
    run(input) {
      const cfg = json(input);
      if (cfg === undefined) return;
      const type = (cfg as { model_type?: unknown })?.model_type;
      for (
        const parse of [
          () => parseGemma3Config(cfg),
          () => parseGemma4Config(cfg),
          () => type === "gemma3" && parseGemma3VisionConfig(cfg),
          () => type === "gemma4" && parseGemma4VisionConfig(cfg),
          () => Gemma3ImageProcessorConfig.fromPreprocessorConfig(cfg as Record<string, unknown>),
        ]
      ) {
        try {
          parse();
        } catch (e) {
          if (!isTyped(e)) throw e;
        }
      }
    },
  },
  chat: {
    text: true,
    seeds: () => [
      enc.encode(JSON.stringify({
        messages: [{ role: "system", content: [{ type: "text", text: "Be brief." }] }, {
          role: "user",
          content: [{ type: "text", text: "Hi" }, { type: "image", url: "data:image/png;base64,AAAA" }],
        }],
        tools: [{
          type: "function",
          function: {
            name: "get_weather",
            description: "Weather",
            parameters: { type: "object", properties: { city: { type: "string", enum: ["a", "b"] } } },
          },
        }],
      })),
      enc.encode(JSON.stringify({
        messages: [{ role: "user", content: "2+3?" }, {
          role: "assistant",
          tool_calls: [{ function: { name: "add", arguments: { a: 2, b: [1, { c: null }] } } }],
        }, { role: "tool", name: "add", content: "5" }],
      })),
      enc.encode("data:image/png;base64,iVBORw0KGgo="),
    ],
    run(input) {
      const text = dec.decode(input);
      if (text.startsWith("data:")) {
        decodeDataUrl(text, 1 << 20);
        return;
      }
      const req = json(input) as { messages?: unknown; tools?: unknown } | undefined;
      if (!req || typeof req !== "object") {
        decodeBase64(text, 1 << 20);
        return;
      }
      if (req.tools !== undefined) validateTools(req.tools);
      chatTemplate ??= new ChatTemplate(TEMPLATE, { bos_token: "<bos>" });
      chatTemplate.render(req.messages as never, {
        tools: req.tools as unknown[] | undefined,
        addGenerationPrompt: true,
      });
    },
  },
  video: {
    seeds: () => [readFixture("gemma4-media/testsrc.mp4"), enc.encode("#EXTM3U\n#EXTINF:1,\n/etc/hostname\n")],
    async run(input) {
      await decodeVideo({ bytes: input }, {
        selectFrames: (s) => [0, Math.max(0, s.totalNumFrames - 1)].slice(0, Math.min(2, s.totalNumFrames)),
        timeoutMs: 4000,
      });
    },
  },
  http: {
    text: true,
    typed: (e) => e instanceof ApiError || e instanceof GemmakitError,
    seeds: () => [
      enc.encode(JSON.stringify({
        model: "m",
        messages: [{
          role: "user",
          content: [{ type: "text", text: "hi" }, {
            type: "image_url",
            image_url: {
              url:
                "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGNgYGAAAAAEAAEnNCcKAAAAAElFTkSuQmCC",
            },
          }],
        }],
        max_tokens: 5,
        temperature: 0.5,
        stop: ["x"],
        tools: [{ type: "function", function: { name: "f", parameters: { type: "object" } } }],
      })),
      enc.encode(JSON.stringify({ model: "m", prompt: "Once", max_tokens: 3, seed: 1, top_p: 0.9 })),
    ],
    async run(input) {
      const body = json(input);
      if (body === undefined) return;
      const remote = { allow: false, timeoutMs: 1000 };
      if (body && typeof body === "object" && "prompt" in body) parseCompletionRequest(body, DEFAULT_LIMITS);
      else await parseChatRequest(body, DEFAULT_LIMITS, remote);
    },
  },
};

/** Whether `e`, thrown by `target`, is an expected (typed) refusal. */
export function isExpected(target: Target, e: unknown): boolean {
  return target.typed ? target.typed(e) : isTyped(e);
}
