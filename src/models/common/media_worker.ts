/**
 * Image decoding and a family's processor run in a module Worker when a caller asks for it (`offThread`): a large
 * valid image costs seconds of decoding and resizing, which on the caller's thread would stall everything else on
 * its event loop (a server's other requests and health checks). Each call gets its own worker, ended when it
 * answers, so nothing it allocated outlives the request. Typed errors cross back as typed errors.
 * @module
 */
import * as errors from "../../errors.ts";
import { ImageError } from "../../errors.ts";

/** A thrown value as it crosses the worker boundary (structured clone drops an Error's class and fields). */
interface WireError {
  name: string;
  message: string;
  stack?: string;
  fields: Record<string, unknown>;
}

type Reply<T> = { ok: true; value: T } | { ok: false; error: WireError };

const ERROR_CLASSES = new Map<string, { prototype: Error }>(
  Object.values(errors)
    .filter((v): v is typeof errors.GemmakitError => typeof v === "function" && v.prototype instanceof Error)
    .map((c) => [c.name, c]),
);

function toWire(e: unknown): WireError {
  if (!(e instanceof Error)) return { name: "Error", message: String(e), fields: {} };
  const fields: Record<string, unknown> = {};
  // Own fields, `name` included (a class field, which some callers test instead of instanceof).
  for (const [k, v] of Object.entries(e)) {
    if ((v === null || ["string", "number", "boolean", "undefined"].includes(typeof v))) fields[k] = v;
  }
  return { name: e.name, message: e.message, stack: e.stack, fields };
}

/** The same class (so `instanceof` and `kind` checks work), message and fields as the worker threw. */
function fromWire(w: WireError, op: string): Error {
  const cls = ERROR_CLASSES.get(w.name);
  if (!cls) {
    // Not a gemmakit error (a bug in a decoder, say): still typed for the caller, and named.
    return new ImageError(op, "corrupt", `the image worker failed: ${w.name}: ${w.message}`);
  }
  const e = Object.create(cls.prototype) as Error;
  Object.assign(e, w.fields);
  Object.defineProperty(e, "message", { value: w.message, writable: true, configurable: true });
  Object.defineProperty(e, "stack", { value: w.stack, writable: true, configurable: true });
  return e;
}

/**
 * Posts `request` to a fresh module worker at `url` and resolves with its answer (or rejects with its typed
 * error). `transfer` moves buffers instead of copying them.
 */
export function runMediaWorker<T>(url: URL, request: unknown, transfer: Transferable[], op: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const worker = new Worker(url, { type: "module" });
    const done = () => worker.terminate();
    worker.onmessage = (ev: MessageEvent<Reply<T>>) => {
      done();
      if (ev.data.ok) resolve(ev.data.value);
      else reject(fromWire(ev.data.error, op));
    };
    worker.onerror = (ev: ErrorEvent) => {
      // An uncaught error inside the worker (it could not load, or ran out of memory): the request fails typed.
      ev.preventDefault();
      done();
      reject(new ImageError(op, "corrupt", `the image worker failed: ${ev.message}`));
    };
    worker.postMessage(request, transfer);
  });
}

/**
 * The worker's side: answers each message with `handle`'s result, or with the error it threw. `transfer` names
 * the result's buffers to move back.
 */
export function serveMediaWorker<Q, T>(handle: (request: Q) => T, transfer: (result: T) => Transferable[]): void {
  const scope = self as unknown as {
    onmessage: ((ev: MessageEvent<Q>) => void) | null;
    postMessage(m: unknown, t?: Transferable[]): void;
  };
  scope.onmessage = (ev: MessageEvent<Q>) => {
    let reply: Reply<T>, moved: Transferable[] = [];
    try {
      const value = handle(ev.data);
      reply = { ok: true, value };
      moved = transfer(value);
    } catch (e) {
      reply = { ok: false, error: toWire(e) };
    }
    scope.postMessage(reply, moved);
  };
}
