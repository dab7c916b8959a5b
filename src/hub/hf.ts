/**
 * Hugging Face Hub downloads into the cache layout huggingface_hub uses, so files either side fetched
 * are reused by the other: `models--{org}--{name}/blobs/{etag}`, `snapshots/{commit}/{file}` as relative
 * symlinks to the blobs, `refs/{revision}` holding the commit. Downloads resume, are verified (size,
 * and sha256 for LFS files) and appear under their final name only when complete.
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { dirname, join, relative } from "node:path";
import { GemmakitError } from "../errors.ts";
import { GgufNotInRepoError, HubError, HubHttpError, HubUnreachableError, IntegrityError } from "../errors.ts";
import { diskOp, hashPrefix, removeQuietly, statOrNull, withFileLock, writeAll, writeTextAtomic } from "../fs.ts";
import { ConnectionFailed, type HubContext, hubFetch, isTransient, normalizeEtag } from "./hf_http.ts";
import { type ProgressCallback, stderrProgress } from "./progress.ts";

/** The files a model needs to load and chat: weights, config, tokenizer, chat template, processor. */
export const DEFAULT_ALLOW_PATTERNS: readonly string[] = [
  "config.json",
  "generation_config.json",
  "tokenizer*.json",
  "tokenizer.model",
  "special_tokens_map.json",
  "chat_template.jinja",
  "*.safetensors",
  "model.safetensors.index.json",
  "preprocessor_config.json",
  "processor_config.json",
];

/** Options of {@link downloadRepo}. */
export interface DownloadRepoOptions {
  /** Branch, tag or commit; default the `@revision` of the repo id, else `main`. */
  revision?: string;
  /** Default `$HF_ENDPOINT`, else https://huggingface.co. */
  endpoint?: string;
  /** Sent as a Bearer token; default `$HF_TOKEN`, `$HUGGING_FACE_HUB_TOKEN`, then the token file `hf auth login` writes. `false`: none. */
  token?: string | false;
  /** Default `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`. */
  cacheDir?: string;
  /** fnmatch patterns of the repo paths to fetch (`*` also crosses `/`); default {@link DEFAULT_ALLOW_PATTERNS}. */
  allowPatterns?: readonly string[];
  /** fnmatch patterns of paths to leave out even when allowed. */
  ignorePatterns?: readonly string[];
  /** Narrows the allowed paths once the revision's listing is known (a GGUF repo's one quant file). */
  selectFiles?: (paths: readonly string[]) => readonly string[];
  /** Receives progress instead of the bar on stderr. */
  onProgress?: ProgressCallback;
  /** Resumes after a dropped connection or a 5xx, per file; default 5. */
  retries?: number;
  /** Give up on a request when no bytes come for this long; default 30 000 ms. */
  idleTimeoutMs?: number;
  /** Use only the cache (default: `$HF_HUB_OFFLINE` set to 1/true/yes/on). */
  offline?: boolean;
}

/** One file of the revision, as the API lists it with `?blobs=true`. */
interface Sibling {
  rfilename: string;
  size?: number;
  blobId?: string;
  lfs?: { sha256: string; size: number };
}

/** `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`. */
export function hfCacheDir(): string {
  return Deno.env.get("HF_HUB_CACHE") ?? join(hfHome(), "hub");
}

