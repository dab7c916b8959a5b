/**
 * Errors of the checkpoint readers (safetensors today, GGUF later). A file can be wrong in many places at
 * once, so a FormatError carries every problem found, one line each, and names the file.
 * @module
 */
import { GemmakitError } from "../ffi/errors.ts";

/**
 * A checkpoint file (or directory of shards) that cannot be read as its format says.
 *
 * @example
 * ```ts
 * try {
 *   openSafetensors("model.safetensors");
 * } catch (e) {
 *   if (e instanceof FormatError) console.error(e.file, e.problems); // one entry per problem
 * }
 * ```
 */
export class FormatError extends GemmakitError {
  override name = "FormatError";
  /** The file or directory the problems are in. */
  readonly file: string;
  /** Every problem found, one line each. */
  readonly problems: readonly string[];

  constructor(
    op: string,
    file: string,
    problems: string | readonly string[],
    options: { hint?: string; cause?: unknown } = {},
  ) {
    const list = typeof problems === "string" ? [problems] : [...problems];
    const body = list.length === 1 ? list[0] : `${list.length} problems:\n${list.map((p) => `  - ${p}`).join("\n")}`;
    super(op, `${file}: ${body}`, options);
    this.file = file;
    this.problems = Object.freeze(list);
  }
}
