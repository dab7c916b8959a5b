/**
 * Server metrics in Prometheus' text exposition format (version 0.0.4): request counts by route and
 * status, token counts, queue depth, time to first token and decode speed. Kept by hand: a few counters and
 * two histograms do not need a client library.
 * @module
 */
import type { BatchStats, VisionCacheStats } from "../../mod.ts";

class Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly buckets: number[]) {
    this.counts = buckets.map(() => 0);
  }
  observe(v: number): void {
    this.sum += v;
    this.count++;
    this.buckets.forEach((b, i) => v <= b && this.counts[i]++);
  }
  lines(name: string): string[] {
    return [
      ...this.buckets.map((b, i) => `${name}_bucket{le="${b}"} ${this.counts[i]}`),
      `${name}_bucket{le="+Inf"} ${this.count}`,
      `${name}_sum ${this.sum}`,
      `${name}_count ${this.count}`,
    ];
  }
}

const label = (v: string) => v.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`));

export class Metrics {
  readonly #requests = new Map<string, number>();
  promptTokens = 0;
  completionTokens = 0;
  readonly ttft = new Histogram([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]);
  readonly decodeSpeed = new Histogram([1, 5, 10, 25, 50, 100, 200, 400, 800]);

  /** Counts a finished request (any route, any status). */
  request(route: string, status: number): void {
    const key = `route="${label(route)}",status="${status}"`;
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1);
  }

  /** Counts a finished generation. */
  generation(r: { promptTokens: number; completionTokens: number; ttftSeconds?: number; decodeTps: number }): void {
    this.promptTokens += r.promptTokens;
    this.completionTokens += r.completionTokens;
    if (r.ttftSeconds !== undefined) this.ttft.observe(r.ttftSeconds);
    if (r.completionTokens > 1 && Number.isFinite(r.decodeTps)) this.decodeSpeed.observe(r.decodeTps);
  }

  /** The exposition text; `gauges` are read at scrape time. */
  render(
    gauges: {
      queueDepth: number;
      inFlight: number;
      nativeMemoryBytes: number;
      visionCache?: VisionCacheStats;
      batch?: BatchStats;
    },
  ): string {
    const v = gauges.visionCache, b = gauges.batch;
    const out = [
      "# HELP gemmakit_requests_total HTTP requests served, by route and status.",
      "# TYPE gemmakit_requests_total counter",
      ...[...this.#requests].map(([k, v]) => `gemmakit_requests_total{${k}} ${v}`),
      "# HELP gemmakit_prompt_tokens_total Prompt tokens processed.",
      "# TYPE gemmakit_prompt_tokens_total counter",
      `gemmakit_prompt_tokens_total ${this.promptTokens}`,
      "# HELP gemmakit_completion_tokens_total Tokens generated.",
      "# TYPE gemmakit_completion_tokens_total counter",
      `gemmakit_completion_tokens_total ${this.completionTokens}`,
      "# HELP gemmakit_queue_depth Requests waiting for the model.",
      "# TYPE gemmakit_queue_depth gauge",
      `gemmakit_queue_depth ${gauges.queueDepth}`,
      "# HELP gemmakit_requests_in_flight Generations running now (up to the model's KV-cache slots).",
      "# TYPE gemmakit_requests_in_flight gauge",
      `gemmakit_requests_in_flight ${gauges.inFlight}`,
      "# HELP gemmakit_native_memory_bytes Device (or host, on the CPU backend) memory the backend holds.",
      "# TYPE gemmakit_native_memory_bytes gauge",
      `gemmakit_native_memory_bytes ${gauges.nativeMemoryBytes}`,
      "# HELP gemmakit_time_to_first_token_seconds From request arrival (queueing included) to the first token.",
      "# TYPE gemmakit_time_to_first_token_seconds histogram",
      ...this.ttft.lines("gemmakit_time_to_first_token_seconds"),
      "# HELP gemmakit_decode_tokens_per_second Decode speed of each generation.",
      "# TYPE gemmakit_decode_tokens_per_second histogram",
      ...this.decodeSpeed.lines("gemmakit_decode_tokens_per_second"),
      // The library's batch: slots, sequences, KV bytes, the shared prefix cache, decode steps.
      ...(b
        ? [
          "# HELP gemmakit_batch_slots KV-cache slots: sequences the model decodes at once.",
          "# TYPE gemmakit_batch_slots gauge",
          `gemmakit_batch_slots ${b.slots}`,
          "# HELP gemmakit_batch_size Sequences decoding together now.",
          "# TYPE gemmakit_batch_size gauge",
          `gemmakit_batch_size ${b.active - b.prefilling}`,
          "# HELP gemmakit_batch_prefilling Sequences whose prompt is going in now.",
          "# TYPE gemmakit_batch_prefilling gauge",
          `gemmakit_batch_prefilling ${b.prefilling}`,
          "# HELP gemmakit_batch_queued Sequences waiting for a KV-cache slot in the library.",
          "# TYPE gemmakit_batch_queued gauge",
          `gemmakit_batch_queued ${b.queued}`,
          "# HELP gemmakit_kv_cache_bytes_used Bytes of the KV-cache slots held by running sequences.",
          "# TYPE gemmakit_kv_cache_bytes_used gauge",
          `gemmakit_kv_cache_bytes_used ${b.kvBytesUsed}`,
          "# HELP gemmakit_kv_cache_bytes_budget Bytes of all KV-cache slots.",
          "# TYPE gemmakit_kv_cache_bytes_budget gauge",
          `gemmakit_kv_cache_bytes_budget ${b.kvBytesBudget}`,
          "# HELP gemmakit_prefix_cache_hits_total Requests that started from a cached prompt prefix.",
          "# TYPE gemmakit_prefix_cache_hits_total counter",
          `gemmakit_prefix_cache_hits_total ${b.prefixHits}`,
          "# HELP gemmakit_prefix_cache_misses_total Requests that prefilled their whole prompt.",
          "# TYPE gemmakit_prefix_cache_misses_total counter",
          `gemmakit_prefix_cache_misses_total ${b.prefixMisses}`,
          "# HELP gemmakit_prefix_cache_tokens_total Prompt tokens taken from the prefix cache, not prefilled.",
          "# TYPE gemmakit_prefix_cache_tokens_total counter",
          `gemmakit_prefix_cache_tokens_total ${b.prefixTokensReused}`,
          "# HELP gemmakit_decode_steps_total Batched decode steps run.",
          "# TYPE gemmakit_decode_steps_total counter",
          `gemmakit_decode_steps_total ${b.steps}`,
          "# HELP gemmakit_decode_rows_total Sequence rows those steps decoded (rows / steps: the mean batch size).",
          "# TYPE gemmakit_decode_rows_total counter",
          `gemmakit_decode_rows_total ${b.rowsStepped}`,
        ]
        : []),
      // Only for models with a vision tower: soft tokens reused for an image (or video frame) seen before.
      ...(v
        ? [
          "# HELP gemmakit_vision_cache_hits_total Images and video frames whose soft tokens came from the cache.",
          "# TYPE gemmakit_vision_cache_hits_total counter",
          `gemmakit_vision_cache_hits_total ${v.hits}`,
          "# HELP gemmakit_vision_cache_misses_total Images and video frames the vision tower encoded.",
          "# TYPE gemmakit_vision_cache_misses_total counter",
          `gemmakit_vision_cache_misses_total ${v.misses}`,
          "# HELP gemmakit_vision_cache_evictions_total Cache entries dropped to stay within the byte bound.",
          "# TYPE gemmakit_vision_cache_evictions_total counter",
          `gemmakit_vision_cache_evictions_total ${v.evictions}`,
          "# HELP gemmakit_vision_cache_entries Images and video frames cached now.",
          "# TYPE gemmakit_vision_cache_entries gauge",
          `gemmakit_vision_cache_entries ${v.entries}`,
          "# HELP gemmakit_vision_cache_bytes Device (or host) bytes the cached soft tokens hold.",
          "# TYPE gemmakit_vision_cache_bytes gauge",
          `gemmakit_vision_cache_bytes ${v.bytes}`,
          "# HELP gemmakit_vision_cache_max_bytes The cache's byte bound.",
          "# TYPE gemmakit_vision_cache_max_bytes gauge",
          `gemmakit_vision_cache_max_bytes ${v.maxBytes}`,
        ]
        : []),
    ];
    return out.join("\n") + "\n";
  }
}
