/**
 * The token loop of design.md, and nothing else: prefill the prompt, sample the first token on the device, then
 * replay the recorded decode step (forward + sample, reading and writing the device-side decode state) many
 * steps per native call. It yields token ids; turning them into text is the next stage's job (generator.ts).
 * @module
 */
import { ContextLengthError, GemmakitError } from "../errors.ts";
import { copyRows } from "../ops/copy.ts";
import { logitsProcess, logprobs, sample } from "../ops/sample.ts";
import type { Backend } from "../runtime/backend.ts";
import type { KvCache } from "../runtime/kv_cache.ts";
import { DecodeProgram } from "../runtime/program.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { Workspace } from "../runtime/workspace.ts";
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

/** What the KV cache holds after a loop: the ids of positions 0..ids.length-1, and how far it may be written. */
export interface CacheContents {
  ids: number[];
  /** Positions 0..written-1 may have been written (a step after a stop token writes one past `ids`). */
  written: number;
}

// Layout of the device-side decode state (kernels/include/gemmakit.h GK_STATE_*).
const POSITION = 0, TOKEN = 1, HISTORY = 2, DONE = 3, FIELDS = 8;

/**
 * One generation's token stream. `for await (const id of loop.run())` yields every generated id but a stop
 * token; a consumer may break early (a stop string), which ends the loop and frees its program.
 * The model's KV cache is overwritten from position `start`; `cached` then says what it holds.
 */
export class TokenLoop {
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

  /** Milliseconds since the first token came back (the decode phase), up to now. */
  get decodeMs(): number {
    return this.#decodeStart ? performance.now() - this.#decodeStart : 0;
  }

  async *run(): AsyncGenerator<number, void> {
    const { lm, promptIds, options: o } = this;
    const T = promptIds.length;
    using ws = new Workspace(lm.backend);
    const state = ws.get("state", [FIELDS], "i32");
    state.write([T - 1, promptIds[T - 1], T, 0, 0, 0, 0, 0]);
    const history = ws.get("history", [lm.maxContext], "i32");
    history.write(Int32Array.from({ length: lm.maxContext }, (_, i) => (i < T ? promptIds[i] : 0)));
    const stopIds = o.stopTokenIds.length ? ws.get("stop_ids", [o.stopTokenIds.length], "i32") : null;
    stopIds?.write(o.stopTokenIds);
    const logits = ws.get("logits", [1, lm.vocabSize]);
    const proc = o.processing;
    const bias = proc?.logitBias.length
      ? { ids: ws.get("bias_ids", [proc.logitBias.length], "i32"), values: ws.get("bias", [proc.logitBias.length]) }
      : undefined;
    bias?.ids.write(proc!.logitBias.map(([id]) => id));
    bias?.values.write(proc!.logitBias.map(([, v]) => v));
    const penalties = !!proc && (proc.frequencyPenalty !== 0 || proc.presencePenalty !== 0);
    const scratch = penalties ? ws.get("penalty_counts", [lm.vocabSize], "i32") : undefined;
    const allowed = o.constraint ? ws.get("allowed", [Math.ceil(lm.vocabSize / 32)], "i32") : undefined;
    // Slot s of the logprob buffers is sample s (state[step] - 1): maxTokens of them, and one to spare.
    const lp = o.topLogprobs === undefined ? undefined : {
      n: o.topLogprobs,
      logits: ws.get("logprob_logits", [1, lm.vocabSize]),
      ids: ws.get("logprob_ids", [o.maxTokens + 1, 1 + o.topLogprobs], "i32"),
      values: ws.get("logprobs", [o.maxTokens + 1, 1 + o.topLogprobs]),
    };
    const draw = (lg: Tensor) => {
      if (bias || penalties || allowed) {
        logitsProcess(lg, state, history, {
          frequencyPenalty: proc?.frequencyPenalty,
          presencePenalty: proc?.presencePenalty,
          penaltyStart: T,
          biasIds: bias?.ids,
          biasValues: bias?.values,
          allowed,
          scratch,
        });
      }
      // The sampler scales its logits in place: logprobs read a copy taken before (processed, unscaled).
      if (lp) copyRows(lg.reshape([1, lm.vocabSize]), lp.logits, 0);
      sample(lg, o.sampling, state, history, stopIds);
      if (lp) logprobs(lp.logits, state, lp.n, lp.ids, lp.values);
    };
    const step = () => draw(lm.decodeStep(state.rows(TOKEN, 1), state.rows(POSITION, 1), ws, logits));
    const nextMask = async () => allowed?.write(await o.constraint!.nextMask());

    const t0 = performance.now();
    {
      await nextMask();
      using first = lm.prefillFrom(promptIds, o.start ?? 0, this.media);
      draw(first);
    }
    let program: DecodeProgram | undefined;
    try {
      while (true) {
        const s = state.toArray();
        const have = T + this.tokens.length;
        const fresh = s[HISTORY] > have ? history.rows(have, s[HISTORY] - have).toArray() : [];
        if (lp && fresh.length) this.#readLogprobs(lp.ids, lp.values, lp.n, fresh.length);
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
        await nextMask();
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
      // Every position before the state's is written; a step after a stop token rewrites the one at it.
      const position = state.toArray()[POSITION];
      this.cached = { ids: Array.from(history.rows(0, position).toArray()), written: position + 1 };
    }
  }

  /** Logprobs of the next `count` tokens (slots tokens.length..), read back from the device. */
  #readLogprobs(ids: Tensor, values: Tensor, n: number, count: number): void {
    const at = this.tokens.length;
    const rows = Math.min(count, ids.shape[0] - at);
    if (rows <= 0) return;
    const i = ids.rows(at, rows).toArray(), v = values.rows(at, rows).toArray();
    for (let r = 0; r < rows; r++) {
      const row = r * (1 + n);
      const top = Array.from({ length: n }, (_, k) => ({ id: i[row + 1 + k], logprob: v[row + 1 + k] }));
      this.logprobs.push({ id: i[row], logprob: v[row], top });
    }
  }
}
