/**
 * A model serves as many generations at once as it has KV-cache slots (one, unless loaded with `parallel`: then
 * the library batches them). Requests beyond that wait here in arrival order (first come, first served), up to a
 * bound; past the bound they are refused at once so a burst cannot pile up unbounded memory and latency. A waiter
 * whose client disconnects leaves the line.
 * @module
 */
import { ApiError } from "./errors.ts";

interface Waiter {
  grant: (release: () => void) => void;
}

export class FairQueue {
  readonly #maxWaiting: number;
  readonly #waiting: Waiter[] = [];
  readonly #slots: number;
  #running = 0;
  /** Moving average of how long a slot is held, for Retry-After. */
  #avgHoldMs = 1000;

  /** `slots`: generations that run at once (the model's KV-cache slots). */
  constructor(maxWaiting: number, slots = 1) {
    this.#maxWaiting = maxWaiting;
    this.#slots = Math.max(1, slots);
  }

  /** Requests waiting for the model (not counting the one running). */
  get depth(): number {
    return this.#waiting.length;
  }

  get busy(): boolean {
    return this.#running > 0;
  }

  /** Generations holding a slot now. */
  get running(): number {
    return this.#running;
  }

  /**
   * Waits for the model; resolves with the function that hands it on (call it exactly once). Rejects with
   * a 503 ApiError when the line is full, or with the signal's reason when it aborts while waiting.
   */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#running < this.#slots) {
      this.#running++;
      return Promise.resolve(this.#releaser());
    }
    if (this.#waiting.length >= this.#maxWaiting) {
      // Slots free up `slots` at a time: the line ahead drains that much faster.
      const seconds = Math.max(1, Math.ceil(((this.#waiting.length + 1) * this.#avgHoldMs) / this.#slots / 1000));
      return Promise.reject(
        new ApiError(503, `the server is at capacity (${this.#waiting.length} requests waiting); retry later`, {
          type: "overloaded_error",
          code: "server_overloaded",
          retryAfter: seconds,
        }),
      );
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        const at = this.#waiting.indexOf(waiter);
        if (at >= 0) this.#waiting.splice(at, 1);
        reject(signal!.reason);
      };
      const waiter: Waiter = {
        grant: (release) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(release);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiting.push(waiter);
    });
  }

  #releaser(): () => void {
    const start = performance.now();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#avgHoldMs = 0.8 * this.#avgHoldMs + 0.2 * (performance.now() - start);
      const next = this.#waiting.shift();
      if (next) next.grant(this.#releaser());
      else this.#running--;
    };
  }
}
