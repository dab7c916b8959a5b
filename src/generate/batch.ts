/**
 * Continuous batching of decode: many generations in flight on one model. Each sequence holds a KV-cache slot
 * (fixed slots, allocated at load from the slot count and the memory budget); requests beyond the slots wait in
 * arrival order. The scheduler loop runs, between decode chunks, up to PREFILL_CHUNK prompt tokens of joining
 * sequences (several short prompts at once, in one forward where the family has prefillBatch; a long prompt a chunk
 * at a time, so streams keep flowing), then one decode chunk of every decoding sequence at once: one recorded step
 * over B rows (the family's decodeStepBatch: GEMMs over the rows, attention per row over its own slot), each row
 * sampled with its own parameters, stop ids and RNG state. The recording is redone whenever the batch's composition
 * changes (recording is cheap; the replay is one native call, one CUDA graph launch per step, per chunk). A new
 * sequence reuses the longest cached prefix of any slot: in place when that slot is free, else copied into its own
 * slot (slots.ts).
 * @module
 */
import { GemmakitError } from "../errors.ts";
import { copyRows } from "../ops/copy.ts";
import type { KvCache } from "../runtime/kv_cache.ts";
import { DecodeProgram } from "../runtime/program.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { Workspace } from "../runtime/workspace.ts";
import { BatchSequence } from "./batch_sequence.ts";
import { KvSlots } from "./batch_slots.ts";
import type { MediaSpan } from "./prefix.ts";
import { DONE, POSITION, SequenceBuffers, TOKEN } from "./sequence.ts";
import type { CausalLM, TokenLoopOptions, TokenStream } from "./token_loop.ts";

/** Prompt tokens prefilled between two decode chunks. */
export const PREFILL_CHUNK = 256;

/** Decode steps per chunk while a prompt is going in: joiners wait short chunks, not full ones, between theirs. */
export const STEPS_WHILE_PREFILLING = 4;

/** What a family implements to be batched: slot caches, prefill into one, and the decode step over B rows. */
export interface BatchedCausalLM<M = unknown> extends CausalLM<M> {
  /** A new KV cache of the model's geometry (one per extra slot; the caller disposes it). */
  createCache(): KvCache;
  /** Runs `f` (a prefill) with `cache` as the cache it reads and writes. */
  withCache<T>(cache: KvCache, f: () => T): T;
  /**
   * Optional: several text-only prompts in one forward, part j from `start` over its own `cache`; logits f32
   * [parts, vocab], row j of part j's last position. Without it, joiners are prefilled one after another.
   */
  prefillBatch?(parts: readonly { ids: ArrayLike<number>; start: number; cache: KvCache }[]): Tensor;
  /**
   * One decode step for B rows: `tokens`, `positions` i32 [B] (device), row r at `rows[r].position` (i32 [1],
   * device) over `rows[r].cache`; logits f32 [B, vocab].
   */
  decodeStepBatch(
    tokens: Tensor,
    positions: Tensor,
    rows: readonly { position: Tensor; cache: KvCache }[],
    ws: Workspace,
    logits: Tensor,
    greedy?: GreedyHead,
  ): Tensor;
}

/**
 * A step whose rows all draw greedily (temperature 0, no penalty, constraint or logprobs): its lm_head may leave out
 * logits that cannot be a row's maximum, computing those of `keepIds` (i32 [n], device: the union of the rows'
 * logit-bias ids, which a bias added afterwards may lift to the top) whatever they are.
 */
export interface GreedyHead {
  keepIds: Tensor | null;
}

/** Whether a model's family implements the batched decode step. */
export function canBatch(lm: CausalLM): lm is BatchedCausalLM {
  const l = lm as Partial<BatchedCausalLM>;
  return typeof l.decodeStepBatch === "function" && typeof l.createCache === "function" &&
    typeof l.withCache === "function";
}

