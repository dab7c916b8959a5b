/**
 * The token loop of design.md, and nothing else: prefill the prompt, sample the first token on the device, then
 * replay the recorded decode step (forward + sample, reading and writing the device-side decode state) many
 * steps per native call. It yields token ids; turning them into text is the next stage's job (generator.ts).
 * @module
 */
import { ContextLengthError, GemmakitError } from "../errors.ts";
import type { Backend } from "../runtime/backend.ts";
import type { KvCache } from "../runtime/kv_cache.ts";
import { DecodeProgram } from "../runtime/program.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { Workspace } from "../runtime/workspace.ts";
import { type CacheContents, DONE, POSITION, SequenceBuffers, TOKEN } from "./sequence.ts";
import type { Sampling } from "./options.ts";
import type { FinishReason, LogitProcessing, TokenConstraint, TokenLogprob } from "./result.ts";

/**
 * What the loop needs of a model: a prefill from an offset (with the prompt's media, of the family's own type
 * `M`), a decode step over the device-resident token and position, and its KV cache.
 */
export interface CausalLM<M = unknown> {
  readonly backend: Backend;
  readonly maxContext: number;
  readonly vocabSize: number;
  /** The KV cache prefill and decode write (read by session files; its `rollback` bounds prefix reuse). */
  readonly cache: KvCache;
  /**
   * Runs prompt `ids` from position `start` (0: all of it; else the cache holds positions 0..start-1 of these
   * ids, and `start` is not inside a media span), returning logits f32 [1, vocab] of the last position.
   */
  prefillFrom(ids: ArrayLike<number>, start: number, media?: M): Tensor;
  decodeStep(token: Tensor, position: Tensor, ws: Workspace, logits: Tensor): Tensor;
}

export interface TokenLoopOptions {
  sampling: Sampling;
  maxTokens: number;
  /** Decode steps per native call. */
  chunkSize: number;
  /** Ids that end generation (kept in `tokens`, never yielded). */
  stopTokenIds: readonly number[];
  /** Checked between chunks: the loop ends with finishReason "abort". */
  signal?: AbortSignal;
  /** The first prompt position to prefill: the KV cache holds the ones before it (prefix reuse). Default 0. */
  start?: number;
  /** Logit processors before the sampler (gk_logits_process); penalties count generated tokens only. */
  processing?: LogitProcessing;
  /** Alternatives per token to report with each token's logprob (0: the sampled token's only); undefined: none. */
  topLogprobs?: number;
  /** A constraint engine's allowed-token mask, applied on the device each step (one step per native call). */
  constraint?: TokenConstraint;
}

export type { CacheContents };

/**
 * A generation's token stream as the text stages read it: the single token loop, or a sequence of a batch.
 * `run()` yields every generated id but a stop token; breaking off ends the sequence.
 */
export interface TokenStream {
  readonly tokens: number[];
  readonly logprobs: TokenLogprob[];
  readonly finishReason: FinishReason | undefined;
  readonly prefillMs: number;
  readonly decodeMs: number;
  readonly decodeCalls: number;
  /** Prompt positions that came from the KV cache (not prefilled). */
  readonly start: number;
  readonly cached: CacheContents | undefined;
  readonly options: { readonly topLogprobs?: number };
  run(): AsyncGenerator<number, void>;
}

/**
 * One generation's token stream. `for await (const id of loop.run())` yields every generated id but a stop
 * token; a consumer may break early (a stop string), which ends the loop and frees its program.
 * The model's KV cache is overwritten from position `start`; `cached` then says what it holds.
 */
export class TokenLoop implements TokenStream {
  /** Every generated id, a final stop token included. */
  readonly tokens: number[] = [];
  /** With `topLogprobs`: one entry per id of `tokens`. */
  readonly logprobs: TokenLogprob[] = [];
  /** Why the loop ended on its own (undefined while running, or when the consumer broke off). */
  finishReason: FinishReason | undefined;
  prefillMs = 0;
  decodeCalls = 0;
  /** What the KV cache holds once run() has ended (undefined while running, or when the prefill failed). */
  cached: CacheContents | undefined;
  #decodeStart = 0;

  constructor(
    readonly lm: CausalLM,
    readonly promptIds: readonly number[],
    readonly media: unknown,
    readonly options: TokenLoopOptions,
  ) {
    const T = promptIds.length;
    if (T < 1) throw new GemmakitError("generate", "the prompt is empty");
    if (T >= lm.maxContext) throw new ContextLengthError("generate", T, lm.maxContext - 1);
    const start = options.start ?? 0;
    if (!Number.isInteger(start) || start < 0 || start >= T) {
      throw new GemmakitError("generate", `start=${start} must be an integer in [0, ${T})`);
    }
  }

  get start(): number {
    return this.options.start ?? 0;
  }

  /** Milliseconds since the first token came back (the decode phase), up to now. */
  get decodeMs(): number {
    return this.#decodeStart ? performance.now() - this.#decodeStart : 0;
  }

  async *run(): AsyncGenerator<number, void> {
    const { lm, promptIds, options: o } = this;
    const T = promptIds.length;
    using seq = new SequenceBuffers(lm.backend, lm.vocabSize, lm.maxContext, promptIds, o);
    using ws = new Workspace(lm.backend);
    const logits = ws.get("logits", [1, lm.vocabSize]);
    const step = () => seq.draw(lm.decodeStep(seq.state.rows(TOKEN, 1), seq.state.rows(POSITION, 1), ws, logits));

    const t0 = performance.now();
    {
      await seq.nextMask();
      using first = lm.prefillFrom(promptIds, o.start ?? 0, this.media);
      seq.draw(first);
    }
    let program: DecodeProgram | undefined;
    try {
      while (true) {
        const { state: s, fresh } = seq.readBack(T + this.tokens.length);
        if (fresh.length) this.logprobs.push(...seq.readLogprobs(this.tokens.length, fresh.length));
        if (this.tokens.length === 0) [this.prefillMs, this.#decodeStart] = [performance.now() - t0, performance.now()];
        for (const id of fresh) {
          this.tokens.push(id);
          o.constraint?.accept(id);
          if (o.stopTokenIds.includes(id)) return void (this.finishReason = "stop");
          yield id;
          if (this.tokens.length >= o.maxTokens) return void (this.finishReason = "length");
        }
        if (s[DONE]) return void (this.finishReason = "length"); // the history (context) is full
        if (o.signal?.aborted) return void (this.finishReason = "abort");
        await seq.nextMask();
        // A constraint's mask depends on the token just sampled: one step per native call.
        const steps = Math.min(
          o.constraint ? 1 : o.chunkSize,
          o.maxTokens - this.tokens.length,
          lm.maxContext - s[POSITION],
        );
        if (steps <= 0) return void (this.finishReason = "length");
        if (!program) {
          // One eager step allocates the workspace, so the recording allocates nothing.
          step();
          program = DecodeProgram.record(lm.backend, step);
          if (steps > 1) await program.runAsync(steps - 1);
        } else {
          // A worker thread runs the chunk: the event loop (abort signals, other requests) stays free.
          await program.runAsync(steps);
        }
        this.decodeCalls++;
      }
    } finally {
      program?.dispose();
      this.cached = seq.cached();
    }
  }
}
