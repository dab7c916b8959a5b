/**
 * Generation options: sampling parameters (validated once), limits, stop conditions.
 * @module
 */
import { GemmakitError } from "../errors.ts";
import type { SamplingParams } from "../ops/sample.ts";
import type { ResponseFormat } from "./constraint.ts";
import type { LogitProcessing, TokenLogprob } from "./result.ts";

/** Sampling parameters as the device sampler takes them (src/ops/sample.ts). */
export type SamplingOptions = SamplingParams;

export interface GenerateOptions extends SamplingOptions {
  /** Most new tokens to generate. Default 256. */
  maxTokens?: number;
  /** Stop when the text contains one of these (it is not included in the output). */
  stop?: string[];
  /** Aborts between decode chunks; the result so far is returned with finishReason "abort". */
  signal?: AbortSignal;
  /** Decode steps per native call. Default 16. */
  chunkSize?: number;
  /**
   * Prefill only from the first token that differs from what the KV cache holds (the last call's prompt and
   * answer). Default true; false recomputes the whole prompt (a cold start, for measurements).
   */
  reusePrefix?: boolean;
  /** OpenAI's frequency_penalty: each generated occurrence of a token lowers its logit by this. Default 0. */
  frequencyPenalty?: number;
  /** OpenAI's presence_penalty: a token generated at least once has its logit lowered by this. Default 0. */
  presencePenalty?: number;
  /** Added to the logits of these token ids (OpenAI's logit_bias; -100 all but bans a token). */
  logitBias?: Record<number, number>;
  /** Report each generated token's log-probability with this many most likely alternatives (0..20). */
  topLogprobs?: number;
  /** Called with each generated token's log-probability (with `topLogprobs`), before its text is yielded. */
  onLogprob?: (entry: TokenLogprob) => void;
  /** Structured output: the answer is constrained to this JSON Schema, any JSON object, or a grammar. */
  responseFormat?: ResponseFormat;
}

/** The resolved sampling parameters handed to the device. */
export interface Sampling {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repetitionPenalty: number;
  seed: number;
}

/** Sampling defaults a checkpoint's generation_config.json asks for (Gemma: top_k 64, top_p 0.95). */
export function samplingDefaults(generationConfig: Record<string, unknown> | undefined): SamplingOptions {
  const g = generationConfig ?? {};
  if (g.do_sample !== true) return { temperature: 0 };
  const num = (v: unknown) => (typeof v === "number" ? v : undefined);
  return {
    temperature: num(g.temperature) ?? 1,
    topK: num(g.top_k),
    topP: num(g.top_p),
    minP: num(g.min_p),
    repetitionPenalty: num(g.repetition_penalty),
  };
}

function check(ok: boolean, message: string) {
  if (!ok) throw new GemmakitError("generate", message);
}

/** Merges options over defaults and checks every value. */
export function resolveSampling(options: SamplingOptions, defaults: SamplingOptions): Sampling {
  const o = { ...defaults, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) };
  const s: Sampling = {
    temperature: o.temperature ?? 0,
    topK: o.topK ?? 0,
    topP: o.topP ?? 1,
    minP: o.minP ?? 0,
    repetitionPenalty: o.repetitionPenalty ?? 1,
    seed: o.seed ?? Math.floor(Math.random() * 2 ** 32),
  };
  check(Number.isFinite(s.temperature) && s.temperature >= 0, `temperature=${s.temperature} must be >= 0`);
  check(Number.isInteger(s.topK) && s.topK >= 0, `topK=${s.topK} must be an integer >= 0`);
  check(s.topP > 0 && s.topP <= 1, `topP=${s.topP} must be in (0, 1]`);
  check(s.minP >= 0 && s.minP <= 1, `minP=${s.minP} must be in [0, 1]`);
  check(Number.isFinite(s.repetitionPenalty) && s.repetitionPenalty > 0, `repetitionPenalty must be > 0`);
  check(Number.isInteger(s.seed) && s.seed >= 0 && s.seed < 2 ** 32, `seed=${s.seed} must be an integer in [0, 2^32)`);
  return s;
}

export function resolveLimits(options: GenerateOptions): { maxTokens: number; chunkSize: number; stop: string[] } {
  const maxTokens = options.maxTokens ?? 256;
  const chunkSize = options.chunkSize ?? 16;
  check(Number.isInteger(maxTokens) && maxTokens >= 1, `maxTokens=${maxTokens} must be a positive integer`);
  check(Number.isInteger(chunkSize) && chunkSize >= 1, `chunkSize=${chunkSize} must be a positive integer`);
  const stop = options.stop ?? [];
  check(
    Array.isArray(stop) && stop.every((s) => typeof s === "string" && s.length > 0),
    "stop must be non-empty strings",
  );
  return { maxTokens, chunkSize, stop };
}

/** The logit processors and logprobs a request asks for, checked; `vocabSize` bounds the biased ids. */
export function resolveProcessing(
  options: GenerateOptions,
  vocabSize: number,
): { processing?: LogitProcessing; topLogprobs?: number } {
  const f = options.frequencyPenalty ?? 0, p = options.presencePenalty ?? 0;
  check(Number.isFinite(f) && Math.abs(f) <= 2, `frequencyPenalty=${f} must be in [-2, 2]`);
  check(Number.isFinite(p) && Math.abs(p) <= 2, `presencePenalty=${p} must be in [-2, 2]`);
  const bias = Object.entries(options.logitBias ?? {}).map(([k, v]): [number, number] => {
    const id = Number(k);
    check(Number.isInteger(id) && id >= 0 && id < vocabSize, `logitBias: token id ${k} is not in [0, ${vocabSize})`);
    check(
      typeof v === "number" && Number.isFinite(v) && Math.abs(v) <= 100,
      `logitBias[${k}]=${v} must be in [-100, 100]`,
    );
    return [id, v];
  });
  const top = options.topLogprobs;
  check(top === undefined || (Number.isInteger(top) && top >= 0 && top <= 20), `topLogprobs=${top} must be 0..20`);
  return {
    ...((f !== 0 || p !== 0 || bias.length) &&
      { processing: { frequencyPenalty: f, presencePenalty: p, logitBias: bias } }),
    ...(top !== undefined && { topLogprobs: top }),
  };
}