function hfHome(): string {
  const home = Deno.env.get("HF_HOME");
  if (home) return home;
  const xdg = Deno.env.get("XDG_CACHE_HOME") ??
    join(Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE") ?? ".", ".cache");
  return join(xdg, "huggingface");
}

/** `org/name@rev` → its parts; throws on anything that is not a repo id. */
export function parseRepoId(spec: string): { repoId: string; revision?: string } {
  const at = spec.indexOf("@");
  const repoId = at < 0 ? spec : spec.slice(0, at);
  const revision = at < 0 ? undefined : spec.slice(at + 1);
  if (!/^[\w.-]+(\/[\w.-]+)?$/.test(repoId) || repoId.includes("..") || revision === "") {
    throw new GemmakitError("downloadRepo", `"${spec}" is not a repo id`, {
      hint: 'write it as "org/name" or "org/name@revision"',
    });
  }
  return { repoId, revision };
}

const GGUF_OP = "downloadGguf";
const stem = (path: string) => path.split("/").pop()!.replace(/\.gguf$/i, "");

/**
 * The one model file of a GGUF repo that `tag` names, from the repo's paths: a file name (`x.gguf`, or its path
 * in the repo), or a quant tag matched case-insensitively as a whole part of the name, as llama.cpp's `-hf
 * owner/repo:Q4_K_M` and Ollama's `hf.co/owner/repo:Q4_K_M` do (`Q4_K_M` → `gemma-3-1b-it-Q4_K_M.gguf`).
 * Projector files (`mmproj*`) are never picked by a quant tag.
 * @throws GgufNotInRepoError when nothing or more than one file matches, listing the repo's GGUF files
 */
export function pickGgufFile(repoId: string, tag: string, paths: readonly string[]): string {
  const ggufs = paths.filter((p) => /\.gguf$/i.test(p)).sort();
  const models = ggufs.filter((p) => !/mmproj/i.test(p.split("/").pop()!));
  const fail = (why: string) => new GgufNotInRepoError(GGUF_OP, repoId, tag, models, why);
  if (/\.gguf$/i.test(tag)) {
    const hits = ggufs.filter((p) => p === tag || p.split("/").pop() === tag);
    if (hits.length === 1) return hits[0];
    throw fail(hits.length ? `matches ${hits.join(" and ")}; give the path in the repo` : "is not a file of the repo");
  }
  const escaped = tag.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const part = new RegExp(`(?:^|[-_.])${escaped}(?:[-_.]|$)`, "i");
  let hits = models.filter((p) => part.test(stem(p)));
  // "Q4_K" also matches "Q4_K_M" as a part; a file that ends with the tag itself is the closer match.
  if (hits.length > 1) {
    const exact = hits.filter((p) => new RegExp(`(?:^|[-_.])${escaped}$`, "i").test(stem(p)));
    if (exact.length > 0) hits = exact;
  }
  if (hits.length === 1) return hits[0];
  if (hits.length === 0) throw fail("matches no GGUF file");
  if (hits.every((p) => /-\d{5}-of-\d{5}$/.test(stem(p)))) {
    throw fail(
      `is split into ${hits.length} files; gemmakit reads single-file GGUFs (merge them with llama-gguf-split)`,
    );
  }
  throw fail(`matches ${hits.length} files (${hits.join(", ")}); name the file instead`);
}

/**
 * Downloads one GGUF file of a repo (`org/name[@revision]`) into the Hugging Face cache and returns its path in
 * the snapshot; `tag` is a quant (`Q4_K_M`) or a file name (see {@link pickGgufFile}). Only that file is fetched.
 * When the hub cannot be reached, the file is picked from the cached snapshot.
 * @example
 * ```ts
 * const path = await downloadGguf("ggml-org/gemma-3-1b-it-GGUF", "Q4_K_M");
 * ```
 */
export async function downloadGguf(repoSpec: string, tag: string, options: DownloadRepoOptions = {}): Promise<string> {
  const { repoId } = parseRepoId(repoSpec);
  if (!/^[\w.\/-]+$/.test(tag) || tag.includes("..")) {
    throw new GemmakitError(GGUF_OP, `"${tag}" is not a quant tag or GGUF file name`, {
      hint: `write ${repoId}:Q4_K_M or ${repoId}:<file>.gguf`,
    });
  }
  let picked: string | undefined;
  const snapshot = await downloadRepo(repoSpec, {
    ...options,
    allowPatterns: ["*.gguf"],
    selectFiles: (paths) => [picked = pickGgufFile(repoId, tag, paths)],
  });
  // The listing was not fetched (offline, or the hub unreachable): pick among what the cached snapshot holds.
  picked ??= pickGgufFile(repoId, tag, await snapshotFiles(snapshot));
  return join(snapshot, ...picked.split("/"));
}

async function snapshotFiles(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(join(dir, prefix))) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory) out.push(...await snapshotFiles(dir, rel));
    else out.push(rel);
  }
  return out;
}

/**
 * Downloads the wanted files of a model repo revision into the Hugging Face cache and returns the
 * snapshot folder (`…/models--org--name/snapshots/{commit}`). Files already cached are not fetched
 * again; an interrupted download resumes. When the hub cannot be reached, a snapshot the cache already
 * has for the revision is returned.
 * @throws HubAuthError (gated or private), HubNotFoundError, HubUnreachableError, IntegrityError, DiskWriteError
 * @example
 * ```ts
 * const dir = await downloadRepo("google/gemma-3-1b-it"); // set HF_TOKEN: the repo is gated
 * ```
 */
