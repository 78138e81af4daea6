import type { InteractiveIO } from "../core/interactive";
import type { OutputSink } from "../core/run";
import { attach, isInteractive, localTerminal, terminalSize } from "./bridge";

/** The InteractiveIO of this process: our terminal when stdin is one, our stdin pipe otherwise. */
export function processIO(sink: OutputSink): InteractiveIO {
  const terminal = localTerminal();
  return {
    interactive: isInteractive(terminal),
    size: () => terminalSize(terminal),
    terminalEnv: () => ({
      TERM: process.env.TERM && process.env.TERM !== "dumb" ? process.env.TERM : "xterm-256color",
      ...(process.env.COLORTERM ? { COLORTERM: process.env.COLORTERM } : {}),
    }),
    attach: (session, options) => attach(session, terminal, options),
    stdin: () => Bun.stdin.stream() as ReadableStream<Uint8Array>,
    sink,
  };
}

/**
 * An abort signal that also fires on SIGHUP (the terminal window was closed). main.ts aborts its
 * own signal on SIGHUP too; this one keeps the session's reason "SIGHUP" whichever comes first.
 */
export function withHangup(parent: AbortSignal): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const fromParent = () => controller.abort(parent.reason);
  const onHangup = () => controller.abort("SIGHUP");
  if (parent.aborted) fromParent();
  parent.addEventListener("abort", fromParent, { once: true });
  process.on("SIGHUP", onHangup);
  return {
    signal: controller.signal,
    dispose() {
      parent.removeEventListener("abort", fromParent);
      process.off("SIGHUP", onHangup);
    },
  };
}
