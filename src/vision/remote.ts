/**
 * Fetching a remote (http/https) image or video for a caller that opted in, without letting the URL reach what lies
 * behind the machine (SSRF): the host is resolved once, every address it resolves to must be public (no loopback,
 * private, link-local, multicast, unspecified or reserved range, in IPv4, IPv6 and the IPv6 forms that embed an IPv4
 * address), and the connection goes to that checked address — a plain TCP socket (TLS on top, verified against the
 * host name) carrying one HTTP/1.1 GET — so a second DNS answer (rebinding) is never consulted. Redirects are followed
 * by hand, at most `maxRedirects`, each hop resolved and checked again. The whole fetch, DNS to last byte, runs under
 * one deadline and one byte limit. Every failure but an oversized body is the same {@link RemoteMediaError}
 * sentence, so the fetcher cannot be used to map the network behind it.
 * @module
 */
import { RemoteMediaError } from "../errors.ts";

/** Options of {@link fetchRemoteMedia}. */
export interface RemoteFetchOptions {
  /** Largest body in bytes (checked against Content-Length first, then as it arrives). */
  maxBytes: number;
  /** The whole fetch, DNS to last byte, redirects included. Default 10 s. */
  timeoutMs?: number;
  /** Redirect hops followed (each one checked again). Default 3; 0 follows none. */
  maxRedirects?: number;
  /** Aborts the fetch (e.g. the client of a server went away). */
  signal?: AbortSignal;
  /**
   * For tests only: the host name → addresses lookup (default `Deno.resolveDns`, A and AAAA), so that a test can
   * point a name at a local server.
   */
  resolve?: (host: string, signal: AbortSignal) => Promise<string[]>;
  /**
   * For tests only: addresses taken even though they are not public (e.g. `["127.0.0.1"]` for a local test
   * server). Never set this from anything a client sends.
   */
  unsafeAllowAddresses?: readonly string[];
}

/** The one message of every failure but size: it must not say which of them it was. */
const UNREACHABLE = "the URL could not be fetched (it is not public, not reachable, or did not answer in time with " +
  "a 2xx response)";
const HINT = "pass a public http(s) URL that answers with the media itself, or send the bytes inline";
const MAX_HEADER_BYTES = 32 * 1024;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** Internal: a failure whose detail stays in `cause` (for logs), never in the message. */
class Unreachable extends Error {}

function unreachable(cause: unknown): RemoteMediaError {
  return new RemoteMediaError("unreachable", UNREACHABLE, { hint: HINT, cause });
}

/** The 4 bytes of a dotted-quad IPv4 address (the canonical form URL and DNS give), or undefined. */
export function parseIpv4(text: string): number[] | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (!m) return undefined;
  const b = m.slice(1).map(Number);
  return b.every((x) => x <= 255) ? b : undefined;
}

/** The 16 bytes of an IPv6 address (with `::` and a trailing dotted quad allowed; brackets and a zone stripped). */
export function parseIpv6(text: string): number[] | undefined {
  let s = text.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  if (!s.includes(":")) return undefined;
  const quad = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (quad) {
    // A trailing dotted quad is the last two groups written in decimal.
    const v4 = parseIpv4(quad[1]);
    if (!v4) return undefined;
    s = s.slice(0, -quad[1].length) + `${((v4[0] << 8) | v4[1]).toString(16)}:${((v4[2] << 8) | v4[3]).toString(16)}`;
  }
  const halves = s.split("::");
  if (halves.length > 2) return undefined;
  const groups = (h: string) => (h === "" ? [] : h.split(":"));
  const head = groups(halves[0]), tail = halves.length === 2 ? groups(halves[1]) : [];
  const fill = 8 - head.length - tail.length;
  if (halves.length === 1 ? fill !== 0 : fill < 1) return undefined;
  const all = [...head, ...Array<string>(halves.length === 2 ? fill : 0).fill("0"), ...tail];
  if (!all.every((g) => /^[0-9a-f]{1,4}$/i.test(g))) return undefined;
  return all.flatMap((g) => [parseInt(g, 16) >> 8, parseInt(g, 16) & 0xff]);
}