export async function downloadRepo(repoSpec: string, options: DownloadRepoOptions = {}): Promise<string> {
  const op = "downloadRepo";
  const parsed = parseRepoId(repoSpec);
  if (parsed.revision && options.revision && parsed.revision !== options.revision) {
    throw new GemmakitError(op, `revision given twice: "@${parsed.revision}" and { revision: "${options.revision}" }`);
  }
  const repoId = parsed.repoId;
  const revision = options.revision ?? parsed.revision ?? "main";
  const endpoint = (options.endpoint ?? Deno.env.get("HF_ENDPOINT") ?? "https://huggingface.co").replace(/\/+$/, "");
  const token = options.token === false ? undefined : options.token ?? await defaultToken();
  const cacheDir = options.cacheDir ?? hfCacheDir();
  const folder = `models--${repoId.replaceAll("/", "--")}`;
  const storage = join(cacheDir, folder);
  const report = options.onProgress ?? stderrProgress();
  const ctx: HubContext = { op, endpoint, repoId, token, idleTimeoutMs: options.idleTimeoutMs ?? 30_000 };
  const offline = options.offline ?? /^(1|true|yes|on)$/i.test(Deno.env.get("HF_HUB_OFFLINE") ?? "");

  const infoUrl = `${endpoint}/api/models/${repoId}/revision/${encodeURIComponent(revision)}?blobs=true`;
  let info: { sha: string; siblings: Sibling[] };
  try {
    if (offline) throw new ConnectionFailed(infoUrl, new Error("not requested: offline mode (HF_HUB_OFFLINE)"));
    report({ phase: "metadata", file: `${repoId}@${revision}`, bytes: 0, message: infoUrl });
    info = await revisionInfo(ctx, infoUrl);
  } catch (e) {
    if (!(e instanceof ConnectionFailed)) throw e;
    const cached = await cachedSnapshot(storage, revision);
    if (cached) {
      report({ phase: "done", file: repoId, bytes: 0, message: `hub not reached (${e.message}); cached: ${cached}` });
      return cached;
    }
    const tried = [`GET ${e.message}`, `the cache: no snapshot of ${revision} in ${storage}`];
    throw new HubUnreachableError(
      op,
      tried,
      "check the network, or set HF_ENDPOINT to a mirror; a snapshot once downloaded is used offline",
    );
  }

  const commit = info.sha;
  const allow = (options.allowPatterns ?? DEFAULT_ALLOW_PATTERNS).map(globToRegExp);
  const ignore = (options.ignorePatterns ?? []).map(globToRegExp);
  let wanted = info.siblings.filter((s) =>
    allow.some((re) => re.test(s.rfilename)) && !ignore.some((re) => re.test(s.rfilename))
  );
  if (options.selectFiles) {
    const selected = new Set(options.selectFiles(wanted.map((s) => s.rfilename)));
    wanted = wanted.filter((s) => selected.has(s.rfilename));
  }
  const snapshot = join(storage, "snapshots", commit);
  let fetched = 0;
  for (const sibling of wanted) {
    const path = safeRepoPath(op, sibling.rfilename);
    const url = `${endpoint}/${repoId}/resolve/${commit}/${path.split("/").map(encodeURIComponent).join("/")}`;
    const meta = await blobMeta(ctx, sibling, url, commit);
    const blob = join(storage, "blobs", meta.id);
    if ((await statOrNull(blob))?.size !== meta.size) {
      const lock = join(cacheDir, ".locks", folder, `${meta.id}.lock`); // huggingface_hub's lock: shared with Python
      const wait = () => report({ phase: "wait", file: path, bytes: 0, message: "another process is downloading it" });
      await withFileLock(op, lock, wait, async () => {
        if ((await statOrNull(blob))?.size === meta.size) return;
        await downloadBlob(ctx, url, blob, path, meta, options.retries ?? 5, report);
        fetched++;
      });
    }
    await link(op, blob, join(snapshot, ...path.split("/")));
  }
  await diskOp(op, `create ${snapshot}`, () => Deno.mkdir(snapshot, { recursive: true }));
  if (revision !== commit) {
    const ref = join(storage, "refs", ...revision.split("/"));
    await diskOp(op, `write ${ref}`, async () => {
      await Deno.mkdir(dirname(ref), { recursive: true });
      await writeTextAtomic(ref, commit);
    });
  }
  report({
    phase: "done",
    file: repoId,
    bytes: 0,
    message: `${wanted.length} files (${fetched} fetched) in ${snapshot}`,
  });
  return snapshot;
}

async function defaultToken(): Promise<string | undefined> {
  const env = Deno.env.get("HF_TOKEN") ?? Deno.env.get("HUGGING_FACE_HUB_TOKEN");
  if (env) return env;
  const file = Deno.env.get("HF_TOKEN_PATH") ?? join(hfHome(), "token");
  return (await Deno.readTextFile(file).catch(() => "")).trim() || undefined;
}

