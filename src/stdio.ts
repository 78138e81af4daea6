import { readlinkSync, writeSync } from "node:fs";

/** Set by main.ts: called once when whoever reads our stdout has gone (`sandboxes run yes | head -1`). */
export const brokenPipe: { onStdoutClosed?: () => void } = {};
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
      bytes = bytes.subarray(writeSync(fd, bytes));
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
      throw error;
    }
  }
}

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
  // node:tty alone costs ~3 ms to load; on Linux the fd's target names the terminal for free.
  if (process.platform === "linux") {
    try {
      return /^\/dev\/(pts\/\d+|tty\w*|console)$/.test(readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      /* no /proc: ask node:tty */
    }
  }
  return (require("node:tty") as typeof import("node:tty")).isatty(fd);
}
