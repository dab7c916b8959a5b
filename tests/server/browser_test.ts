/**
 * The chat page end to end in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core)
 * against the server on the tiny Gemma 3 vision fixture: type a message, see the answer stream in, press
 * stop mid-answer, attach images by the file picker and by drag-and-drop and see the answer to them. Skips, saying why, without Chromium.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { chromium } from "playwright-core";
import { type GenerateInput, type GenerationResult, loadModel } from "../../mod.ts";
import { createApp } from "../../examples/server/app.ts";
import type { ServedModel } from "../../examples/server/generation.ts";
import { PNG_DATA_URL, ROOT } from "./helpers.ts";

const VISION_MODEL = `${ROOT}tests/fixtures/gemma3-vision-tiny`;
const MODEL_ID = "gemma3-vision-tiny";

const CHROMIUM = "/usr/bin/chromium";
const hasChromium = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();
if (!hasChromium) console.log(`browser test skipped: ${CHROMIUM} is absent (apt-get install chromium)`);

/** The real model, each piece held back `ms`, so a person (or this test) can press stop mid-answer. */
function slowed(model: ServedModel, ms: number): ServedModel {
  return {
    backend: model.backend,
    maxContext: model.maxContext,
    supportsChat: model.supportsChat,
    supportsImages: model.supportsImages,
    encode: (input) => model.encode(input),
    async *stream(input: GenerateInput, options): AsyncGenerator<string, GenerationResult> {
      const it = model.stream(input, options);
      while (true) {
        const r = await it.next();
        if (r.done) return r.value;
        await new Promise((resolve) => setTimeout(resolve, ms));
        yield r.value;
      }
    },
  };
}

Deno.test({
  name: "chat page in headless Chromium: streamed answer, stop, image attach",
  ignore: !hasChromium,
  sanitizeResources: false, // the browser's pipes close asynchronously after browser.close()
  sanitizeOps: false,
  fn: async () => {
    using model = await loadModel(VISION_MODEL, { backend: "cpu", maxContext: 256 });
    const greedy = await model.generate({ messages: [{ role: "user", content: "Tell me a story." }] }, {
      maxTokens: 40,
      temperature: 0,
    });
    const app = createApp({ model: slowed(model, 40), modelId: MODEL_ID, limits: { defaultMaxTokens: 40 } });
    const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, app.fetch);
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    try {
      const page = await browser.newPage();
      const requests: string[] = [];
      page.on("request", (r) => r.method() === "POST" && requests.push(r.postData() ?? ""));
      await page.goto(`http://127.0.0.1:${server.addr.port}/`);
      await page.locator("#status").filter({ hasText: `model: ${MODEL_ID}` }).waitFor();

      // Type, send, watch the answer stream in, press stop mid-answer.
      await page.fill("#prompt", "Tell me a story.");
      await page.click("#send");
      const answer = page.locator(".msg.assistant .content").last();
      await page.waitForFunction(`(document.querySelector(".msg.assistant .content")?.textContent ?? "").length > 0`);
      const early = await answer.textContent();
      assert.equal(await page.isDisabled("#stop"), false, "stop is live while streaming");
      await page.click("#stop");
      await page.locator(".msg.assistant .note").filter({ hasText: "(stopped)" }).waitFor();
      const shown = (await answer.textContent()) ?? "";
      assert.ok(shown.length >= (early ?? "").length && shown.length > 0);
      assert.ok(
        greedy.text.startsWith(shown),
        `the page shows a prefix of the greedy answer: ${JSON.stringify(shown)}`,
      );
      assert.ok(shown.length < greedy.text.length, "stopped before the end");
      assert.equal(await page.isDisabled("#stop"), true);
      assert.equal(await page.isHidden(".msg.assistant details"), true, "no reasoning from Gemma 3: nothing to unfold");
      // The server's generation ended too: the model is free again.
      for (
        let i = 0;
        i < 100 && (await (await fetch(`http://127.0.0.1:${server.addr.port}/health`)).json()).queue.busy;
        i++
      ) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal((await (await fetch(`http://127.0.0.1:${server.addr.port}/health`)).json()).queue.busy, false);

      // Attach by the file picker and by drag-and-drop: previews, then both images go out as image_url parts.
      const png = Uint8Array.from(atob(PNG_DATA_URL.split(",")[1]), (c) => c.charCodeAt(0));
      await page.setInputFiles("#file", { name: "red.png", mimeType: "image/png", buffer: Buffer.from(png) });
      // A drop event carrying a File, as a drag from the desktop delivers it (script runs in the page).
      const drop = await page.evaluateHandle(`(() => {
        const bytes = Uint8Array.from(atob(${JSON.stringify(PNG_DATA_URL.split(",")[1])}), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
        return dt;
      })()`);
      await page.dispatchEvent("#composer", "drop", { dataTransfer: drop });
      await page.waitForFunction(`document.querySelectorAll("#attachments img").length === 2`);
      await page.fill("#prompt", "What is this?");
      await page.click("#send");
      // The answer to the images streams in (the stop button is live meanwhile) and ends without an error.
      await page.waitForFunction(
        `(document.querySelectorAll(".msg.assistant .content")[1]?.textContent ?? "").length > 0`,
      );
      assert.equal(await page.isDisabled("#stop"), false);
      await page.waitForFunction(`document.querySelectorAll(".msg.assistant[data-done]").length === 2`);
      const sent = JSON.parse(requests.at(-1)!);
      const parts = sent.messages.at(-1).content;
      assert.deepEqual(parts.map((p: { type: string }) => p.type), ["text", "image_url", "image_url"]);
      assert.equal(parts[1].image_url.url, PNG_DATA_URL);
      assert.equal(sent.messages.length, 3, "the stopped answer stays in the conversation");
      assert.equal(await page.locator(".msg.user img").count(), 2, "the images show in the conversation");
      assert.equal(await page.locator(".msg.assistant .error").count(), 0);
      const second = (await page.locator(".msg.assistant .content").nth(1).textContent()) ?? "";
      const direct = await model.generate({
        messages: sent.messages.map((m: { role: string; content: unknown }) => ({
          role: m.role,
          content: Array.isArray(m.content)
            ? m.content.map((p) => p.type === "text" ? p : { type: "image", bytes: png })
            : m.content,
        })),
      }, { maxTokens: 40, temperature: 0 });
      assert.equal(second, direct.text, "the page shows the model's answer to the images");
    } catch (e) {
      const log = await browser.contexts()[0]?.pages()[0]?.locator("#log").innerText().catch(() => "?");
      console.log(`the page showed:\n${log}`);
      throw e;
    } finally {
      await browser.close();
      await server.shutdown();
    }
  },
});