async function revisionInfo(ctx: HubContext, url: string): Promise<{ sha: string; siblings: Sibling[] }> {
  const chunks: Uint8Array[] = [];
  for (let attempt = 0;; attempt++) {
    try {
      chunks.length = 0;
      await hubFetch(ctx, url, { what: "revision", onBody: (c) => Promise.resolve(void chunks.push(c)) });
      break;
    } catch (e) {
      // a refused connection fails at once (offline is the common case); a 5xx is retried
      if (e instanceof ConnectionFailed || !isTransient(e) || attempt >= 2) throw e;
      await delay(attempt);
    }
  }
  let body: { sha?: unknown; siblings?: unknown };
  try {
    body = JSON.parse(new TextDecoder().decode(concat(chunks)));
  } catch (e) {
    throw new HubError(ctx.op, `${url} did not answer JSON: ${(e as Error).message}`);
  }
  if (typeof body.sha !== "string" || !/^[0-9a-f]{40}$/.test(body.sha) || !Array.isArray(body.siblings)) {
    throw new HubError(ctx.op, `${url} answered without a commit sha and a file list`);
  }
  const siblings = (body.siblings as Sibling[]).filter((s) => typeof s?.rfilename === "string");
  return { sha: body.sha, siblings };
}

/** Blob name, size and (LFS) sha256: from the listing when it has them, else a HEAD on the resolve URL. */
async function blobMeta(ctx: HubContext, s: Sibling, url: string, commit: string) {
  let id = s.lfs?.sha256 ?? s.blobId;
  let size = s.lfs?.size ?? s.size;
  if (!id || size === undefined) {
    const { hub, headers } = await hubFetch(ctx, url, { method: "HEAD", what: "file", stopAtEtag: true });
    const repoCommit = hub.get("x-repo-commit");
    if (repoCommit && repoCommit !== commit) {
      throw new HubError(ctx.op, `${url} answered for commit ${repoCommit}, not ${commit}`);
    }
    id = normalizeEtag(hub.get("x-linked-etag") ?? hub.get("etag"));
    size = Number(hub.get("x-linked-size") ?? headers.get("content-length") ?? NaN);
    if (!id || !Number.isFinite(size)) throw new HubError(ctx.op, `${url} answered without an ETag and a size`);
  }
  if (!/^[\w.-]+$/.test(id) || id.startsWith(".")) throw new HubError(ctx.op, `${url}: unusable blob id "${id}"`);
  return { id, size: size as number, sha256: s.lfs?.sha256 };
}

