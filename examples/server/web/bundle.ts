/**
 * The browser chat page: index.html plus chat.ts bundled by esbuild on first request and kept in memory
 * (no CDN, no build artefact to forget to rebuild).
 * @module
 */
import * as esbuild from "esbuild";
import { fileURLToPath } from "node:url";

let script: Promise<string> | undefined;
let html: Promise<string> | undefined;

async function build(): Promise<string> {
  try {
    const result = await esbuild.build({
      entryPoints: [fileURLToPath(new URL("./chat.ts", import.meta.url))],
      bundle: true,
      write: false,
      format: "esm",
      platform: "browser",
      target: "es2022",
      minify: true,
      logLevel: "silent",
    });
    return result.outputFiles[0].text;
  } finally {
    // esbuild keeps a service process; the bundle is cached, so let it go.
    await esbuild.stop();
  }
}

/** The bundled page script (built once per process; a failed build is retried on the next request). */
export function chatPageScript(): Promise<string> {
  script ??= build().catch((e) => {
    script = undefined;
    throw e;
  });
  return script;
}

export function chatPageHtml(): Promise<string> {
  html ??= Deno.readTextFile(new URL("./index.html", import.meta.url));
  return html;
}
