import type { ConsolaInstance } from "consola";
import { printable } from "../base/quote";
import type { Messages } from "./io";
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
let messages: Messages | undefined;

/**
 * Human messages: every level to stderr (consola's defaults send info to stdout). A message may
 * quote what a sandbox chose (a file name in a copy, a provider's error): what a terminal would act
 * on is shown as escapes (printable); consola's own colours come after.
 */
export function ui(): Messages {
  humanOutput.used = true;
  if (!messages) {
    const say = (level: keyof Messages) => (message: string) => consola()[level](printable(message, { lines: true }));
    messages = { info: say("info"), success: say("success"), warn: say("warn"), error: say("error") };
  }
  return messages;
}

function consola(): ConsolaInstance {
  instance ??= createConsola({
    // Explicit: consola lowers its level under NODE_ENV=test or CI, which would hide "kept sandbox <id>".
    level: process.env.SANDBOXES_QUIET ? 1 : 3,
    stdout: process.stderr,
    stderr: process.stderr,
    formatOptions: { date: false, colors: useColor(), compact: true },
  });
  return instance;
}

