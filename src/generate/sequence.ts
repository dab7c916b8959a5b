/**
 * One sequence's device-side decode state and what its sampler reads: the decode state, the history, stop ids,
 * logit bias and penalty scratch, the constraint mask and the logprob buffers — and the draw (processors, sampler,
 * logprobs) over one row of logits. The single token loop and the batch scheduler both hold one per sequence, so
 * a sequence samples the same way alone or in a batch.
 * @module
 */
import { copyRows } from "../ops/copy.ts";
import { logitsProcess, logprobs, sample } from "../ops/sample.ts";
import type { Backend } from "../runtime/backend.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { Workspace } from "../runtime/workspace.ts";
import type { Sampling } from "./options.ts";
import type { LogitProcessing, TokenConstraint, TokenLogprob } from "./result.ts";

// Layout of the device-side decode state (kernels/include/gemmakit.h GK_STATE_*).
export const POSITION = 0, TOKEN = 1, HISTORY = 2, DONE = 3, FIELDS = 8;

/** How one sequence samples. */
export interface SequenceSampling {
  sampling: Sampling;
  maxTokens: number;
  /** Ids that end generation. */
  stopTokenIds: readonly number[];
  /** Logit processors before the sampler (gk_logits_process); penalties count generated tokens only. */
  processing?: LogitProcessing;
  /** Alternatives per token to report with each token's logprob (0: the sampled token's only); undefined: none. */
  topLogprobs?: number;
  /** A constraint engine's allowed-token mask, applied on the device each step. */
  constraint?: TokenConstraint;
}

/** What the KV cache holds after a sequence: the ids of positions 0..ids.length-1, and how far it was written. */
export interface CacheContents {
  ids: number[];
  /** Positions 0..written-1 may have been written (a step after a stop token writes one past `ids`). */
  written: number;
}

export class SequenceBuffers {
  readonly ws: Workspace;
  /** i32 [FIELDS]: the decode state. */
  readonly state: Tensor;
  /** i32 [maxContext]: prompt and sampled ids. */
  readonly history: Tensor;
  readonly #o: SequenceSampling;
  readonly #promptLength: number;
  readonly #vocab: number;
  #stopIds: Tensor | null;
  #bias: { ids: Tensor; values: Tensor } | undefined;
  #scratch: Tensor | undefined;
  #allowed: Tensor | undefined;
  #lp: { n: number; logits: Tensor; ids: Tensor; values: Tensor } | undefined;

