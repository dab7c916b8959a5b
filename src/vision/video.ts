/**
 * Video input: a file (or bytes) in, the frames a family's video processor samples out, as RGB8 with their
 * timestamps. Decoding is ffmpeg's (Debian's `ffmpeg` package, run as a subprocess: `$FFMPEG`, else `ffmpeg` on
 * PATH; `ffprobe` beside it, `$FFPROBE`, or on PATH). gemmakit links no codec.
 *
 * Steps, mirroring what transformers does with a decoded video and its `VideoMetadata`:
 * 1. `ffprobe` reads the first video stream's size, average frame rate and frame count (`nb_frames`; counted by
 *    decoding when the container does not say) — the `fps` / `total_num_frames` transformers' decoders report;
 * 2. the frame indices come from the caller's `selectFrames` (the family's frame sampling; every frame by
 *    default);
 * 3. one ffmpeg run decodes the stream and keeps only those frames (`select`), converted to rgb24 by swscale
 *    and piped back raw (`-fps_mode passthrough`, so nothing is duplicated or dropped);
 * 4. timestamps are `index / fps` seconds (computed as `index * den / num` so whole seconds stay whole).
 *
 * Safety: sources are opened with the `file:` protocol only (no URLs or ffmpeg pseudo-protocols); size, pixel,
 * duration, frame and time limits are checked before (and while) decoding; an AbortSignal or the timeout kills
 * ffmpeg; bytes are written to a private temporary file that is removed whatever happens.
 * @module
 */
import { VideoError } from "../errors.ts";
import type { RgbImage } from "./image.ts";

const OP = "loadVideo";

/** A file path (or `file:` URL), or the file's bytes. */
export type VideoSource = string | Uint8Array | ArrayBuffer | { path: string } | { bytes: Uint8Array | ArrayBuffer };

/** What the stream holds, for choosing frames: the frame count and average frame rate ffprobe reports. */
export interface VideoStreamInfo {
  totalNumFrames: number;
  fps: number;
}

