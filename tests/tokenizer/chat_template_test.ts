import assert from "node:assert/strict";
import { GemmakitError } from "../../src/errors.ts";
import { type ChatMessage, ChatTemplate } from "../../src/tokenizer/chat_template.ts";
import { thrown } from "../helpers.ts";
import { gemma3, REFERENCE } from "./gemma3.ts";

const byName = (name: string) => {
  const c = REFERENCE.chat.find((c) => c.name === name);
  if (!c) throw new Error(`no reference chat "${name}"`);
  return c;
};

for (
  const name of [
    "user_only",
    "system_user",
    "multi_turn",
    "multi_turn_no_generation_prompt",
    "content_parts_with_image",
  ]
) {
  Deno.test(`Gemma 3 chat template renders "${name}" as transformers' jinja2 does, and encodes to its ids`, async () => {
    const tok = await gemma3();
    const c = byName(name);
    const messages = c.messages as ChatMessage[];
    const options = { addGenerationPrompt: c.add_generation_prompt };
    assert.equal(tok.applyChatTemplate(messages, options), c.text);
    assert.deepEqual(tok.encodeChat(messages, options), c.ids);
  });
}

Deno.test("add_generation_prompt opens the model turn; without it the text ends after the last turn", async () => {
  const tok = await gemma3();
  const messages: ChatMessage[] = [{ role: "user", content: "Hi" }];
  const open = tok.applyChatTemplate(messages, { addGenerationPrompt: true });
  const closed = tok.applyChatTemplate(messages);
  assert.equal(open, closed + "<start_of_turn>model\n");
  assert.ok(byName("system_user").text.endsWith("<end_of_turn>\n<start_of_turn>model\n"));
  assert.ok(byName("multi_turn_no_generation_prompt").text.endsWith("Hello!<end_of_turn>\n"));
});

Deno.test("the template's raise_exception becomes a GemmakitError with the template's message", async () => {
  const tok = await gemma3();
  for (const c of REFERENCE.chat_errors) {
    const err = thrown(() => tok.applyChatTemplate(c.messages, { addGenerationPrompt: true }), GemmakitError);
    assert.equal(err.op, "chat_template");
    assert.equal(err.message.split("\n")[0], `chat_template: ${c.error}`, c.name);
  }
  assert.equal(REFERENCE.chat_errors[0].error, "Conversation roles must alternate user/assistant/user/assistant/...");
});

Deno.test("messages are validated before the template runs", async () => {
  const tok = await gemma3();
  const cases: [unknown, RegExp][] = [
    ["not a list", /messages must be an array/],
    [[null], /messages\[0\] must be an object/],
    [[{ content: "hi" }], /messages\[0\]\.role must be a non-empty string, got undefined/],
    [[{ role: 7, content: "hi" }], /messages\[0\]\.role must be a non-empty string, got 7/],
    [
      [{ role: "user", content: "a" }, { role: "assistant", content: 42 }],
      /messages\[1\]\.content must be a string or an array of parts, got 42/,
    ],
    [[{ role: "user" }], /messages\[0\]\.content must be a string or an array of parts, got undefined/],
    [[{ role: "user", content: ["hi"] }], /messages\[0\]\.content\[0\] must be an object with a string "type"/],
    [
      [{ role: "user", content: [{ type: "text" }] }],
      /messages\[0\]\.content\[0\] is a text part without a string "text"/,
    ],
  ];
  for (const [messages, pattern] of cases) {
    const err = thrown(() => tok.applyChatTemplate(messages as ChatMessage[]), GemmakitError);
    assert.equal(err.op, "chat_template");
    assert.match(err.message, pattern);
  }
  // Tool turns may leave content out.
  const t = new ChatTemplate("{% for m in messages %}{{ m.role }}:{{ m.tool_calls | length }};{% endfor %}");
  assert.equal(t.render([{ role: "assistant", tool_calls: [{ name: "f" }] }]), "assistant:1;");
  const r = new ChatTemplate("{% for m in messages %}{{ m.tool_responses[0].name }}{% endfor %}");
  assert.equal(r.render([{ role: "tool", tool_responses: [{ name: "f", response: 1 }] }]), "f");
});

Deno.test("extra variables, tools and special tokens reach the template", () => {
  const t = new ChatTemplate(
    "{{ bos_token }}{% if enable_thinking %}<think>{% endif %}" +
      "{% for tool in tools %}[{{ tool.name }}]{% endfor %}{{ messages[0].content }}{{ image_token }}" +
      "{% for i in range(3) %}{{ i }}{% endfor %}{{ strftime_now('%%') }}{{ true }}",
    { bos_token: "<bos>", image_token: "<img>" },
  );
  const out = t.render([{ role: "user", content: "q" }], {
    tools: [{ name: "search" }, { name: "math" }],
    variables: { enable_thinking: true },
  });
  assert.equal(out, "<bos><think>[search][math]q<img>012%true");
});

Deno.test("named templates: default, tool_use when tools are given, or an asked name", () => {
  const t = new ChatTemplate([
    { name: "default", template: "D" },
    { name: "tool_use", template: "T" },
    { name: "rag", template: "R" },
  ]);
  const messages: ChatMessage[] = [{ role: "user", content: "x" }];
  assert.deepEqual(t.names, ["default", "tool_use", "rag"]);
  assert.equal(t.render(messages), "D");
  assert.equal(t.render(messages, { tools: [] }), "T");
  assert.equal(t.render(messages, { templateName: "rag" }), "R");
  const err = thrown(() => t.render(messages, { templateName: "nope" }), GemmakitError);
  assert.match(err.message, /no template named "nope"/);
  assert.match(err.message, /default, tool_use, rag/);
});

Deno.test("broken templates and render failures are GemmakitErrors", () => {
  assert.throws(
    () => new ChatTemplate("{% for %}"),
    (e) => e instanceof GemmakitError && /does not parse/.test(e.message),
  );
  const t = new ChatTemplate("{{ messages[0].content | no_such_filter }}");
  const err = thrown(() => t.render([{ role: "user", content: "x" }]), GemmakitError);
  assert.match(err.message, /rendering failed/);
  assert.throws(() => new ChatTemplate([]), GemmakitError);
});
