/**
 * One request of a batch as the text stages see it: a TokenStream whose ids the batch scheduler (batch.ts)
 * produces chunk by chunk and this object hands out as the consumer pulls them. The scheduler owns the device
 * side (slot, decode state); this side is host bookkeeping and the wake-up between the two.
 * @module
 */
import { ContextLengthError, GemmakitError } from "../errors.ts";
import type { MediaSpan } from "./prefix.ts";
import type { FinishReason, TokenLogprob } from "./result.ts";
import type { CacheContents, SequenceBuffers } from "./sequence.ts";
import type { TokenLoopOptions, TokenStream } from "./token_loop.ts";

/** An id the scheduler produced, with its logprob; `stop` ids end the answer and are not yielded. */
interface Produced {
  id: number;
  logprob?: TokenLogprob;
  stop: boolean;
}

let nextId = 0;

export class BatchSequence implements TokenStream {
  readonly id = ++nextId;
  readonly tokens: number[] = [];
  readonly logprobs: TokenLogprob[] = [];
  finishReason: FinishReason | undefined;
  prefillMs = 0;
  decodeCalls = 0;
  /** Prompt positions that came from a cached prefix (set at admission). */
  start = 0;
  cached: CacheContents | undefined;

  // Scheduler side.
  /** "queued" until a slot is free; "prefill" while the prompt goes in chunk by chunk; then "decode". */
  phase: "queued" | "prefill" | "decode" | "ended" = "queued";
  /** Prompt positions in the slot's cache so far. */
  prefilled = 0;
  /** Ids sampled so far (the consumer may not have taken them yet). */
  produced: number[] = [];
  buffers: SequenceBuffers | undefined;
  slot: number | undefined;
  /** Called once when the sequence ends (the scheduler's abort listener leaves the signal). */
  onEnd: (() => void) | undefined;
  /** The consumer broke off (a stop string) or went away: the scheduler ends the sequence at its next boundary. */
  cancelled = false;
  prefillStart = 0;
  #decodeStart = 0;
  #pending: Produced[] = [];
  #error: unknown;
  #failed = false;
  #wake: (() => void) | undefined;

  constructor(
    readonly promptIds: readonly number[],
    readonly media: unknown,
    readonly spans: readonly MediaSpan[],
    /** Whether a cached prefix may be reused (reusePrefix option). */
    readonly reuse: boolean,
    readonly options: TokenLoopOptions,
    /** Called when the consumer starts pulling (the scheduler queues it then) and when it breaks off. */
    readonly scheduler: { enqueue(s: BatchSequence): void; kick(): void },
  ) {
  }

  /** Checks the prompt against the context (as the single token loop does). */
  static check(promptIds: readonly number[], maxContext: number): void {
    if (promptIds.length < 1) throw new GemmakitError("generate", "the prompt is empty");
    if (promptIds.length >= maxContext) throw new ContextLengthError("generate", promptIds.length, maxContext - 1);
  }

  get decodeMs(): number {
    return this.#decodeStart ? performance.now() - this.#decodeStart : 0;
  }

  /** Scheduler: hands the consumer an id (in order). */
  deliver(id: number, stop: boolean, logprob?: TokenLogprob): void {
    if (!this.#decodeStart) {
      this.#decodeStart = performance.now();
      this.prefillMs = this.#decodeStart - this.prefillStart;
    }
    this.#pending.push({ id, logprob, stop });
    this.#notify();
  }

  /** Scheduler: the sequence is over (`reason`), or failed (`error`). */
  end(reason: FinishReason, cached: CacheContents | undefined, error?: unknown): void {
    if (this.phase === "ended") return;
    this.phase = "ended";
    this.onEnd?.();
    // A sequence that ended before its first token (aborted in the queue, a failed prefill) still took time.
    if (!this.#decodeStart && this.prefillStart) this.prefillMs = performance.now() - this.prefillStart;
    this.cached = cached;
    if (error !== undefined) [this.#failed, this.#error] = [true, error];
    else this.finishReason = reason;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async *run(): AsyncGenerator<number, void> {
    this.scheduler.enqueue(this);
    let done = false;
    try {
      while (true) {
        while (this.#pending.length) {
          const p = this.#pending.shift()!;
          this.tokens.push(p.id);
          if (p.logprob) this.logprobs.push(p.logprob);
          if (p.stop) return void (done = true);
          yield p.id;
        }
        if (this.phase === "ended") {
          done = true;
          if (this.#failed) throw this.#error;
          return;
        }
        await new Promise<void>((resolve) => (this.#wake = resolve));
      }
    } finally {
      if (!done) {
        // The consumer broke off: no reason of our own (the text stage knows why), and the slot is freed soon.
        this.cancelled = true;
        this.finishReason = undefined;
        this.scheduler.kick();
      }
    }
  }
}
