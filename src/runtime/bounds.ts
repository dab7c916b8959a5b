/**
 * The one rule for integers that size work or memory and come from outside gemmakit (config.json fields,
 * GGUF and safetensors counts and dimensions, processor sizes, op options): each is checked against a stated
 * bound before it is used, and a value outside it is a {@link BoundsError} naming the field. The bounds are far
 * above any real Gemma checkpoint (the largest, Gemma 3 27B, has 62 layers, hidden 5376, vocab 262208) and far
 * below what would exhaust memory or overflow an i32 crossing FFI.
 *
 * Base64 and `data:` URLs are decoded here too, by one helper whose every refusal is a {@link DataUrlError}:
 * the image loader, the video loader and the server all go through it.
 * @module
 */
import { BoundsError, DataUrlError } from "../errors.ts";

/** Largest value of an i32 crossing FFI. */
export const I32_MAX = 2 ** 31 - 1;

/** Stated bounds of model dimensions, by config field name (the same names GGUF metadata maps onto). */
export const DIMENSION_BOUNDS: Readonly<Record<string, number>> = Object.freeze({
  num_hidden_layers: 1024,
  num_attention_heads: 1024,
  num_key_value_heads: 1024,
  num_global_key_value_heads: 1024,
  head_dim: 8192,
  global_head_dim: 8192,
  hidden_size: 65536,
  intermediate_size: 1 << 20,
  moe_intermediate_size: 1 << 20,
  vocab_size: 1 << 22,
  vocab_size_per_layer_input: 1 << 22,
  hidden_size_per_layer_input: 65536,
  num_experts: 4096,
  top_k_experts: 4096,
  num_kv_shared_layers: 1024,
  sliding_window: 1 << 24,
  sliding_window_pattern: 1024,
  max_position_embeddings: 1 << 24,
  patch_size: 4096,
  image_size: 1 << 16,
  pooling_kernel_size: 4096,
  position_embedding_size: 1 << 20,
  mm_tokens_per_image: 1 << 16,
  num_channels: 16,
});

/** Bound of an integer field not in {@link DIMENSION_BOUNDS} (token ids, counts): fits an i32 with room. */
export const DEFAULT_INT_BOUND = 1 << 30;

/** The stated bound of a field: the table's entry for its last name component, else the default. */
export function boundOf(field: string): number {
  const key = field.replace(/^.*[.:]/, "").replace(/\[.*$/, "");
  return DIMENSION_BOUNDS[key] ?? DEFAULT_INT_BOUND;
}

/**
 * `value` as an integer in min..max, or a BoundsError naming `field`. Takes numbers and bigints (GGUF u64s).
 *
 * @example
 * ```ts
 * boundedInt("config", "num_hidden_layers", 26, 1, 1024); // 26
 * boundedInt("config", "num_hidden_layers", 1e6, 1, 1024); // throws BoundsError
 * ```
 */
export function boundedInt(op: string, field: string, value: unknown, min: number, max: number): number {
  const n = typeof value === "bigint" ? (value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : NaN) : value;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new BoundsError(op, field, value, min, max);
  }
  return n;
}

/** Base64 (standard or URL-safe alphabet, whitespace and missing padding allowed). */
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Bytes of base64 text; the decoded size is checked from the text's length before anything is allocated.
 *
 * @example
 * ```ts
 * decodeBase64("aGk=", 10); // Uint8Array [104, 105]
 * ```
 */
export function decodeBase64(text: string, maxBytes: number): Uint8Array {
  if (typeof text !== "string") throw new DataUrlError("not_base64", "base64 data must be a string");
  const clean = text.replace(/\s+/g, "").replace(/-/g, "+").replace(/_/g, "/");
  // The decoded size follows from the length: refuse before decoding anything.
  if (Math.floor((clean.length * 3) / 4) > maxBytes + 2) {
    throw new DataUrlError("too_large", `the base64 data decodes to over the ${maxBytes}-byte limit`);
  }
  if (clean.length === 0) throw new DataUrlError("empty", "the base64 data is empty");
  if (!BASE64.test(clean) || clean.length % 4 === 1 || (clean.includes("=") && clean.length % 4 !== 0)) {
    throw new DataUrlError("not_base64", "the data is not valid base64", {
      hint: "use the standard base64 alphabet (A-Z a-z 0-9 + /), padded with = to a multiple of 4",
    });
  }
  const padded = clean.padEnd(Math.ceil(clean.length / 4) * 4, "=");
  let bytes: Uint8Array;
  try {
    // Uint8Array.fromBase64 where the runtime has it (Deno 2.5+), atob otherwise.
    const from = (Uint8Array as unknown as { fromBase64?: (s: string) => Uint8Array }).fromBase64;
    if (from) bytes = from(padded);
    else {
      const bin = atob(padded);
      bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    }
  } catch {
    throw new DataUrlError("not_base64", "the data is not valid base64");
  }
  if (bytes.length > maxBytes) {
    throw new DataUrlError(
      "too_large",
      `the base64 data decodes to ${bytes.length} bytes, over the ${maxBytes}-byte limit`,
    );
  }
  return bytes;
}

/** A parsed `data:` URL: its media type and its bytes. */
export interface DataUrl {
  mediaType: string;
  bytes: Uint8Array;
}

/**
 * A `data:[<mediatype>][;params][;base64],<data>` URL (RFC 2397), base64 or percent-encoded, within `maxBytes`.
 *
 * @example
 * ```ts
 * decodeDataUrl("data:image/png;base64,iVBORw0KGgo=", 1 << 20).mediaType; // "image/png"
 * ```
 */
export function decodeDataUrl(url: string, maxBytes: number): DataUrl {
  if (typeof url !== "string" || !/^data:/i.test(url)) {
    throw new DataUrlError("not_a_data_url", "not a data: URL");
  }
  const comma = url.indexOf(",");
  if (comma < 0) {
    throw new DataUrlError("not_a_data_url", "the data URL has no ',' before its data", {
      hint: "write data:<type>;base64,<data>",
    });
  }
  const meta = url.slice(5, comma);
  const mediaType = meta.split(";")[0].trim().toLowerCase();
  const payload = url.slice(comma + 1);
  if (/;\s*base64\s*$/i.test(meta)) return { mediaType, bytes: decodeBase64(payload, maxBytes) };
  // Percent-encoded: each byte is at least one character, so the payload's length bounds the output.
  const out = new Uint8Array(Math.min(payload.length, maxBytes + 1));
  let n = 0;
  for (let i = 0; i < payload.length; i++) {
    let b = payload.charCodeAt(i);
    if (b === 0x25) {
      const hex = payload.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) {
        throw new DataUrlError("not_base64", `the data URL has a bad percent escape at character ${comma + 1 + i}`);
      }
      b = parseInt(hex, 16);
      i += 2;
    } else if (b > 0x7f) {
      throw new DataUrlError("not_base64", "a percent-encoded data URL must be ASCII; escape other bytes as %XX");
    }
    if (n >= maxBytes) {
      throw new DataUrlError("too_large", `the data URL decodes to over the ${maxBytes}-byte limit`);
    }
    out[n++] = b;
  }
  if (n === 0) throw new DataUrlError("empty", "the data URL carries no data");
  return { mediaType, bytes: out.slice(0, n) };
}
