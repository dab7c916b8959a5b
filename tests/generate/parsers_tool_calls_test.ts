/** Gemma 4's tool-call grammar: typed values, nesting, string delimiters, and clear errors for junk. */
import assert from "node:assert/strict";
import { parseToolCall, STRING_DELIM as Q, type ToolCallSegments } from "../../src/models/gemma4/tool_calls.ts";
import { ToolCallParseError } from "../../src/errors.ts";

/** Writes a call the way the template does: `<|"|>` in the text marks a delimiter token. */
function segments(text: string): ToolCallSegments {
  const out: (string | typeof Q)[] = [];
  text.split('<|"|>').forEach((part, i) => {
    if (i > 0) out.push(Q);
    if (part) out.push(part);
  });
  return out;
}

Deno.test("tool call: typed values, nested objects and arrays", () => {
  const call = parseToolCall(segments(
    'call:get_weather{days:3,location:<|"|>Paris, France<|"|>,options:{hourly:false,limits:[1,-2.5e3],' +
      'unit:<|"|>celsius<|"|>},none:null,py:None,tags:[<|"|>a<|"|>,[],{}],verbose:true}',
  ));
  assert.deepEqual(call, {
    name: "get_weather",
    arguments: {
      days: 3,
      location: "Paris, France",
      options: { hourly: false, limits: [1, -2500], unit: "celsius" },
      none: null,
      py: null,
      tags: ["a", [], {}],
      verbose: true,
    },
  });
});

Deno.test("tool call: strings keep braces, quotes, colons and newlines verbatim; quoted keys", () => {
  const call = parseToolCall(segments('call:f{<|"|>odd key<|"|>:<|"|>{x}: "y",\n<|"|>,b:<|"|><|"|>}'));
  assert.deepEqual(call, { name: "f", arguments: { "odd key": '{x}: "y",\n', b: "" } });
});

Deno.test("tool call: whitespace between tokens and text split anywhere", () => {
  const text = "call:add{ a : 1 , b : [ 1 , 2 ] }";
  for (let i = 1; i < text.length; i++) {
    assert.deepEqual(parseToolCall([text.slice(0, i), text.slice(i)]), { name: "add", arguments: { a: 1, b: [1, 2] } });
  }
  assert.deepEqual(parseToolCall(segments("call:noop{}")), { name: "noop", arguments: {} });
});

Deno.test("tool call: junk is a ToolCallParseError naming the problem", () => {
  const bad: [string, RegExp][] = [
    ["add{a:1}", /expected "call:NAME\{"/],
    ["call:add", /no "\{"/],
    ["call:{a:1}", /bad function name/],
    ["call:add{a:1,b:}", /"}" is not a value|unexpected "}"/],
    ["call:add{a:1", /ends inside|expected "," or "}"/],
    ["call:add{a:Paris}", /"Paris" is not a value/],
    ['call:add{a:<|"|>open}', /not closed/],
    ["call:add{a:1}}", /text after the arguments/],
    ["call:add{a 1}", /expected ":"/],
    ["call:add{[1]:2}", /expected a key/],
    ["", /expected "call:NAME\{"/],
  ];
  for (const [text, re] of bad) {
    assert.throws(() => parseToolCall(segments(text)), (e: unknown) => {
      assert.ok(e instanceof ToolCallParseError, `${text}: ${e}`);
      assert.match(e.message, re, text);
      assert.equal(e.raw, text);
      return true;
    });
  }
});
