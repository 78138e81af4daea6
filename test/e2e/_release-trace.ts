/**
 * Preloaded (bun --preload) by release-startup.test.ts: when the process exits, writes every
 * module Bun loaded (ESM and CommonJS share require.cache in Bun) to $SANDBOXES_TRACE_OUT.
 */
import { writeFileSync } from "node:fs";

const out = process.env.SANDBOXES_TRACE_OUT;
if (out) {
  process.on("exit", () => {
    writeFileSync(out, JSON.stringify(Object.keys(require.cache)));
  });
}