/** IPv4 ranges that are not the public internet (RFC 6890 special-purpose registry, plus multicast/reserved). */
const V4_BLOCKED: [number[], number][] = [
  [[0, 0, 0, 0], 8], // "this network", 0.0.0.0 included (reaches the local host on Linux)
  [[10, 0, 0, 0], 8],
  [[100, 64, 0, 0], 10], // carrier-grade NAT
  [[127, 0, 0, 0], 8],
  [[169, 254, 0, 0], 16], // link-local, cloud metadata endpoints
  [[172, 16, 0, 0], 12],
  [[192, 0, 0, 0], 24],
  [[192, 0, 2, 0], 24],
  [[192, 88, 99, 0], 24],
  [[192, 168, 0, 0], 16],
  [[198, 18, 0, 0], 15],
  [[198, 51, 100, 0], 24],
  [[203, 0, 113, 0], 24],
  [[224, 0, 0, 0], 4], // multicast
  [[240, 0, 0, 0], 4], // reserved, broadcast
];

function inPrefix(addr: number[], prefix: number[], bits: number): boolean {
  for (let i = 0; i < prefix.length && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((addr[i] & mask) !== (prefix[i] & mask)) return false;
  }
  return true;
}

function publicV4(b: number[]): boolean {
  return !V4_BLOCKED.some(([p, bits]) => inPrefix(b, p, bits));
}

function publicV6(b: number[]): boolean {
  const zeros = (n: number) => b.slice(0, n).every((x) => x === 0);
  // Forms that carry an IPv4 address are judged by it (mapped ::ffff:0:0/96, NAT64 64:ff9b::/96, 6to4 2002::/16);
  // the deprecated IPv4-compatible ::/96, which also holds :: and ::1, is never a public host.
  if (zeros(10) && b[10] === 0xff && b[11] === 0xff) return publicV4(b.slice(12));
  if (zeros(12)) return false;
  if (inPrefix(b, [0x00, 0x64, 0xff, 0x9b], 32) && b.slice(4, 12).every((x) => x === 0)) return publicV4(b.slice(12));
  if (b[0] === 0x20 && b[1] === 0x02) return publicV4(b.slice(2, 6));
  const blocked: [number[], number][] = [
    [[0x01, 0x00], 64], // discard-only
    [[0x20, 0x01, 0x00, 0x00], 32], // Teredo (tunnels to arbitrary IPv4)
    [[0x20, 0x01, 0x0d, 0xb8], 32], // documentation
    [[0xfc], 7], // unique local
    [[0xfe, 0x80], 10], // link-local
    [[0xfe, 0xc0], 10], // site-local (deprecated)
    [[0xff], 8], // multicast
  ];
  return !blocked.some(([p, bits]) => inPrefix(b, p, bits));
}

/** Whether an address (IPv4 dotted quad or IPv6 text) is a public internet host. Unparsable text is not. */
export function isPublicAddress(address: string): boolean {
  const v4 = parseIpv4(address);
  if (v4) return publicV4(v4);
  const v6 = parseIpv6(address);
  return v6 ? publicV6(v6) : false;
}

async function resolveDns(host: string, signal: AbortSignal): Promise<string[]> {
  const lookups = (["A", "AAAA"] as const).map((type) =>
    Deno.resolveDns(host, type, { signal }).catch((e) => {
      if (signal.aborted) throw e;
      return [] as string[]; // no record of this type: the other may have one
    })
  );
  return (await Promise.all(lookups)).flat();
}

/** The address to connect to: the host itself when it is an IP literal, else its DNS answer, all of it checked. */
async function checkedAddress(url: URL, o: RemoteFetchOptions, signal: AbortSignal): Promise<string> {
  const host = url.hostname;
  const literal = parseIpv4(host) ? host : parseIpv6(host) ? host.replace(/^\[|\]$/g, "") : undefined;
  const addresses = literal ? [literal] : await (o.resolve ?? resolveDns)(host, signal);
  if (addresses.length === 0) throw new Unreachable(`no address for ${host}`);
  const allowed = (a: string) => isPublicAddress(a) || (o.unsafeAllowAddresses ?? []).includes(a);
  // Every answer must be public: a name that also resolves to an internal address is refused as a whole.
  const bad = addresses.find((a) => !allowed(a));
  if (bad !== undefined) throw new Unreachable(`${host} resolves to ${bad}, which is not public`);
  return addresses[0];
}

