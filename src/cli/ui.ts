import type { ConsolaInstance } from "consola";
import { humanOutput, isTerminal } from "./stdio";

// consola pulls in node:tty and node:util: loaded on the first ui() call. This module is apart
// from _output.ts because the bundler puts consola's code in a chunk that every importer loads:
// commands that only print data (providers) must not import it at all (bench/startup.ts).
const createConsola: typeof import("consola").createConsola = (options) => (require("consola") as typeof import("consola")).createConsola(options);

/** One colour policy: NO_COLOR, FORCE_COLOR, TERM=dumb and non-TTY stderr turn colour off. */
export function useColor(env = process.env, isTTY = isTerminal(2)): boolean {
  if (env.NO_COLOR) return false;
  if (env.FORCE_COLOR && env.FORCE_COLOR !== "0") return true;
  if (env.TERM === "dumb") return false;
  return isTTY;
}

let instance: ConsolaInstance | undefined;

/** Human messages: every level to stderr (consola's defaults send info to stdout). */
export function ui(): ConsolaInstance {
  humanOutput.used = true;
  instance ??= createConsola({
    // Explicit: consola lowers its level under NODE_ENV=test or CI, which would hide "kept sandbox <id>".
    level: process.env.SANDBOXES_QUIET ? 1 : 3,
    stdout: process.stderr,
    stderr: process.stderr,
    formatOptions: { date: false, colors: useColor(), compact: true },
  });
  return instance;
}