/** Model.batchStats(): the batch now, and counters since load. */
export interface BatchStats {
  /** KV-cache slots: sequences that can run at once. */
  slots: number;
  /** Sequences holding a slot (prefilling or decoding). */
  active: number;
  /** Sequences waiting for a slot. */
  queued: number;
  /** Of the active ones, those whose prompt is still going in. */
  prefilling: number;
  /** Bytes of the slots held by active sequences. */
  kvBytesUsed: number;
  /** Bytes of all slots (allocated at load). */
  kvBytesBudget: number;
  /** Sequences that started from a cached prefix, and those that did not. */
  prefixHits: number;
  prefixMisses: number;
  /** Prompt tokens not prefilled thanks to a cached prefix. */
  prefixTokensReused: number;
  /** Decode steps run (each over every decoding row), and rows stepped in all. */
  steps: number;
  rowsStepped: number;
  /** Prefill forwards run (a chunk of one prompt, or several prompts' last chunks in one multi-sequence forward). */
  prefillForwards: number;
  /** Prompts whose last chunk went in beside others in one multi-sequence forward. */
  prefillsBatched: number;
}

interface Recorded {
  key: string;
  program: DecodeProgram;
}

export class BatchScheduler {
  readonly #lm: BatchedCausalLM;
  readonly slots: KvSlots;
  readonly #queue: BatchSequence[] = [];
  /** Active sequences by admission order. */
  readonly #active: BatchSequence[] = [];
  #driving = false;
  /** The batch step's workspace, and the batch size it was made for (kept while the size stays). */
  #ws: Workspace | undefined;
  #wsRows = 0;
  #recorded: Recorded | undefined;
  #exclusive: Promise<void> | undefined;
  #idle: (() => void)[] = [];
  #disposed = false;
  #stats = {
    prefixHits: 0,
    prefixMisses: 0,
    prefixTokensReused: 0,
    steps: 0,
    rowsStepped: 0,
    prefillForwards: 0,
    prefillsBatched: 0,
  };

  constructor(lm: BatchedCausalLM, slots: number) {
    this.#lm = lm;
    this.slots = new KvSlots(lm, slots);
  }

  /** A sequence for the text stages; it joins the queue when its consumer starts pulling. */
  sequence(
    promptIds: readonly number[],
    media: unknown,
    spans: readonly MediaSpan[],
    reuse: boolean,
    options: TokenLoopOptions,
  ): TokenStream {
    if (this.#disposed) throw new GemmakitError("generate", "the model was disposed");
    BatchSequence.check(promptIds, this.#lm.maxContext);
    return new BatchSequence(promptIds, media, spans, reuse, options, this);
  }

  enqueue(s: BatchSequence): void {
    if (this.#disposed) return s.end("abort", undefined, new GemmakitError("generate", "the model was disposed"));
    this.#queue.push(s);
    const signal = s.options.signal;
    if (signal) {
      // An abort leaves the queue at once, or frees the slot at the next chunk boundary.
      const onAbort = () => {
        const at = this.#queue.indexOf(s);
        if (at >= 0) {
          this.#queue.splice(at, 1);
          s.end("abort", undefined);
        }
        this.kick();
      };
      signal.addEventListener("abort", onAbort, { once: true });
      s.onEnd = () => signal.removeEventListener("abort", onAbort);
    }
    this.kick();
  }

  /** Wakes the scheduler loop (a sequence joined, was aborted or broke off). */
  kick(): void {
    if (this.#driving) return;
    this.#driving = true;
    queueMicrotask(() => this.#drive());
  }

  stats(): BatchStats {
    const active = this.#active.length;
    return {
      slots: this.slots.count,
      active,
      queued: this.#queue.length,
      prefilling: this.#active.filter((s) => s.phase === "prefill").length,
      kvBytesUsed: active * this.slots.bytesPerSlot,
      kvBytesBudget: this.slots.count * this.slots.bytesPerSlot,
      ...this.#stats,
    };
  }

  /**
   * Runs `f` once no sequence is active, holding off new ones until it ends (saving or loading a session's
   * cache, which is slot 0's).
   */
  async exclusive<T>(f: () => Promise<T> | T): Promise<T> {
    while (this.#exclusive) await this.#exclusive;
    let release!: () => void;
    this.#exclusive = new Promise((r) => (release = r));
    try {
      while (this.#active.length || this.#driving) await new Promise<void>((r) => this.#idle.push(r));
      return await f();
    } finally {
      this.#exclusive = undefined;
      release();
      this.kick();
    }
  }

  async #drive(): Promise<void> {
    try {
      while (!this.#disposed) {
        this.#reap();
        if (!this.#exclusive) this.#admit();
        // Prompts go in between decode chunks, up to PREFILL_CHUNK tokens a round: several short prompts in one
        // round (each joiner waits for no decode chunk per earlier joiner), a long one a chunk at a time. The text
        // prompts whose rest fits the round go in together, one forward over all their rows.
        const prefilling = this.#active.filter((s) => s.phase === "prefill");
        const together: BatchSequence[] = [];
        let budget = PREFILL_CHUNK;
        for (const s of prefilling) {
          if (budget <= 0) break;
          const left = s.promptIds.length - s.prefilled;
          if (this.#lm.prefillBatch && s.media === undefined && left <= budget) {
            together.push(s);
            budget -= left;
            continue;
          }
          const before = s.prefilled;
          await this.#prefillChunk(s, budget);
          budget -= Math.max(1, s.prefilled - before);
        }
        if (together.length > 1) await this.#prefillTogether(together);
        else if (together.length) await this.#prefillChunk(together[0], PREFILL_CHUNK);
        this.#reap();
        const decoding = this.#active.filter((s) => s.phase === "decode");
        if (decoding.length) await this.#decodeChunk(decoding);
        else if (!prefilling.length) break;
        // Consumers (streams, abort handlers) run between chunks.
        await new Promise((r) => setTimeout(r, 0));
      }
    } catch (e) {
      // Not a chunk's failure (those end their rows): a bug in the loop. Every sequence ends with it.
      for (const s of [...this.#active]) this.#finish(s, "abort", e);
      for (const s of this.#queue.splice(0)) s.end("abort", undefined, e);
    } finally {
      this.#release();
      this.#driving = false;
      for (const r of this.#idle.splice(0)) r();
      // Work that arrived after the loop decided to stop (a kick while #driving was still set).
      if (!this.#disposed && (this.#queue.length || this.#active.length) && !this.#exclusive) this.kick();
    }
  }

  /** Ends sequences whose consumer broke off or whose signal aborted; queued ones leave the line. */
  #reap(): void {
    for (let i = this.#queue.length - 1; i >= 0; i--) {
      const s = this.#queue[i];
      if (s.cancelled || s.options.signal?.aborted) {
        this.#queue.splice(i, 1);
        s.end("abort", undefined);
      }
    }
    for (const s of [...this.#active]) {
      if (s.cancelled || s.options.signal?.aborted) this.#finish(s, "abort");
    }
  }

  /** Queued sequences into free slots, first come first served, each from the longest cached prefix. */
  #admit(): void {
    while (this.#queue.length && this.slots.hasFree()) {
      const s = this.#queue.shift()!;
      try {
        const { slot, start } = this.slots.take(s, this.#active);
        s.slot = slot;
        s.start = s.prefilled = start;
        if (start > 0) {
          this.#stats.prefixHits++;
          this.#stats.prefixTokensReused += start;
        } else this.#stats.prefixMisses++;
        s.buffers = new SequenceBuffers(
          this.#lm.backend,
          this.#lm.vocabSize,
          this.#lm.maxContext,
          s.promptIds,
          s.options,
        );
        s.phase = "prefill";
        s.prefillStart = performance.now();
        this.#active.push(s);
      } catch (e) {
        if (s.slot !== undefined) this.slots.release(s.slot, undefined);
        s.end("abort", undefined, e);
      }
    }
  }

  /** The next chunk of a sequence's prompt, at most `tokens` long; the last one samples its first token. */
  async #prefillChunk(s: BatchSequence, tokens: number): Promise<void> {
    const lm = this.#lm, ids = s.promptIds, T = ids.length;
    try {
      // A prompt with media goes in at once: a chunk boundary must not split a media span.
      const end = s.media !== undefined ? T : Math.min(T, s.prefilled + tokens);
      const part = end === T ? ids : ids.slice(0, end);
      const cache = this.slots.cache(s.slot!);
      if (end < T) {
        lm.withCache(cache, () => lm.prefillFrom(part, s.prefilled, s.media)).dispose();
        this.#stats.prefillForwards++;
        s.prefilled = end;
        return;
      }
      await s.buffers!.nextMask();
      if (s.cancelled) return; // reaped next: its constraint is gone
      using first = lm.withCache(cache, () => lm.prefillFrom(ids, s.prefilled, s.media));
      this.#stats.prefillForwards++;
      this.#started(s, first);
    } catch (e) {
      this.#finish(s, "abort", e);
    }
  }

  /**
   * The rest of several text prompts in one forward (prefillBatch: the linears over all their rows, each prompt's
   * attention over its own slot); each samples its first token from its own logits row. A failed forward ends every
   * sequence in it with the error.
   */
  async #prefillTogether(group: BatchSequence[]): Promise<void> {
    const ready: BatchSequence[] = [];
    for (const s of group) {
      try {
        await s.buffers!.nextMask();
        if (!s.cancelled) ready.push(s); // else reaped next: its constraint is gone
      } catch (e) {
        this.#finish(s, "abort", e);
      }
    }
    if (!ready.length) return;
    let logits: Tensor;
    try {
      const parts = ready.map((s) => ({ ids: s.promptIds, start: s.prefilled, cache: this.slots.cache(s.slot!) }));
      logits = this.#lm.prefillBatch!(parts);
    } catch (e) {
      for (const s of ready) this.#finish(s, "abort", e);
      return;
    }
    this.#stats.prefillForwards++;
    this.#stats.prefillsBatched += ready.length;
    using _ = logits;
    for (const [j, s] of ready.entries()) {
      try {
        this.#started(s, logits.rows(j, 1));
      } catch (e) {
        this.#finish(s, "abort", e);
      }
    }
  }

  /** A prompt is in: its first token is drawn from `logits` (f32 [1, vocab]) and it decodes from now on. */
  #started(s: BatchSequence, logits: Tensor): void {
    s.buffers!.draw(logits);
    s.prefilled = s.promptIds.length;
    s.phase = "decode";
    this.#collect(s);
  }

  /** One decode chunk over every decoding sequence. */
  async #decodeChunk(rows: BatchSequence[]): Promise<void> {
    rows.sort((a, b) => a.slot! - b.slot!);
    const constrained = rows.some((s) => s.options.constraint);
    // A constraint's mask depends on the token just sampled: one step per chunk while one is in the batch. A chunk
    // ends when the first row reaches its maxTokens, so no row decodes past its limit and its slot frees on time.
    const joining = this.#active.some((s) => s.phase === "prefill");
    const steps = Math.max(
      1,
      Math.min(
        constrained ? 1 : Math.min(...rows.map((s) => s.options.chunkSize)),
        joining ? STEPS_WHILE_PREFILLING : Infinity,
        ...rows.map((s) => s.options.maxTokens - s.produced.length),
      ),
    );
    // A constraint that fails ends its own row only.
    for (const s of [...rows]) {
      try {
        // A consumer that broke off has disposed its constraint: the row leaves without touching it.
        if (s.cancelled) this.#finish(s, "abort");
        else await s.buffers!.nextMask();
      } catch (e) {
        this.#finish(s, "abort", e);
      }
      if (s.phase === "ended") rows.splice(rows.indexOf(s), 1);
    }
    if (!rows.length) return;
    try {
      const key = rows.map((s) => s.id).join(",");
      if (this.#recorded?.key !== key) {
        this.#dropRecording();
        const { step, fresh } = this.#stepOver(rows);
        // A new workspace (a new batch size): one eager step allocates it, so the recording allocates nothing.
        // Otherwise the workspace of this batch size is there already and the whole chunk runs off the event loop.
        if (fresh) step();
        this.#recorded = { key, program: DecodeProgram.record(this.#lm.backend, step) };
        const left = fresh ? steps - 1 : steps;
        if (left > 0) await this.#recorded.program.runAsync(left);
      } else {
        // A worker thread runs the chunk: the event loop (streams, aborts, new requests) stays free.
        await this.#recorded.program.runAsync(steps);
      }
    } catch (e) {
      // A failed chunk (a native error, a constraint's mask): its rows end with the error, their slots free again.
      this.#dropRecording();
      for (const s of rows) this.#finish(s, "abort", e);
      return;
    }
    this.#stats.steps += steps;
    this.#stats.rowsStepped += steps * rows.length;
    for (const s of rows) {
      s.decodeCalls++;
      // A consumer that broke off during the chunk wants no more ids (and its constraint is gone).
      if (s.cancelled) this.#finish(s, "abort");
      else this.#collect(s);
    }
  }

  /**
   * The batched step over these rows: gather tokens and positions, forward, sample each row. `fresh`: its workspace
   * is new (the batch size changed), so its buffers are allocated by the first call, which must not be recorded.
   */
  #stepOver(rows: BatchSequence[]): { step: () => void; fresh: boolean } {
    const lm = this.#lm, B = rows.length;
    const fresh = this.#wsRows !== B || !this.#ws;
    if (fresh) {
      this.#ws?.dispose();
      this.#ws = new Workspace(lm.backend);
      this.#wsRows = B;
    }
    const ws = this.#ws!;
    const tokens = ws.get("batch.tokens", [B], "i32");
    const positions = ws.get("batch.positions", [B], "i32");
    const logits = ws.get("batch.logits", [B, lm.vocabSize]);
    const per = rows.map((s) => ({
      draw: (lg: Tensor) => s.buffers!.draw(lg),
      token: s.buffers!.state.rows(TOKEN, 1),
      position: s.buffers!.state.rows(POSITION, 1),
      cache: this.slots.cache(s.slot!),
    }));
    const greedy = greedyHead(ws, rows);
    const step = () => {
      per.forEach((r, i) => {
        copyRows(r.token, tokens, i);
        copyRows(r.position, positions, i);
      });
      lm.decodeStepBatch(tokens, positions, per, ws, logits, greedy);
      per.forEach((r, i) => r.draw(logits.rows(i, 1)));
    };
    return { step, fresh };
  }

  #dropRecording(): void {
    this.#recorded?.program.dispose();
    this.#recorded = undefined;
  }

  /** Reads what a sequence sampled, hands it to the consumer, and ends it on a stop id, its limit or the context. */
  #collect(s: BatchSequence): void {
    const o = s.options, T = s.promptIds.length;
    const { state, fresh } = s.buffers!.readBack(T + s.produced.length);
    const lps = s.buffers!.readLogprobs(s.produced.length, fresh.length);
    for (const [i, id] of fresh.entries()) {
      s.produced.push(id);
      o.constraint?.accept(id);
      const stop = o.stopTokenIds.includes(id);
      s.deliver(id, stop, lps[i]);
      if (stop) return this.#finish(s, "stop");
      if (s.produced.length >= o.maxTokens) return this.#finish(s, "length");
    }
    if (state[DONE]) return this.#finish(s, "length"); // the history (context) is full
    if (o.signal?.aborted) this.#finish(s, "abort");
  }

  /** Ends an active (or failed) sequence: its slot keeps what its cache holds, for prefix reuse. */
  #finish(s: BatchSequence, reason: "stop" | "length" | "abort", error?: unknown): void {
    const at = this.#active.indexOf(s);
    if (at >= 0) this.#active.splice(at, 1);
    // The recorded step reads this sequence's buffers, which are freed now.
    if (s.phase === "decode") this.#dropRecording();
    let cached;
    try {
      cached = error === undefined && s.phase === "decode" ? s.buffers?.cached() : undefined;
    } catch { /* the cache contents stay unknown */ }
    // A prompt cut short still holds its first `prefilled` positions.
    const contents = cached ??
      (error === undefined && s.prefilled > 0
        ? { ids: s.promptIds.slice(0, s.prefilled), written: s.prefilled }
        : undefined);
    if (s.slot !== undefined) {
      this.slots.release(
        s.slot,
        contents && { ...contents, spans: s.spans.filter((p) => p.end <= contents.ids.length) },
      );
    }
    s.buffers?.dispose();
    s.buffers = undefined;
    if (!this.#active.length) this.#release();
    s.end(reason, cached, error);
  }

  /** With no sequence active: the recording and the batch workspace go, so memory is back to what load left. */
  #release(): void {
    this.#dropRecording();
    this.#ws?.dispose();
    this.#ws = undefined;
    this.#wsRows = 0;
  }

  /** Frees the slots (but slot 0, the model's own cache) and whatever the loop holds; sequences end. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const s of this.#queue.splice(0)) s.end("abort", undefined);
    for (const s of [...this.#active]) this.#finish(s, "abort");
    this.#release();
    this.slots.dispose();
  }
}

/**
 * When every row draws greedily, what the lm_head needs to know to skip logits that cannot win: the union of the rows'
 * logit-bias ids (in `ws`, written now); undefined when some row reads more than its argmax.
 */
function greedyHead(ws: Workspace, rows: readonly BatchSequence[]): GreedyHead | undefined {
  const keeps = rows.map((s) => s.buffers!.greedyKeepIds());
  if (keeps.some((k) => k === null)) return undefined;
  const ids = [...new Set(keeps.flatMap((k) => k!))].sort((a, b) => a - b);
  const keepIds = ids.length ? ws.get(`batch.keep_ids.${ids.length}`, [ids.length], "i32") : null;
  keepIds?.write(ids);
  return { keepIds };
}