/** Fetches into `blob.incomplete`, resuming with Range after a drop, verifies, then renames into place. */
async function downloadBlob(
  ctx: HubContext,
  url: string,
  blob: string,
  file: string,
  meta: { id: string; size: number; sha256?: string },
  retries: number,
  report: ProgressCallback,
): Promise<void> {
  const op = ctx.op;
  const incomplete = `${blob}.incomplete`;
  await diskOp(op, `create ${incomplete}`, async () => {
    await Deno.mkdir(dirname(blob), { recursive: true });
    (await Deno.open(incomplete, { write: true, create: true })).close(); // an empty file needs no request
  });
  let hash: Hash | undefined;
  let hashed = 0; // bytes of `incomplete` that `hash` has seen
  for (let attempt = 0;; attempt++) {
    let have = (await statOrNull(incomplete))?.size ?? 0;
    if (have > meta.size) have = 0;
    if (meta.sha256 && (!hash || hashed !== have)) {
      hash = have > 0 ? await hashPrefix(incomplete, have) : createHash("sha256");
      hashed = have;
    }
    if (have === meta.size) break;
    try {
      const out = await diskOp(op, `open ${incomplete}`, async () => {
        const f = await Deno.open(incomplete, { write: true, create: true, truncate: have === 0 });
        await f.seek(have, Deno.SeekMode.Start);
        return f;
      });
      try {
        await hubFetch(ctx, url, {
          what: "file",
          headers: { "accept-encoding": "identity", ...(have > 0 ? { range: `bytes=${have}-` } : {}) },
          onHeaders: async (status, headers) => {
            if (have > 0 && status === 200) { // the server ignored Range: the whole file comes again
              await diskOp(op, `truncate ${incomplete}`, () => out.truncate(0));
              await out.seek(0, Deno.SeekMode.Start);
              have = hashed = 0;
              if (meta.sha256) hash = createHash("sha256");
            } else if (status === 206) {
              const start = Number(/^bytes (\d+)-/.exec(headers.get("content-range") ?? "")?.[1]);
              if (start !== have) throw new HubError(op, `${url} sent a range from byte ${start}; asked for ${have}`);
            }
          },
          onBody: async (chunk) => {
            await diskOp(op, `write ${incomplete}`, () => writeAll(out, chunk));
            have += chunk.length;
            if (hash) {
              hash.update(chunk);
              hashed = have;
            }
            report({ phase: "download", file, bytes: have, total: meta.size });
          },
        });
      } finally {
        out.close();
      }
      if (have === meta.size) break;
      if (have > meta.size) throw new IntegrityError(op, file, `${meta.size} bytes`, `${have} bytes`);
      throw new ConnectionFailed(url, new Error(`the answer ended at byte ${have} of ${meta.size}`));
    } catch (e) {
      if (!isTransient(e)) {
        // bytes that cannot be right, or a range the server will never serve: the next run starts afresh
        if (e instanceof IntegrityError || (e instanceof HubHttpError && e.status === 416)) {
          await removeQuietly(incomplete);
        }
        throw e;
      }
      if (attempt >= retries) {
        const tried = [`GET ${e instanceof Error ? e.message : e} (${attempt + 1} attempts)`];
        throw new HubUnreachableError(
          op,
          tried,
          `${have} of ${meta.size} bytes are kept in ${incomplete}: run again to resume`,
        );
      }
      report({
        phase: "download",
        file,
        bytes: have,
        total: meta.size,
        message: `connection lost, resuming at byte ${have}`,
      });
      await delay(attempt);
    }
  }
  const size = (await statOrNull(incomplete))?.size ?? 0;
  if (size !== meta.size) {
    await removeQuietly(incomplete);
    throw new IntegrityError(op, file, `${meta.size} bytes`, `${size} bytes`);
  }
  if (meta.sha256 && hash) {
    const actual = hash.digest("hex");
    if (actual !== meta.sha256) {
      await removeQuietly(incomplete);
      throw new IntegrityError(op, file, `sha256 ${meta.sha256}`, `sha256 ${actual}`);
    }
  }
  await diskOp(op, `rename ${incomplete}`, () => Deno.rename(incomplete, blob));
}

/** `pointer` becomes a relative symlink to `blob` (replaced atomically when it points elsewhere). */
async function link(op: string, blob: string, pointer: string): Promise<void> {
  const target = relative(dirname(pointer), blob);
  const current = await Deno.readLink(pointer).catch(() => undefined);
  if (current === target) return;
  await diskOp(op, `link ${pointer}`, async () => {
    await Deno.mkdir(dirname(pointer), { recursive: true });
    const tmp = `${pointer}.tmp-${Deno.pid}`;
    await removeQuietly(tmp);
    await Deno.symlink(target, tmp);
    await Deno.rename(tmp, pointer);
  });
}

/** The snapshot folder the cache has for `revision` (a ref or a commit), or undefined. */
async function cachedSnapshot(storage: string, revision: string): Promise<string | undefined> {
  const ref = await Deno.readTextFile(join(storage, "refs", ...revision.split("/"))).catch(() => undefined);
  const commit = ref?.trim() ?? (/^[0-9a-f]{40}$/.test(revision) ? revision : undefined);
  if (!commit) return undefined;
  const dir = join(storage, "snapshots", commit);
  return (await statOrNull(dir))?.isDirectory ? dir : undefined;
}

/** A repo path that stays inside the snapshot folder. */
function safeRepoPath(op: string, path: string): string {
  const parts = path.split("/");
  if (!path || path.startsWith("/") || path.includes("\\") || parts.some((p) => p === "" || p === "." || p === "..")) {
    throw new HubError(op, `the hub listed an unsafe file name "${path}"`);
  }
  return path;
}

/** Python fnmatch semantics (`*` crosses `/`; `[!x]` negates); a pattern ending in `/` means the folder's files. */
export function globToRegExp(pattern: string): RegExp {
  if (pattern.endsWith("/")) pattern += "*";
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "[") {
      let j = i + 1;
      if (pattern[j] === "!") j++;
      if (pattern[j] === "]") j++;
      const end = pattern.indexOf("]", j);
      if (end < 0) re += "\\[";
      else {
        const body = pattern.slice(i + 1, end).replace(/\\/g, "\\\\");
        re += `[${body.startsWith("!") ? `^${body.slice(1)}` : body}]`;
        i = end;
      }
    } else re += c.replace(/[\\^$.*+?()[\]{}|/]/g, "\\$&");
  }
  return new RegExp(`^${re}$`, "s");
}

function delay(attempt: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.min(5000, 200 * 2 ** attempt)));
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
