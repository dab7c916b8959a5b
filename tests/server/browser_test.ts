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
import { PNG_DATA_URL, ROOT, ScriptedModel } from "./helpers.ts";
import { Backend } from "../../src/runtime/backend.ts";

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
      await page.waitForFunction(`(document.querySelector(".msg.assistant .content")?.dataset.raw ?? "").length > 0`);
      // The raw answer (the page shows it rendered as markdown).
      const early = await answer.getAttribute("data-raw");
      assert.equal(await page.isDisabled("#stop"), false, "stop is live while streaming");
      await page.click("#stop");
      await page.locator(".msg.assistant .note").filter({ hasText: "(stopped)" }).waitFor();
      const shown = (await answer.getAttribute("data-raw")) ?? "";
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
        `(document.querySelectorAll(".msg.assistant .content")[1]?.dataset.raw ?? "").length > 0`,
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
      const second = (await page.locator(".msg.assistant .content").nth(1).getAttribute("data-raw")) ?? "";
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

/** A scripted model whose next generation fails before its first token while `failNext` is set. */
class Flaky extends ScriptedModel {
  failNext = false;
  override stream(...args: Parameters<ScriptedModel["stream"]>): ReturnType<ScriptedModel["stream"]> {
    if (this.failNext) {
      this.failNext = false;
      throw new RangeError("scripted failure");
    }
    return super.stream(...args);
  }
}

const MARKDOWN = [
  "# Title\n\n",
  "Some **bold** text and `inline` code.\n\n",
  "```js\nlet x = 1;\n```\n\n",
  '<img src="x" onerror="window.__xss = 1">',
  "\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n",
  `A long unbroken word: ${"x".repeat(160)}`,
];

