/**
 * HTTP to the Hugging Face Hub as huggingface_hub does it: redirects followed by hand (the hub's own
 * headers live on the first response; the token goes only to the hub's origin), an idle timeout rather
 * than a total one, and hub error codes turned into typed errors.
 * @module
 */

import { HubAuthError, HubError, HubHttpError, HubNotFoundError } from "../errors.ts";

/** What every request to one hub needs. */
export interface HubContext {
  op: string;
  endpoint: string;
  repoId: string;
  token?: string;
  /** Abort when no bytes arrive for this long. */
  idleTimeoutMs: number;
}

/** The answer's status and headers; `hub` holds the first (the hub's own) response's headers. */
export interface Fetched {
  status: number;
  hub: Headers;
  headers: Headers;
}

/** The connection failed, timed out or dropped mid-body: worth a retry, or a sign the hub is unreachable. */
export class ConnectionFailed extends Error {
  override name = "ConnectionFailed";
  constructor(readonly url: string, cause: unknown) {
    super(`${url}: ${describe(cause)}`, { cause });
  }
}

/** An error's message and its causes' ("fetch failed: dns error: …"). */
function describe(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  return e.cause && e.cause !== e ? `${e.message}: ${describe(e.cause)}` : e.message;
}

interface FetchInit {
  method?: "GET" | "HEAD";
  headers?: Record<string, string>;
  /** What a 404 means here. */
  what: "repo" | "revision" | "file";
  /** Sees the final answer's status and headers before its body (may throw to refuse it). */
  onHeaders?: (status: number, headers: Headers) => Promise<void>;
  /** Receives the body chunk by chunk; without it the body is dropped. */
  onBody?: (chunk: Uint8Array) => Promise<void>;
  /** Stop at a redirect that carries the file's etag (a HEAD for metadata need not reach the CDN). */
  stopAtEtag?: boolean;
}

const USER_AGENT = "gemmakit/0.1 (deno)";

/** One request, redirects followed by hand; throws ConnectionFailed or a HubHttpError (or what onBody throws). */
export async function hubFetch(ctx: HubContext, url: string, init: FetchInit): Promise<Fetched> {
  const origin = new URL(ctx.endpoint).origin;
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(
      () => controller.abort(new Error(`no data for ${ctx.idleTimeoutMs / 1000} s`)),
      ctx.idleTimeoutMs,
    );
  };
  let current = url;
  let hub: Headers | undefined;
  try {
    for (let hop = 0; hop <= 10; hop++) {
      const headers = new Headers({ "user-agent": USER_AGENT, ...init.headers });
      if (ctx.token && new URL(current).origin === origin) headers.set("authorization", `Bearer ${ctx.token}`);
      arm();
      let res: Response;
      try {
        res = await fetch(current, {
          method: init.method ?? "GET",
          headers,
          redirect: "manual",
          signal: controller.signal,
        });
      } catch (e) {
        throw new ConnectionFailed(current, controller.signal.aborted ? controller.signal.reason : e);
      }
      hub ??= res.headers;
      const location = res.headers.get("location");
      const isRedirect = res.status >= 300 && res.status < 400 && location;
      if (isRedirect && !(init.stopAtEtag && (res.headers.has("x-linked-etag") || res.headers.has("etag")))) {
        await res.body?.cancel();
        current = new URL(location, current).href;
        continue;
      }
      if (!res.ok && !isRedirect) throw await statusError(ctx, current, res, init.what);
      try {
        await init.onHeaders?.(res.status, res.headers);
      } catch (e) {
        await res.body?.cancel();
        throw e;
      }
      if (!init.onBody || !res.body) await res.body?.cancel();
      else {
        const reader = res.body.getReader();
        try {
          for (;;) {
            let step: ReadableStreamReadResult<Uint8Array>;
            try {
              step = await reader.read();
            } catch (e) {
              throw new ConnectionFailed(current, controller.signal.aborted ? controller.signal.reason : e);
            }
            if (step.done) break;
            arm();
            await init.onBody(step.value);
          }
        } finally {
          await reader.cancel().catch(() => {});
        }
      }
      return { status: res.status, hub, headers: res.headers };
    }
    throw new HubError(ctx.op, `${url}: more than 10 redirects`);
  } finally {
    clearTimeout(timer);
  }
}

/** 3xx/4xx/5xx → the typed error, with the hub's X-Error-Code / X-Error-Message or JSON `error` as detail. */
async function statusError(ctx: HubContext, url: string, res: Response, what: FetchInit["what"]) {
  const text = await res.text().catch(() => "");
  let detail = res.headers.get("x-error-message") ?? "";
  if (!detail) {
    try {
      detail = String(JSON.parse(text).error ?? "");
    } catch {
      detail = text.slice(0, 300);
    }
  }
  const code = res.headers.get("x-error-code") ?? "";
  const page = `${ctx.endpoint}/${ctx.repoId}`;
  if (res.status === 401 || res.status === 403) {
    const gated = code === "GatedRepo" || /gated|restricted|authorized list|accept/i.test(detail);
    const hint = !ctx.token
      ? `${ctx.repoId} is gated or private (or does not exist): accept its license at ${page} while logged in, ` +
        `then set HF_TOKEN to a read token of that account`
      : gated
      ? `the token's account has no access yet: accept the license at ${page} (approval can take a while)`
      : `the token was refused: check HF_TOKEN is a valid read token with access to ${ctx.repoId}`;
    return new HubAuthError(ctx.op, res.status, url, detail || "access refused", gated, hint);
  }
  if (res.status === 404) {
    const kind = code === "RepoNotFound"
      ? "repo"
      : code === "RevisionNotFound"
      ? "revision"
      : code === "EntryNotFound"
      ? "file"
      : what;
    return new HubNotFoundError(ctx.op, res.status, url, detail, kind);
  }
  const hint = res.status >= 500 || res.status === 429 ? "the hub is busy or down; try again later" : undefined;
  return new HubHttpError(ctx.op, res.status, url, detail, hint);
}

/** A retry is worth it: the connection dropped, or the hub answered 5xx / 429. */
export function isTransient(e: unknown): boolean {
  if (e instanceof ConnectionFailed) return true;
  return e instanceof HubHttpError && !(e instanceof HubAuthError) && (e.status >= 500 || e.status === 429);
}

/** An ETag header's value without `W/` and quotes, as huggingface_hub names blobs. */
export function normalizeEtag(etag: string | null): string | undefined {
  return etag?.replace(/^W\//, "").replace(/^"|"$/g, "") || undefined;
}