  constructor(backend: Backend, vocab: number, maxContext: number, promptIds: readonly number[], o: SequenceSampling) {
    const T = promptIds.length;
    this.#o = o;
    this.#promptLength = T;
    this.#vocab = vocab;
    const ws = this.ws = new Workspace(backend);
    try {
      this.state = ws.get("state", [FIELDS], "i32");
      this.state.write([T - 1, promptIds[T - 1], T, 0, 0, 0, 0, 0]);
      this.history = ws.get("history", [maxContext], "i32");
      this.history.write(Int32Array.from({ length: maxContext }, (_, i) => (i < T ? promptIds[i] : 0)));
      this.#stopIds = o.stopTokenIds.length ? ws.get("stop_ids", [o.stopTokenIds.length], "i32") : null;
      this.#stopIds?.write(o.stopTokenIds);
      const proc = o.processing;
      if (proc?.logitBias.length) {
        this.#bias = {
          ids: ws.get("bias_ids", [proc.logitBias.length], "i32"),
          values: ws.get("bias", [proc.logitBias.length]),
        };
        this.#bias.ids.write(proc.logitBias.map(([id]) => id));
        this.#bias.values.write(proc.logitBias.map(([, v]) => v));
      }
      const penalties = !!proc && (proc.frequencyPenalty !== 0 || proc.presencePenalty !== 0);
      this.#scratch = penalties ? ws.get("penalty_counts", [vocab], "i32") : undefined;
      this.#allowed = o.constraint ? ws.get("allowed", [Math.ceil(vocab / 32)], "i32") : undefined;
      // Slot s of the logprob buffers is sample s (state[step] - 1): maxTokens of them, and one to spare.
      this.#lp = o.topLogprobs === undefined ? undefined : {
        n: o.topLogprobs,
        logits: ws.get("logprob_logits", [1, vocab]),
        ids: ws.get("logprob_ids", [o.maxTokens + 1, 1 + o.topLogprobs], "i32"),
        values: ws.get("logprobs", [o.maxTokens + 1, 1 + o.topLogprobs]),
      };
    } catch (e) {
      ws.dispose();
      throw e;
    }
  }

  /** Processors, sampler and logprobs over one row of logits (f32 [1, vocab]); recordable. */
  draw(lg: Tensor): void {
    const proc = this.#o.processing;
    if (this.#bias || this.#scratch || this.#allowed) {
      logitsProcess(lg, this.state, this.history, {
        frequencyPenalty: proc?.frequencyPenalty,
        presencePenalty: proc?.presencePenalty,
        penaltyStart: this.#promptLength,
        biasIds: this.#bias?.ids,
        biasValues: this.#bias?.values,
        allowed: this.#allowed,
        scratch: this.#scratch,
      });
    }
    const lp = this.#lp;
    // The sampler scales its logits in place: logprobs read a copy taken before (processed, unscaled).
    if (lp) copyRows(lg.reshape([1, this.#vocab]), lp.logits, 0);
    sample(lg, this.#o.sampling, this.state, this.history, this.#stopIds);
    if (lp) logprobs(lp.logits, this.state, lp.n, lp.ids, lp.values);
  }

  /**
   * The ids whose logits this sequence's draw needs whatever they are (its logit-bias ids) when it draws greedily
   * with nothing but that bias between the logits and the argmax; null when the draw reads more (temperature,
   * repetition, frequency or presence penalty, a constraint's mask, logprobs).
   */
  greedyKeepIds(): readonly number[] | null {
    const o = this.#o;
    if (!(o.sampling.temperature <= 0) || o.sampling.repetitionPenalty !== 1) return null;
    if (this.#scratch || this.#allowed || this.#lp) return null;
    return o.processing?.logitBias.map(([id]) => id) ?? [];
  }

  /** Uploads the constraint's mask for the next step (nothing without a constraint). */
  async nextMask(): Promise<void> {
    if (this.#allowed) this.#allowed.write(await this.#o.constraint!.nextMask());
  }

  /** The decode state now, and the ids sampled since the first `have` history entries. */
  readBack(have: number): { state: Int32Array; fresh: number[] } {
    const state = this.state.toArray() as Int32Array;
    const fresh = state[HISTORY] > have ? Array.from(this.history.rows(have, state[HISTORY] - have).toArray()) : [];
    return { state, fresh };
  }

  /** Logprobs of samples at..at+count-1, read back from the device (none without topLogprobs). */
  readLogprobs(at: number, count: number): TokenLogprob[] {
    const lp = this.#lp;
    if (!lp) return [];
    const rows = Math.min(count, lp.ids.shape[0] - at);
    if (rows <= 0) return [];
    const n = lp.n, i = lp.ids.rows(at, rows).toArray(), v = lp.values.rows(at, rows).toArray();
    const out: TokenLogprob[] = [];
    for (let r = 0; r < rows; r++) {
      const row = r * (1 + n);
      const top = Array.from({ length: n }, (_, k) => ({ id: i[row + 1 + k], logprob: v[row + 1 + k] }));
      out.push({ id: i[row], logprob: v[row], top });
    }
    return out;
  }

  /** What the KV cache holds once this sequence stopped: every position before the state's. */
  cached(): CacheContents {
    // Every position before the state's is written; a step after a stop token rewrites the one at it.
    const position = this.state.toArray()[POSITION];
    return { ids: Array.from(this.history.rows(0, position).toArray()), written: position + 1 };
  }

  dispose(): void {
    this.ws.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
