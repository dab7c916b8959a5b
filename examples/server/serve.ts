/**
 * Deno.serve behind a connection guard. Deno.serve itself bounds neither the number of open connections nor the
 * time a client may take to send its request headers (a connection that sends half a header line stays open for
 * good), so many slow clients could hold every socket and the memory behind them. Here the public port is a plain
 * TCP listener that caps open connections (one more gets a 503 and is closed), gives each request's header block
 * `headerTimeoutMs` to arrive whole, closes a keep-alive connection idle for `idleTimeoutMs`, and passes the bytes to
 * Deno.serve on a private Unix socket. Bodies are bounded by the app (body.ts: size, deadline, bytes in flight).
 * @module
 */

export interface ConnectionLimits {
  /** Open client connections at once; one more is answered 503 and closed. Default 256. */
  maxConnections: number;
  /** A request's header block must arrive whole within this long from its first byte. Default 10 s. */
  headerTimeoutMs: number;
  /** A keep-alive connection with no request under way is closed after this long. Default 30 s. */
  idleTimeoutMs: number;
}

export const DEFAULT_CONNECTION_LIMITS: ConnectionLimits = {
  maxConnections: 256,
  headerTimeoutMs: 10_000,
  idleTimeoutMs: 30_000,
};

export interface BoundedServer {
  addr: Deno.NetAddr;
  /** Client connections open now. */
  readonly connections: number;
  shutdown(): Promise<void>;
}

const BUSY_BODY = JSON.stringify({
  error: { message: "too many open connections; retry shortly", type: "overloaded_error", param: null, code: "busy" },
});
const BUSY = new TextEncoder().encode(
  "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\n" +
    `content-length: ${BUSY_BODY.length}\r\n\r\n${BUSY_BODY}`,
);

/**
 * Watches the client's bytes for request boundaries: header blocks (CRLFCRLF) and Content-Length bodies. A
 * chunked request body cannot be followed without parsing it; after one, only the idle timeout applies.
 */
class RequestTracker {
  state: "idle" | "head" | "body" | "untracked" = "idle";
  #tail = ""; // the last bytes of an unfinished header block (for a CRLFCRLF split across chunks)
  #head = "";
  #bodyLeft = 0;

  /** Feeds client bytes; returns true when a header block began or ended (the caller re-arms its timer). */
  feed(bytes: Uint8Array): boolean {
    let changed = false;
    let i = 0;
    while (i < bytes.length && this.state !== "untracked") {
      if (this.state === "body") {
        const n = Math.min(this.#bodyLeft, bytes.length - i);
        this.#bodyLeft -= n;
        i += n;
        if (this.#bodyLeft === 0) this.state = "idle", changed = true;
        continue;
      }
      if (this.state === "idle") {
        // Stray CRLFs between requests are allowed (RFC 9112 2.2).
        if (bytes[i] === 0x0d || bytes[i] === 0x0a) {
          i++;
          continue;
        }
        this.state = "head";
        this.#tail = this.#head = "";
        changed = true;
      }
      // In a header block: look for its end.
      const text = this.#tail + new TextDecoder("latin1").decode(bytes.subarray(i));
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) {
        this.#head = (this.#head + text.slice(this.#tail.length)).slice(-8192);
        this.#tail = text.slice(-3);
        return changed;
      }
      const consumed = end + 4 - this.#tail.length;
      this.#head = (this.#head + text.slice(this.#tail.length, end + 4)).toLowerCase();
      i += consumed;
      changed = true;
      if (/\r\ntransfer-encoding:[^\r]*chunked/.test(this.#head)) {
        this.state = "untracked";
        break;
      }
      const length = /\r\ncontent-length:\s*(\d+)/.exec(this.#head);
      this.#bodyLeft = length ? Number(length[1]) : 0;
      this.state = this.#bodyLeft > 0 ? "body" : "idle";
    }
    return changed;
  }
}

async function pipe(from: Deno.Conn, to: Deno.Conn, onChunk?: (b: Uint8Array) => void): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  try {
    while (true) {
      const n = await from.read(buf);
      if (n === null) break;
      const chunk = buf.subarray(0, n);
      onChunk?.(chunk);
      for (let at = 0; at < n;) at += await to.write(chunk.subarray(at));
    }
  } catch { /* either side closed */ }
}

function closeQuietly(c: Deno.Conn): void {
  try {
    c.close();
  } catch { /* closed already */ }
}

/**
 * Serves `handler` on hostname:port behind the connection guard (see the module doc). `listener` is a public
 * socket bound already: the CLI binds before it loads the model, so a busy port fails in a second, not a minute.
 */
export async function serveBounded(
  handler: (request: Request) => Response | Promise<Response>,
  options: { hostname?: string; port?: number; listener?: Deno.TcpListener; limits?: Partial<ConnectionLimits> } = {},
): Promise<BoundedServer> {
  const limits = { ...DEFAULT_CONNECTION_LIMITS, ...options.limits };
  const dir = await Deno.makeTempDir({ prefix: "gemmakit-serve-" });
  const path = `${dir}/http.sock`;
  const inner = Deno.serve({ path, onListen: () => {} }, handler);
  const listener = options.listener ??
    Deno.listen({ hostname: options.hostname ?? "127.0.0.1", port: options.port ?? 8080 });
  const open = new Set<Deno.Conn>();

  async function guard(client: Deno.Conn): Promise<void> {
    let backend: Deno.Conn;
    try {
      backend = await Deno.connect({ transport: "unix", path });
    } catch {
      closeQuietly(client);
      return;
    }
    const tracker = new RequestTracker();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const close = () => {
      closeQuietly(client);
      closeQuietly(backend);
    };
    const arm = () => {
      clearTimeout(timer);
      if (tracker.state === "head") timer = setTimeout(close, limits.headerTimeoutMs);
      else if (tracker.state === "idle" || tracker.state === "untracked") {
        timer = setTimeout(close, limits.idleTimeoutMs);
      }
      // "body": the app's body deadline applies; the response side re-arms below.
    };
    // The first request's header block starts its clock at accept: a client that sends nothing is one too.
    tracker.state = "head";
    arm();
    const up = pipe(client, backend, (b) => {
      if (tracker.feed(b) || tracker.state === "untracked") arm();
    }).then(async () => {
      // The client is done sending (or gone): let the answer finish, under the idle clock.
      tracker.state = "untracked";
      arm();
      await (backend as Deno.UnixConn).closeWrite().catch(() => {});
    });
    await pipe(backend, client, () => {
      // Answer bytes while no request is being sent: the connection is busy, not idle.
      if (tracker.state === "idle" || tracker.state === "untracked") arm();
    });
    up.catch(() => {});
    clearTimeout(timer);
    close();
  }

  (async () => {
    for await (const client of listener) {
      if (open.size >= limits.maxConnections) {
        client.write(BUSY).catch(() => {}).finally(() => closeQuietly(client));
        continue;
      }
      open.add(client);
      guard(client).finally(() => open.delete(client));
    }
  })().catch(() => {/* the listener closed: shutdown */});

  return {
    addr: listener.addr as Deno.NetAddr,
    get connections() {
      return open.size;
    },
    async shutdown() {
      listener.close();
      for (const c of open) closeQuietly(c);
      await inner.shutdown();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
