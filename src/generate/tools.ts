/**
 * Tools a model may call, and the calls it makes, in the OpenAI / transformers shapes. Each family parses its
 * own call syntax into these (a family's response parser); generation and the frontends only see these types.
 * @module
 */
import { GemmakitError } from "../errors.ts";

/** A parsed argument value: what JSON.parse would give. */
export type ToolValue = string | number | boolean | null | ToolValue[] | { [key: string]: ToolValue };

/** One tool call the model made. */
export interface ToolCall {
  /** The function name, as declared in the tools. */
  name: string;
  /** The arguments, typed (numbers, booleans, nested objects and arrays). */
  arguments: Record<string, ToolValue>;
}

/** A tool the model may call, in the OpenAI / transformers formchat templates read. */
export interface ToolSpec {
  type: "function";
  function: {
    name: string;
    description?: string;
    /** JSON schema of the arguments: `{type: "object", properties: {...}, required: [...]}`. */
    parameters?: Record<string, unknown>;
    [key: string]: unknown;
  };
}

/** Checks tool specs before the template sees them, so a mistake reads as one clear line. */
export function validateTools(tools: unknown): asserts tools is ToolSpec[] {
  if (!Array.isArray(tools)) throw new GemmakitError("generate", `tools must be an array, got ${typeof tools}`);
  tools.forEach((tool, i) => {
    const fn = (tool as ToolSpec | null)?.function;
    if (!tool || typeof tool !== "object" || !fn || typeof fn !== "object" || typeof fn.name !== "string" || !fn.name) {
      throw new GemmakitError("generate", `tools[${i}] must be {type: "function", function: {name, ...}}`, {
        hint: 'e.g. {type: "function", function: {name: "get_weather", parameters: {type: "object", properties: {}}}}',
      });
    }
    if (fn.parameters !== undefined && (typeof fn.parameters !== "object" || fn.parameters === null)) {
      throw new GemmakitError("generate", `tools[${i}].function.parameters must be a JSON-schema object`);
    }
  });
}
