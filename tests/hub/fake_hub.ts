/**
 * A local imitation of the Hugging Face Hub's download endpoints, on 127.0.0.1 and a free port:
 * the revision API (siblings with blob ids, sizes and LFS info), resolve (X-Repo-Commit, ETag /
 * X-Linked-Etag / X-Linked-Size; LFS files redirect to a CDN-like path), Range requests, 401 for a
 * gated repo without the right token, and switches to cut or corrupt a response.
 */

import { createHash } from "node:crypto";

export interface FakeFile {
  path: string;
  data: Uint8Array<ArrayBuffer>;
  /** Served through a redirect to /cdn/, named by sha256 as LFS files are. */
  lfs?: boolean;
}

export interface FakeRepo {
  id: string;
  commit: string;
  files: FakeFile[];
  /** Branches and tags → the commit. `main` is always there. */
  refs?: string[];
  /** Gated: every request needs `Authorization: Bearer <token>`. */
  token?: string;
}

export interface LoggedRequest {
  method: string;
  path: string;
  range: string | null;
  authorization: string | null;
}

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");
/** The id git gives a blob, which the hub sends as ETag for files outside LFS. */
const gitBlobId = (data: Uint8Array) => createHash("sha1").update(`blob ${data.length}\0`).update(data).digest("hex");

export class FakeHub {
  readonly requests: LoggedRequest[] = [];
  /** Paths whose next body is cut after half its bytes (the connection drops). */
  readonly cutNext = new Set<string>();
  /** Paths served with one byte changed (the size stays right). */
  readonly corrupt = new Set<string>();
  /** Answer Range requests with the whole file (200), as some servers do. */
  ignoreRange = false;
  /** List siblings by name only (no `?blobs=true` data), so clients must HEAD each file. */
  namesOnly = false;
  /** Where LFS redirects point, absolute as the hub's are (another FakeHub's url: a CDN on another origin); default this server. */
  cdnBase = "";
  readonly url: string;
  #server: Deno.HttpServer<Deno.NetAddr>;

  constructor(readonly repos: FakeRepo[]) {
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {}, onError: () => new Response(null, { status: 500 }) },
      (req) => this.#handle(req),
    );
    this.url = `http://127.0.0.1:${this.#server.addr.port}`;
  }

  /** Requests for file bytes (resolve or CDN), leaving out the API. */
  fileRequests(): LoggedRequest[] {
    return this.requests.filter((r) => !r.path.startsWith("/api/"));
  }

  async close(): Promise<void> {
    await this.#server.shutdown();
  }

  #handle(req: Request): Response {
    const url = new URL(req.url);
    const path = decodeURIComponent(url.pathname);
    const authorization = req.headers.get("authorization");
    this.requests.push({ method: req.method, path, range: req.headers.get("range"), authorization });
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/(revision|tree)\/(.+)$/.exec(path)?.filter((_, i) => i !== 2);
    const tree = path.includes("/tree/");
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(path);
    if (cdn) {
      const file = this.repos.flatMap((r) => r.files).find((f) => f.lfs && sha256(f.data) === cdn[1]);
      return file ? this.#bytes(req, file, new Headers()) : error(404, "EntryNotFound", "no such object");
    }
    const repo = this.repos.find((r) => r.id === (api ?? resolve)?.[1]);
    if (!api && !resolve) return error(404, "", "not found");
    if (!repo) return error(authorization ? 404 : 401, "RepoNotFound", "Repository not found");
    if (repo.token && authorization !== `Bearer ${repo.token}`) {
      return error(401, "GatedRepo", `Access to model ${repo.id} is restricted. You must have access to it.`);
    }
    const rev = (api ?? resolve)![2];
    if (rev !== repo.commit && rev !== "main" && !repo.refs?.includes(rev)) {
      return error(404, "RevisionNotFound", `Invalid rev id: ${rev}`);
    }
    if (api && this.namesOnly) {
      return Response.json({ id: repo.id, sha: repo.commit, siblings: repo.files.map((f) => ({ rfilename: f.path })) });
    }
    if (api && tree) { // what huggingface_hub's snapshot_download lists files with
      return Response.json(repo.files.map((f) => ({
        type: "file",
        path: f.path,
        size: f.data.length,
        oid: gitBlobId(f.lfs ? new TextEncoder().encode(`pointer ${sha256(f.data)}`) : f.data),
        ...(f.lfs ? { lfs: { oid: sha256(f.data), size: f.data.length, pointerSize: 134 } } : {}),
      })));
    }
    if (api) {
      const siblings = repo.files.map((f) => ({
        rfilename: f.path,
        size: f.data.length,
        blobId: gitBlobId(f.lfs ? new TextEncoder().encode(`pointer ${sha256(f.data)}`) : f.data),
        ...(f.lfs ? { lfs: { sha256: sha256(f.data), size: f.data.length, pointerSize: 134 } } : {}),
      }));
      return Response.json({ id: repo.id, sha: repo.commit, siblings });
    }
    const file = repo.files.find((f) => f.path === resolve![3]);
    if (!file) return error(404, "EntryNotFound", `${resolve![3]} does not exist`);
    const headers = new Headers({ "x-repo-commit": repo.commit });
    if (!file.lfs) {
      headers.set("etag", `"${gitBlobId(file.data)}"`);
      return this.#bytes(req, file, headers);
    }
    headers.set("etag", `"${gitBlobId(new TextEncoder().encode(`pointer ${sha256(file.data)}`))}"`);
    headers.set("x-linked-etag", `"${sha256(file.data)}"`);
    headers.set("x-linked-size", String(file.data.length));
    headers.set("location", `${this.cdnBase || this.url}/cdn/${sha256(file.data)}?expires=never`);
    return new Response(null, { status: 302, headers });
  }

  /** The file's bytes from the Range start, cut or corrupted when asked. */
  #bytes(req: Request, file: FakeFile, headers: Headers): Response {
    let data = file.data;
    if (this.corrupt.has(file.path)) {
      data = data.slice();
      data[data.length >> 1] ^= 0xff;
    }
    const range = this.ignoreRange ? null : /^bytes=(\d+)-$/.exec(req.headers.get("range") ?? "");
    const start = range ? Number(range[1]) : 0;
    if (start >= data.length && data.length > 0) return new Response(null, { status: 416 });
    headers.set("content-length", String(data.length - start));
    if (range) headers.set("content-range", `bytes ${start}-${data.length - 1}/${data.length}`);
    const status = range ? 206 : 200;
    if (req.method === "HEAD") return new Response(null, { status, headers });
    const body = data.subarray(start);
    if (!this.cutNext.delete(file.path)) return new Response(body, { status, headers });
    const stream = new ReadableStream<Uint8Array<ArrayBuffer>>({
      start(controller) {
        controller.enqueue(body.slice(0, body.length >> 1));
        setTimeout(() => controller.error(new Error("cut by the test")), 20);
      },
    });
    return new Response(stream, { status, headers });
  }
}

function error(status: number, code: string, message: string): Response {
  const headers = code ? { "x-error-code": code, "x-error-message": message } : undefined;
  return Response.json({ error: message }, { status, headers });
}

/** Bytes that do not repeat, so a misplaced chunk cannot go unnoticed. */
export function noise(length: number, seed: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export { gitBlobId, sha256 };
