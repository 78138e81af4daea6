import { SandboxesError } from "../base/errors";

// node:fs is loaded on the first write: ~1 ms that `--help` and friends need not pay.
let nodeFs: typeof import("node:fs") | undefined;
const fs = () => (nodeFs ??= require("node:fs") as typeof import("node:fs"));

/** Set by main.ts: called once when whoever reads our stdout has gone (`sandboxes run yes | head -1`). */
export const brokenPipe: { onStdoutClosed?: () => void } = {};
/** Set once consola (commands/_ui.ts), which writes through Node's process.stderr stream, is in use. */
export const humanOutput = { used: false };
const closed = new Set<number>();

/**
 * Blocking writes, so a slow reader slows the program down (backpressure through the pipes)
 * instead of us buffering without bound and losing the tail at exit.
 */
function writeAll(fd: 1 | 2, chunk: Uint8Array | string): void {
  if (closed.has(fd)) return;
  let bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
  while (bytes.length > 0) {
    try {
      bytes = bytes.subarray(fs().writeSync(fd, bytes));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EAGAIN") {
        Bun.sleepSync(1);
        continue;
      }
      if (code === "EPIPE") {
        closed.add(fd);
        if (fd === 1) brokenPipe.onStdoutClosed?.();
        return;
      }
      throw writeFailed(fd, error);
    }
  }
}

/**
 * A whole document (a table, a JSON document, help text) through Bun's own writer, resolving
 * once every byte is out. Commands that print only documents (providers, list, help) then never
 * load node:fs, which costs ~1 ms of start-up (bench/startup.ts). A reader that went away counts
 * as it does for writeStdout.
 */
export async function emitStdout(text: string): Promise<void> {
  if (closed.has(1)) return;
  try {
    await Bun.write(Bun.stdout, text);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EPIPE") throw writeFailed(1, error);
    closed.add(1);
    brokenPipe.onStdoutClosed?.();
  }
}

/** A full disk or a closed descriptor is the user's environment, not a bug in sandboxes. */
function writeFailed(fd: 1 | 2, error: unknown): SandboxesError {
  const code = (error as NodeJS.ErrnoException).code;
  const what = fd === 1 ? "standard output" : "standard error";
  return new SandboxesError(fd === 1 ? "stdout_failed" : "stderr_failed", `cannot write to ${what}: ${code ?? (error as Error).message}`, "user", `check where ${what} goes (a full disk, a closed descriptor)`);
}

/** Streamed output (a running program's): blocking writes, see writeAll. */
export function writeStdout(chunk: Uint8Array | string): void {
  writeAll(1, chunk);
}

export function writeStderr(chunk: Uint8Array | string): void {
  writeAll(2, chunk);
}

/**
 * Whether fd 0/1/2 is a terminal, without touching process.stdin/stdout/stderr: creating those
 * Node streams costs milliseconds at start-up (bench/startup.ts).
 */
export function isTerminal(fd: 0 | 1 | 2): boolean {
  // node:tty costs ~2.5 ms to load (it brings in net and streams), yet its isatty(fd) is just
  // the tty_wrap binding's isTTY(fd), in Node and in Bun alike; ask the binding directly.
  try {
    const binding = (process as unknown as { binding(name: string): { isTTY?: (fd: number) => boolean } }).binding("tty_wrap");
    if (typeof binding.isTTY === "function") return binding.isTTY(fd);
  } catch {
    /* a runtime without the binding: ask node:tty */
  }
  return (require("node:tty") as typeof import("node:tty")).isatty(fd);
}
