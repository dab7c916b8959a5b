import { ShapeError } from "../errors.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { expectDType, expectRank, expectSameBackend, expectShape, fmt, run } from "./check.ts";

/**
 * Writes `src` f32 [tokens, ...row] into `cache` f32 [capacity, ...row] at slots (position0 + t) %
 * capacity, where `position0` is i32 [1] in device memory. Full caches (capacity = context) and
 * sliding-window ring buffers (capacity = window) take the same op. Returns `cache`.
 */
export function kvCacheWrite(src: Tensor, cache: Tensor, position0: Tensor): Tensor {
  const op = "kvCacheWrite";
  const backend = expectSameBackend(op, { src, cache, position0 });
  expectDType(op, "src", src, ["f32"]);
  expectDType(op, "cache", cache, ["f32"]);
  expectRank(op, "cache", cache, src.shape.length);
  if (src.shape.slice(1).some((d, i) => d !== cache.shape[i + 1])) {
    throw new ShapeError(op, `rows of src ${fmt(src)} do not match rows of cache ${fmt(cache)}`);
  }
  expectDType(op, "position0", position0, ["i32"]);
  expectShape(op, "position0", position0, [1]);
  const tokens = src.shape[0];
  const capacity = cache.shape[0];
  return run(op, backend, cache, false, () =>
    backend.symbols.gk_kv_cache_write(
      backend.stream,
      src.pointer,
      cache.pointer,
      tokens,
      src.size / tokens,
      capacity,
      position0.pointer,
    ));
}