/** Reads from a connection through a small buffer; bodies go straight into their own arrays. */
class Reader {
  #buf: Uint8Array = new Uint8Array(0);
  #done = false;
  constructor(readonly conn: Deno.Conn) {}

  async #read(): Promise<Uint8Array | null> {
    if (this.#done) return null;
    const chunk = new Uint8Array(64 * 1024);
    const n = await this.conn.read(chunk);
    if (n === null) this.#done = true;
    return n === null ? null : chunk.subarray(0, n);
  }

  /** Text up to and including `delimiter`, failing past `max` bytes (header lines are short). */
  async until(delimiter: string, max: number): Promise<string> {
    const d = new TextEncoder().encode(delimiter);
    for (let from = 0;;) {
      for (let i = Math.max(0, from - d.length); i + d.length <= this.#buf.length; i++) {
        if (d.every((b, k) => this.#buf[i + k] === b)) {
          const text = new TextDecoder("latin1").decode(this.#buf.subarray(0, i + d.length));
          this.#buf = this.#buf.subarray(i + d.length);
          return text;
        }
      }
      from = this.#buf.length;
      if (this.#buf.length > max) throw new Unreachable("a response line or header block is too long");
      const chunk = await this.#read();
      if (!chunk) throw new Unreachable("the connection closed mid-response");
      this.#buf = concat([this.#buf, chunk]);
    }
  }

  /** Exactly n bytes. */
  async take(n: number): Promise<Uint8Array> {
    const out = new Uint8Array(n);
    let at = Math.min(n, this.#buf.length);
    out.set(this.#buf.subarray(0, at));
    this.#buf = this.#buf.subarray(at);
    while (at < n) {
      const chunk = await this.#read();
      if (!chunk) throw new Unreachable("the connection closed mid-body");
      const used = Math.min(chunk.length, n - at);
      out.set(chunk.subarray(0, used), at);
      at += used;
      if (used < chunk.length) this.#buf = chunk.slice(used);
    }
    return out;
  }

  /** Everything up to the end of the stream, failing (TooLarge) past `max` bytes. */
  async rest(max: number): Promise<Uint8Array> {
    const parts: Uint8Array[] = [this.#buf];
    let total = this.#buf.length;
    this.#buf = new Uint8Array(0);
    for (let chunk; (chunk = await this.#read());) {
      if ((total += chunk.length) > max) throw new TooLarge();
      parts.push(chunk);
    }
    if (total > max) throw new TooLarge();
    return concat(parts);
  }
}

class TooLarge extends Error {}

function concat(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return out;
}

/** One GET over one connection to `address`; a redirect comes back as its Location. */
async function getOnce(
  url: URL,
  address: string,
  maxBytes: number,
  closers: Set<Deno.Conn>,
  signal: AbortSignal,
): Promise<{ location: string } | { body: Uint8Array }> {
  const https = url.protocol === "https:";
  const port = url.port ? Number(url.port) : https ? 443 : 80;
  let conn: Deno.Conn = await Deno.connect({ hostname: address, port });
  closers.add(conn);
  // Connected after the deadline closed the others: close this one too (the abort will not see it).
  if (signal.aborted) conn.close();
  if (https) {
    // TLS over the socket already connected to the checked address, verified against the URL's host name.
    const tls = await Deno.startTls(conn as Deno.TcpConn, { hostname: url.hostname });
    closers.add(tls);
    conn = tls;
  }
  const path = (url.pathname || "/") + url.search;
  const request = `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nUser-Agent: gemmakit\r\nAccept: */*\r\n` +
    `Accept-Encoding: identity\r\nConnection: close\r\n\r\n`;
  const bytes = new TextEncoder().encode(request);
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
  const r = new Reader(conn);
  const head = await r.until("\r\n\r\n", MAX_HEADER_BYTES);
  const lines = head.split("\r\n");
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  if (!status) throw new Unreachable("not an HTTP/1.x response");
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const code = Number(status[1]);
  if (REDIRECTS.has(code) && headers.has("location")) return { location: headers.get("location")! };
  if (code < 200 || code > 299) throw new Unreachable(`HTTP ${code}`);
  if (/chunked/i.test(headers.get("transfer-encoding") ?? "")) {
    const parts: Uint8Array[] = [];
    let total = 0;
    while (true) {
      const line = await r.until("\r\n", 1024);
      const size = parseInt(line, 16);
      if (!Number.isSafeInteger(size) || size < 0) throw new Unreachable("a bad chunk size");
      if (size === 0) break;
      if ((total += size) > maxBytes) throw new TooLarge();
      parts.push(await r.take(size));
      await r.take(2);
    }
    return { body: concat(parts) };
  }
  const declared = headers.get("content-length");
  if (declared !== undefined) {
    const n = Number(declared);
    if (!Number.isSafeInteger(n) || n < 0) throw new Unreachable("a bad Content-Length");
    if (n > maxBytes) throw new TooLarge();
    return { body: await r.take(n) };
  }
  return { body: await r.rest(maxBytes) };
}

/** `work` or the abort, whichever settles first; `work` failing later (its socket closed) is not unhandled. */
function race<T>(work: Promise<T>, aborted: Promise<never>): Promise<T> {
  work.catch(() => {});
  return Promise.race([work, aborted]);
}

/**
 * GETs a public http(s) URL's body within `maxBytes` and `timeoutMs` (see the module doc for what is refused).
 * Throws {@link RemoteMediaError}: `not_allowed` (not http(s), or credentials in the URL), `too_large`, or
 * `unreachable` (everything else, one message).
 *
 * @example
 * ```ts
 * const bytes = await fetchRemoteMedia("https://example.com/cat.png", { maxBytes: 10 << 20 });
 * ```
 */
export async function fetchRemoteMedia(url: string | URL, options: RemoteFetchOptions): Promise<Uint8Array> {
  let current: URL;
  try {
    current = new URL(url);
  } catch (e) {
    throw new RemoteMediaError("not_allowed", "not a URL", { cause: e });
  }
  const timeoutMs = options.timeoutMs ?? 10_000;
  const maxRedirects = options.maxRedirects ?? 3;
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
  const conns = new Set<Deno.Conn>();
  const closeAll = () => {
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed already */ }
    }
    conns.clear();
  };
  // Aborting closes the sockets, which ends whatever read or write is pending.
  const aborted = new Promise<never>((_, reject) => {
    const stop = () => {
      closeAll();
      reject(new Unreachable(deadline.aborted ? `over ${timeoutMs} ms` : "aborted"));
    };
    if (signal.aborted) stop();
    else signal.addEventListener("abort", stop, { once: true });
  });
  aborted.catch(() => {});
  try {
    for (let hop = 0;; hop++) {
      if (current.protocol !== "http:" && current.protocol !== "https:") {
        if (hop === 0) throw new RemoteMediaError("not_allowed", "only http(s) URLs are fetched", { hint: HINT });
        throw new Unreachable(`a redirect to ${current.protocol}`);
      }
      if (current.username || current.password) {
        throw new RemoteMediaError("not_allowed", "a URL with credentials is not fetched", { hint: HINT });
      }
      const address = await race(checkedAddress(current, options, signal), aborted);
      const result = await race(getOnce(current, address, options.maxBytes, conns, signal), aborted);
      closeAll();
      if ("body" in result) return result.body;
      if (hop >= maxRedirects) throw new Unreachable(`more than ${maxRedirects} redirects`);
      current = new URL(result.location, current);
    }
  } catch (e) {
    if (e instanceof RemoteMediaError) throw e;
    if (e instanceof TooLarge) {
      throw new RemoteMediaError("too_large", `the body is over the limit of ${options.maxBytes} bytes`, {
        hint: "pass a smaller file",
      });
    }
    throw unreachable(e);
  } finally {
    closeAll();
  }
}
