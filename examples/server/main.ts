/** `deno task serve [--port N] [--backend auto|cpu|cuda]`: runs the example app on Deno.serve. */
import { parseArgs } from "node:util";
import { Backend, type BackendChoice } from "../../mod.ts";
import { createApp } from "./app.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { port: { type: "string", default: "8080" }, backend: { type: "string", default: "auto" } },
});
const backend = Backend.open({ backend: values.backend as BackendChoice });
console.log(`gemmakit server on ${backend.kind} (${backend.deviceName})`);
Deno.serve({ port: Number(values.port) }, createApp({ backend }).fetch);
