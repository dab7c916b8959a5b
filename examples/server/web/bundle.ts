/**
 * The browser chat page: index.html plus chat.ts bundled by esbuild on first request and kept in memory
 * (no CDN, no build artefact to forget to rebuild).
 * @module
 */
import * as esbuild from "esbuild";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

let script: Promise<string> | undefined;
let html: Promise<string> | undefined;

/** The npm packages the page imports (markdown and its sanitizer), bundled from Deno's npm cache. */
const PAGE_PACKAGES: Record<string, () => Promise<unknown>> = {
  // String literals, so Deno sees (and fetches) them like any other import.
  marked: () => import("marked"),
  dompurify: () => import("dompurify"),
};

/**
 * esbuild resolves bare imports through node_modules, which a Deno project need not have: the packages are
 * resolved here instead, after an import that makes Deno fetch them into its cache.
 */
const denoPackages: esbuild.Plugin = {
  name: "deno-npm",
  setup(b) {
    const filter = new RegExp(`^(${Object.keys(PAGE_PACKAGES).join("|")})$`);
    b.onResolve({ filter }, async (args) => {
      await PAGE_PACKAGES[args.path]();
      return { path: createRequire(import.meta.url).resolve(args.path) };
    });
  },
};

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
      plugins: [denoPackages],
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