/** The limits and tools of {@link decodeVideo}, without the frame choice (what callers pass through). */
export interface VideoDecodeLimits {
  /** ffmpeg binary (default `$FFMPEG`, else `ffmpeg` on PATH). */
  ffmpeg?: string;
  /** ffprobe binary (default: beside ffmpeg, `$FFPROBE`, else on PATH). */
  ffprobe?: string;
  /** Refuse frames with more pixels than this. Default 16.7 M (4096x4096). */
  maxPixels?: number;
  /** Refuse videos longer than this many seconds. Default 3 hours. */
  maxDurationSeconds?: number;
  /** Refuse files larger than this. Default 2 GiB. */
  maxFileBytes?: number;
  /** Refuse keeping more than this many frames (matters with do_sample_frames false). Default 1024. */
  maxFrames?: number;
  /** Refuse decoded output larger than this many bytes. Default 1 GiB. */
  maxDecodedBytes?: number;
  /** Kill ffmpeg and fail after this long (whole call). Default 120 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Frame sampling of a video processor (transformers' `num_frames`, `fps`, `do_sample_frames`), per call. */
export interface VideoSampling {
  /** Frames to sample uniformly; `null` to sample by `fps` instead. */
  numFrames?: number | null;
  /** Frames per second to sample (only with `numFrames: null`). */
  fps?: number | null;
  doSampleFrames?: boolean;
}

/** What a caller may ask of video loading: the decoder's limits and the processor's frame sampling. */
export interface VideoLoadOptions extends VideoDecodeLimits {
  /** Per-call sampling overrides, e.g. `{ numFrames: 8 }` or `{ numFrames: null, fps: 1 }`. */
  sampling?: VideoSampling;
  /** Take every frame of a clip shorter than `numFrames` instead of refusing it as transformers does. Default true. */
  clampToTotal?: boolean;
}

export interface DecodeVideoOptions extends VideoDecodeLimits {
  /** Indices of the frames to keep, in order (may repeat); every frame by default. A throw is a bad_source. */
  selectFrames?: (stream: VideoStreamInfo) => number[];
}

/** What {@link decodeVideo} returns: the sampled frames and what transformers' `VideoMetadata` would hold. */
export interface LoadedVideo {
  frames: RgbImage[];
  /** index of each kept frame in the stream */
  frameIndices: number[];
  /** seconds of each kept frame: `index / fps` */
  timestamps: number[];
  /** average frame rate (frames per second) */
  fps: number;
  totalNumFrames: number;
  width: number;
  height: number;
  /** `totalNumFrames / fps` seconds */
  duration: number;
}

const DEFAULTS = {
  maxPixels: 4096 * 4096,
  maxDurationSeconds: 3 * 3600,
  maxFileBytes: 2 * 1024 ** 3,
  maxFrames: 1024,
  maxDecodedBytes: 1024 ** 3,
  timeoutMs: 120_000,
};

const INSTALL_HINT = "install ffmpeg (Debian/Ubuntu: apt-get install ffmpeg) or point $FFMPEG at an ffmpeg binary";

function isExecutableFile(path: string): boolean {
  try {
    const st = Deno.statSync(path);
    return st.isFile && (st.mode === null || (st.mode & 0o111) !== 0);
  } catch {
    return false;
  }
}

function onPath(name: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir && isExecutableFile(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  return undefined;
}

/** The ffmpeg and ffprobe binaries to run, or a VideoError that says how to get them. */
export function findFfmpeg(opts: { ffmpeg?: string; ffprobe?: string } = {}): { ffmpeg: string; ffprobe: string } {
  const explicit = opts.ffmpeg ?? Deno.env.get("FFMPEG");
  let ffmpeg: string | undefined;
  if (explicit) {
    if (!isExecutableFile(explicit)) {
      throw new VideoError(
        OP,
        "ffmpeg_missing",
        `ffmpeg not found at ${explicit} (${opts.ffmpeg ? "ffmpeg option" : "$FFMPEG"})`,
        {
          hint: INSTALL_HINT,
        },
      );
    }
    ffmpeg = explicit;
  } else {
    ffmpeg = onPath("ffmpeg");
    if (!ffmpeg) {
      throw new VideoError(OP, "ffmpeg_missing", "ffmpeg is not on PATH; videos need it", { hint: INSTALL_HINT });
    }
  }
  const beside = ffmpeg.includes("/") ? ffmpeg.replace(/ffmpeg([^/]*)$/, "ffprobe$1") : undefined;
  const ffprobe = opts.ffprobe ?? Deno.env.get("FFPROBE") ??
    (beside && beside !== ffmpeg && isExecutableFile(beside) ? beside : onPath("ffprobe"));
  if (!ffprobe || !isExecutableFile(ffprobe)) {
    throw new VideoError(OP, "ffmpeg_missing", `ffprobe not found (looked beside ${ffmpeg}, $FFPROBE and PATH)`, {
      hint: INSTALL_HINT + " (Debian's ffmpeg package has ffprobe too)",
    });
  }
  return { ffmpeg, ffprobe };
}

interface RunResult {
  code: number;
  stdout: Uint8Array;
  stderr: string;
}

/**
 * Run a binary with a deadline and the caller's signal; stdout is handed to `onStdout` chunk by chunk (or
 * collected up to `maxStdout` bytes), stderr kept to its last 8 KB for messages.
 */
async function runTool(
  bin: string,
  args: string[],
  signal: AbortSignal,
  onStdout?: (chunk: Uint8Array) => void,
  maxStdout = 1 << 20,
): Promise<RunResult> {
  let child: Deno.ChildProcess;
  signal.throwIfAborted(); // loadVideo turns this into `aborted` or `timeout`
  try {
    child = new Deno.Command(bin, { args, stdin: "null", stdout: "piped", stderr: "piped", signal }).spawn();
  } catch (e) {
    if (signal.aborted) throw e;
    throw new VideoError(OP, "ffmpeg_missing", `could not start ${bin}: ${(e as Error).message}`, {
      hint: INSTALL_HINT,
      cause: e,
    });
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  const readOut = (async () => {
    for await (const chunk of child.stdout) {
      if (onStdout) onStdout(chunk);
      else if (size < maxStdout) {
        chunks.push(chunk);
        size += chunk.length;
      }
    }
  })();
  const readErr = (async () => {
    let text = "";
    const dec = new TextDecoder();
    for await (const chunk of child.stderr) text = (text + dec.decode(chunk, { stream: true })).slice(-8192);
    return text;
  })();
  let failure: unknown;
  try {
    await readOut;
  } catch (e) {
    failure = e; // onStdout refused the data: kill the process below
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }
  const [status, stderr] = await Promise.all([child.status, readErr.catch(() => "")]);
  if (failure) throw failure;
  // Killed by the deadline or the caller: ffmpeg's exit code (143) says nothing about the video.
  signal.throwIfAborted();
  const stdout = new Uint8Array(size);
  let o = 0;
  for (const c of chunks) stdout.set(c, o), o += c.length;
  return { code: status.code, stdout, stderr: stderr.trim() };
}

/**
 * The demuxers a video may be opened with: the containers video actually comes in. Playlists and indirections
 * (hls, concat, dash, ffconcat, image2 patterns, tee, ...) are not among them, so a "video" cannot make ffmpeg open
 * another file; with `-protocol_whitelist file` it cannot reach the network either. (The mov demuxer follows
 * external data references only with `enable_drefs`, off by default.)
 */
export const VIDEO_DEMUXERS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,mpeg,flv,ogg,gif,ivf,h264,hevc";
/** Input options that confine ffmpeg and ffprobe to one local file of a known container. */
const CONFINE = ["-protocol_whitelist", "file", "-format_whitelist", VIDEO_DEMUXERS];

function describeFailure(tool: string, r: RunResult, input: string): VideoError {
  // ffmpeg names its input in messages: the caller's own path is theirs to see, a temp file's is not.
  const path = input.replace(/^file:/, "");
  const scrub = (line: string) => line.split(input).join("<video>").split(path).join("<video>");
  const lines = r.stderr.split("\n").filter(Boolean).map(scrub);
  if (/not on whitelist/i.test(r.stderr)) {
    return new VideoError(OP, "not_a_video", `${tool} refused the container: it is not one of ${VIDEO_DEMUXERS}`, {
      hint: "playlists (HLS, concat) and other indirections are not read; send the video file itself",
    });
  }
  const msg = lines.slice(-3).join("; ") || `exit code ${r.code}`;
  // "moov atom not found" (an MP4 cut short) stays `corrupt`: it is a video, just truncated.
  const truncated = /moov atom not found|truncat|end of file/i.test(r.stderr);
  const notVideo = !truncated &&
    /Invalid data found when processing input|does not contain any stream|no video stream/i.test(r.stderr);
  return new VideoError(OP, notVideo ? "not_a_video" : "corrupt", `${tool} could not read the video: ${msg}`);
}

function parseRate(s: unknown): { num: number; den: number } | undefined {
  if (typeof s !== "string") return undefined;
  const m = /^(\d+)\/(\d+)$/.exec(s);
  if (!m) return undefined;
  const num = Number(m[1]), den = Number(m[2]);
  return num > 0 && den > 0 ? { num, den } : undefined;
}

async function resolveSource(source: VideoSource, maxFileBytes: number): Promise<{ path: string; temp?: string }> {
  let path: string | undefined;
  let bytes: Uint8Array | undefined;
  if (typeof source === "string") path = source;
  else if (source instanceof Uint8Array) bytes = source;
  else if (source instanceof ArrayBuffer) bytes = new Uint8Array(source);
  else if (source && typeof source === "object" && "path" in source && typeof source.path === "string") {
    path = source.path;
  } else if (source && typeof source === "object" && "bytes" in source) {
    bytes = source.bytes instanceof ArrayBuffer ? new Uint8Array(source.bytes) : source.bytes;
  }
  if (path !== undefined) {
    if (path.startsWith("file://")) path = decodeURIComponent(new URL(path).pathname);
    else if (/^[a-z][a-z0-9+.-]*:/i.test(path)) {
      throw new VideoError(OP, "bad_source", `only local video files are read, got ${path.slice(0, 60)}`, {
        hint: "download it yourself, with your own limits, and pass the path or bytes",
      });
    }
    let st: Deno.FileInfo;
    try {
      st = await Deno.stat(path);
    } catch (e) {
      throw new VideoError(OP, "io", `cannot read ${path}: ${(e as Error).message}`, { cause: e });
    }
    if (!st.isFile) throw new VideoError(OP, "io", `${path} is not a file`);
    if (st.size === 0) throw new VideoError(OP, "not_a_video", `${path} is empty`);
    if (st.size > maxFileBytes) {
      throw new VideoError(OP, "too_large", `${path} has ${st.size} bytes, over the ${maxFileBytes}-byte limit`);
    }
    return { path: path.startsWith("/") ? path : `${Deno.cwd()}/${path}` };
  }
  if (!(bytes instanceof Uint8Array)) {
    throw new VideoError(OP, "bad_source", "a video source is a path, a file: URL, or bytes ({path} / {bytes})");
  }
  if (bytes.length === 0) throw new VideoError(OP, "not_a_video", "the video bytes are empty");
  if (bytes.length > maxFileBytes) {
    throw new VideoError(OP, "too_large", `${bytes.length} video bytes, over the ${maxFileBytes}-byte limit`);
  }
  // ffmpeg needs a seekable input for MP4s whose index is at the end: a private temp file, removed in finally.
  const temp = await Deno.makeTempFile({ prefix: "gemmakit-video-" });
  try {
    await Deno.writeFile(temp, bytes, { mode: 0o600 });
  } catch (e) {
    await Deno.remove(temp).catch(() => {});
    throw new VideoError(OP, "io", `cannot write a temporary file for the video: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return { path: temp, temp };
}

interface Probe {
  width: number;
  height: number;
  rate: { num: number; den: number };
  totalNumFrames: number;
}

async function probe(ffprobe: string, input: string, signal: AbortSignal, countFrames: boolean): Promise<Probe> {
  const entries = "stream=width,height,avg_frame_rate,r_frame_rate,nb_frames,nb_read_frames:format=format_name";
  const args = ["-v", "error", "-select_streams", "v:0", "-show_entries", entries, "-of", "json"];
  if (countFrames) args.push("-count_frames");
  const r = await runTool(ffprobe, [...args, ...CONFINE, input], signal);
  if (r.code !== 0) throw describeFailure("ffprobe", r, input);
  let s: Record<string, unknown> | undefined;
  let format = "";
  try {
    const j = JSON.parse(new TextDecoder().decode(r.stdout));
    s = j.streams?.[0];
    format = String(j.format?.format_name ?? "");
  } catch (e) {
    throw new VideoError(OP, "corrupt", "ffprobe printed something that is not JSON", { cause: e });
  }
  if (!s) throw new VideoError(OP, "not_a_video", "the file has no video stream");
  // ffmpeg opens still images (png_pipe, jpeg_pipe, image2, ...) as one-frame videos: refuse them here.
  if (/(^|,)(image2|[a-z0-9]+_pipe)(,|$)/.test(format)) {
    throw new VideoError(OP, "not_a_video", `this is a still image (${format}), not a video`, {
      hint: "send it as an image part",
    });
  }
  const width = Number(s.width), height = Number(s.height);
  // transformers' decoders report the average frame rate (PyAV average_rate, torchcodec average_fps)
  const rate = parseRate(s.avg_frame_rate) ?? parseRate(s.r_frame_rate);
  const frames = Number(countFrames ? s.nb_read_frames : s.nb_frames);
  if (!(width > 0 && height > 0)) throw new VideoError(OP, "zero_size", `the video stream is ${width}x${height}`);
  if (!rate) throw new VideoError(OP, "corrupt", `the video stream has no frame rate (${s.avg_frame_rate})`);
  return { width, height, rate, totalNumFrames: Number.isInteger(frames) && frames >= 0 ? frames : -1 };
}

function combineSignals(user: AbortSignal | undefined, timeoutMs: number): AbortSignal {
  const t = AbortSignal.timeout(timeoutMs);
  return user ? AbortSignal.any([user, t]) : t;
}

/**
 * Decode a video's sampled frames (see the module doc). Throws VideoError for everything about the input or
 * the tools: missing ffmpeg, not a video, truncated or corrupt data, limits, timeout or abort.
 */
export async function decodeVideo(source: VideoSource, opts: DecodeVideoOptions = {}): Promise<LoadedVideo> {
  const o = { ...DEFAULTS, ...Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) };
  const tools = findFfmpeg(opts);
  const selectFrames = opts.selectFrames ??
    ((s: VideoStreamInfo) => Array.from({ length: s.totalNumFrames }, (_, i) => i));
  const signal = combineSignals(opts.signal, o.timeoutMs);
  const { path, temp } = await resolveSource(source, o.maxFileBytes);
  try {
    return await decode(tools, `file:${path}`, selectFrames, o, signal);
  } catch (e) {
    if (e instanceof VideoError) throw e;
    if (signal.aborted) {
      if (opts.signal?.aborted) throw new VideoError(OP, "aborted", "loading the video was aborted", { cause: e });
      throw new VideoError(OP, "timeout", `ffmpeg took longer than ${o.timeoutMs} ms`, {
        hint: "raise timeoutMs, or send a shorter video",
        cause: e,
      });
    }
    throw new VideoError(OP, "corrupt", `decoding failed: ${(e as Error).message}`, { cause: e });
  } finally {
    if (temp) await Deno.remove(temp).catch(() => {});
  }
}

async function decode(
  tools: { ffmpeg: string; ffprobe: string },
  input: string,
  selectFrames: (stream: VideoStreamInfo) => number[],
  o: typeof DEFAULTS,
  signal: AbortSignal,
): Promise<LoadedVideo> {
  let p = await probe(tools.ffprobe, input, signal, false);
  if (p.width * p.height > o.maxPixels) {
    throw new VideoError(OP, "too_large", `frames are ${p.width}x${p.height}, over the ${o.maxPixels}-pixel limit`);
  }
  if (p.totalNumFrames < 0) {
    p = { ...p, totalNumFrames: (await probe(tools.ffprobe, input, signal, true)).totalNumFrames };
  }
  const { width, height, rate } = p;
  const total = p.totalNumFrames;
  if (!(total > 0)) throw new VideoError(OP, "zero_size", "the video stream has no frames");
  const fps = rate.num / rate.den;
  const duration = total / fps;
  if (duration > o.maxDurationSeconds) {
    throw new VideoError(
      OP,
      "too_long",
      `the video lasts ${duration.toFixed(1)} s, over the ${o.maxDurationSeconds} s limit`,
    );
  }

  let indices: number[];
  try {
    indices = selectFrames({ totalNumFrames: total, fps });
  } catch (e) {
    throw new VideoError(OP, "bad_source", (e as Error).message, { cause: e });
  }
  const frameBytes = width * height * 3;
  if (indices.length > o.maxFrames) {
    throw new VideoError(
      OP,
      "too_large",
      `${indices.length} frames would be kept, over the ${o.maxFrames}-frame limit`,
      {
        hint: "sample fewer frames (numFrames / fps)",
      },
    );
  }
  if (indices.length * frameBytes > o.maxDecodedBytes) {
    throw new VideoError(
      OP,
      "too_large",
      `${indices.length} frames of ${width}x${height} exceed ${o.maxDecodedBytes} bytes`,
    );
  }

  // Keep only the sampled frames inside ffmpeg (each index once; torch's arange never repeats one).
  const unique = [...new Set(indices)].sort((a, b) => a - b);
  const all = unique.length === total && unique.every((v, i) => v === i);
  const args = ["-v", "error", "-nostdin", ...CONFINE, "-i", input, "-map", "0:v:0"];
  if (!all) args.push("-vf", `select='${unique.map((i) => `eq(n\\,${i})`).join("+")}'`);
  args.push("-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1");

  const buffers = unique.map(() => new Uint8Array(frameBytes));
  let received = 0;
  const expected = unique.length * frameBytes;
  const r = await runTool(tools.ffmpeg, args, signal, (chunk) => {
    if (received + chunk.length > expected) {
      throw new VideoError(OP, "corrupt", "ffmpeg produced more frames than the video declares");
    }
    let off = 0;
    while (off < chunk.length) {
      const f = Math.floor(received / frameBytes), at = received % frameBytes;
      const n = Math.min(frameBytes - at, chunk.length - off);
      buffers[f].set(chunk.subarray(off, off + n), at);
      off += n;
      received += n;
    }
  });
  if (r.code !== 0) throw describeFailure("ffmpeg", r, input);
  if (received !== expected) {
    throw new VideoError(
      OP,
      "corrupt",
      `the video declares ${total} frames but only ${Math.floor(received / frameBytes)} of the ${unique.length} ` +
        "sampled ones could be decoded (truncated?)",
    );
  }
  const byIndex = new Map(unique.map((idx, k) => [idx, buffers[k]]));
  return {
    frames: indices.map((i) => ({ width, height, data: byIndex.get(i)! })),
    frameIndices: indices,
    timestamps: indices.map((i) => (i * rate.den) / rate.num),
    fps,
    totalNumFrames: total,
    width,
    height,
    duration,
  };
}