Deno.test({
  name: "chat page: markdown (sanitized), settings, new chat, error and retry, phone width, dark mode",
  ignore: !hasChromium,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    using backend = Backend.open({ backend: "cpu" });
    const model = new Flaky(backend, MARKDOWN, true);
    const app = createApp({ model, modelId: "scripted" });
    const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, app.fetch);
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    const shots = await Deno.makeTempDir({ prefix: "gemmakit-chat-shots-" });
    try {
      const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
      const requests: Record<string, unknown>[] = [];
      page.on("request", (r) => r.method() === "POST" && requests.push(JSON.parse(r.postData() ?? "{}")));
      const sentMessages = () => (requests.at(-1)!.messages as { role: string; content: string }[]);
      await page.goto(`http://127.0.0.1:${server.addr.port}/`);
      await page.locator("#status").filter({ hasText: "model: scripted" }).waitFor();
      const done = (n: number) =>
        page.waitForFunction(`document.querySelectorAll(".msg.assistant[data-done]").length === ${n}`);

      // Markdown and code render; the model's HTML does not run.
      await page.fill("#prompt", "Show me markdown.");
      await page.click("#send");
      await done(1);
      const content = page.locator(".msg.assistant .content").first();
      assert.equal(await content.locator("h1").textContent(), "Title");
      assert.equal(await content.locator("pre code").textContent(), "let x = 1;\n");
      assert.equal(await content.locator("strong").textContent(), "bold");
      assert.equal(await content.locator("table td").count(), 2);
      assert.equal(await content.locator("img[onerror]").count(), 0, "sanitized");
      assert.equal(await page.evaluate("window.__xss"), undefined);
      assert.match(
        (await page.locator(".msg.assistant .stats").first().textContent())!,
        /^6 tokens( · [\d.]+ tok\/s)? · prompt \d+$/,
      );
      await page.screenshot({ path: `${shots}/desktop-light.png` });

      // Settings go out with the next request and survive a reload.
      await page.click("#settings summary");
      await page.fill("#system", "Answer in French.");
      await page.fill("#temperature", "0.5");
      await page.fill("#max-tokens", "64");
      await page.selectOption("#thinking", "off");
      await page.check("#json-mode");
      await page.screenshot({ path: `${shots}/settings.png` });
      await page.fill("#prompt", "Again.");
      await page.click("#send");
      await done(2);
      const withSettings = requests.at(-1)!;
      assert.equal(withSettings.temperature, 0.5);
      assert.equal(withSettings.max_tokens, 64);
      assert.equal(withSettings.reasoning_effort, "none");
      assert.deepEqual(withSettings.response_format, { type: "json_object" });
      assert.deepEqual(sentMessages().map((m) => m.role), ["system", "user", "assistant", "user"]);
      assert.equal(sentMessages()[0].content, "Answer in French.");
      await page.reload();
      await page.locator("#status").filter({ hasText: "model: scripted" }).waitFor();
      assert.equal(await page.inputValue("#system"), "Answer in French.");
      assert.equal(await page.inputValue("#thinking"), "off");
      assert.equal(await page.isChecked("#json-mode"), true);
      await page.click("#settings summary"); // folded again after the reload
      await page.fill("#system", "");
      await page.fill("#temperature", "");
      await page.fill("#max-tokens", "");
      await page.selectOption("#thinking", "default");
      await page.uncheck("#json-mode");

      // A failed turn shows its error with a retry and is not sent again with the next message.
      model.failNext = true;
      await page.fill("#prompt", "This one fails.");
      await page.click("#send");
      await page.locator(".msg.assistant .error").filter({ hasText: "scripted failure" }).waitFor();
      await page.fill("#prompt", "Next message.");
      await page.click("#send");
      await done(2);
      assert.deepEqual(sentMessages().map((m) => m.content), ["Next message."]);
      for (const field of ["temperature", "max_tokens", "reasoning_effort", "response_format"]) {
        assert.ok(!(field in requests.at(-1)!), `${field} left to the server once cleared`);
      }
      // Fail again, then retry: the retried turn goes out once, after the turns that succeeded.
      model.failNext = true;
      await page.fill("#prompt", "Retry me.");
      await page.click("#send");
      await page.waitForFunction(`document.querySelectorAll(".retry").length === 2`);
      await page.screenshot({ path: `${shots}/error.png` });
      await page.locator(".retry").last().click();
      await page.waitForFunction(
        `document.querySelectorAll(".retry").length === 1 && document.querySelectorAll(".msg.assistant[data-done]").length === 3`,
      );
      assert.deepEqual(sentMessages().filter((m) => m.role === "user").map((m) => m.content), [
        "Next message.",
        "Retry me.",
      ]);
      assert.equal(await page.locator(".msg.assistant .error").count(), 1, "only the first failure is still on screen");

      // New chat: an empty log, and the next request carries only its own message.
      await page.click("#new-chat");
      assert.equal(await page.locator("#log .msg").count(), 0);
      await page.fill("#prompt", "Fresh start.");
      await page.click("#send");
      await done(1);
      assert.deepEqual(sentMessages().map((m) => m.content), ["Fresh start."]);

      // A phone, in dark mode: nothing runs off-screen, the textarea keeps its size, colours follow the scheme.
      await page.setViewportSize({ width: 390, height: 844 });
      await page.emulateMedia({ colorScheme: "dark" });
      const box = (await page.locator("#prompt").boundingBox())!;
      assert.ok(box.width >= 330 && box.height >= 60, `textarea ${box.width}x${box.height}`);
      assert.ok(await page.evaluate("document.documentElement.scrollWidth <= 390"), "no horizontal scroll");
      const answerBox = (await page.locator(".msg.assistant").last().boundingBox())!;
      assert.ok(
        answerBox.x >= 0 && answerBox.x + answerBox.width <= 390,
        `answer at ${answerBox.x}+${answerBox.width}`,
      );
      assert.equal(await page.evaluate("getComputedStyle(document.body).backgroundColor"), "rgb(15, 17, 21)");
      await page.screenshot({ path: `${shots}/phone-dark.png` });
      await page.emulateMedia({ colorScheme: "light" });
      await page.screenshot({ path: `${shots}/phone-light.png`, fullPage: true });
      console.log(`screenshots: ${shots}`);

      // A video file is attached as a video_url part (this scripted model takes no video: the server's 400 shows).
      const mp4 = new Uint8Array([0, 0, 0, 24, 102, 116, 121, 112, 105, 115, 111, 109]); // an "ftyp" box header
      await page.setInputFiles("#file", { name: "clip.mp4", mimeType: "video/mp4", buffer: Buffer.from(mp4) });
      await page.waitForFunction(`document.querySelectorAll("#attachments video").length === 1`);
      await page.fill("#prompt", "What happens?");
      await page.click("#send");
      await page.waitForFunction(
        `document.querySelectorAll(".retry").length >= 1 || document.querySelector(".msg.assistant[data-done]:last-child")`,
      );
      const lastUser = sentMessages().at(-1)!.content as unknown as { type: string; video_url?: { url: string } }[];
      assert.deepEqual(lastUser.map((p) => p.type), ["text", "video_url"]);
      assert.ok(lastUser[1].video_url!.url.startsWith("data:video/mp4;base64,"));
      assert.equal(await page.locator(".msg.user video").count(), 1, "the video shows in the conversation");
    } finally {
      await browser.close();
      await server.shutdown();
    }
  },
});
