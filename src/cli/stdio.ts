import { SandboxesError } from "../base/errors";

// node:fs is loaded on the first write that needs it: ~1 ms that `--help` and friends need not pay.
let nodeFs: typeof import("node:fs") | undefined;
const fs = () => (nodeFs ??= require("node:fs") as typeof import("node:fs"));

/** Set by main.ts: called once when whoever reads our stdout has gone (`sandboxes run yes | head -1`). */
export const brokenPipe: { onStdoutClosed?: () => void } = {};
/** Set once consola (cli/ui.ts), which writes through Node's process.stderr stream, is in use. */
export const humanOutput = { used: false };
const closed = new Set<number>();

/** Once we are stopping (a signal, a closed pipe): how long a reader may take nothing before we stop writing to it. */
const STALLED_MS = 500;

/**
 * Our stdout or stderr as an ordered queue of writes, each resolved once its bytes are out
 * (writerFor says how, without ever blocking this thread on a reader). A slow reader so holds
 * back only the output loop that awaits the write (backpressure, through the pipes, up to the
 * program) while this process stays free to handle a signal and clean up. Writers that cannot
 * await (a provider's socket callback) still get their bytes out in order.
 */
class Outlet {
  private tail: Promise<void> = Promise.resolve();
  private queued = 0;
  private finished = 0;
  /** The reader closed the pipe, a write failed, or the reader stalled after a stop: drop the rest. */
  private gone = false;
  private giveUp!: () => void;
  private readonly givenUp = new Promise<void>((resolve) => (this.giveUp = resolve));
  private watchdog?: ReturnType<typeof setInterval>;
  private writer?: (bytes: Uint8Array) => void | Promise<void>;

  constructor(private readonly fd: 1 | 2) {}

  /** Nothing queued and not stopping: a write now goes out in order without the queue. */
  get idle(): boolean {
    return this.queued === 0 && this.watchdog === undefined;
  }

  write(chunk: Uint8Array | string): Promise<void> {
    if (this.gone || closed.has(this.fd) || chunk.length === 0) return Promise.resolve();
    this.queued++;
    const written = this.tail
      .then(() => (this.gone ? undefined : this.out(chunk)))
      .finally(() => {
        this.queued--;
        this.finished++;
      });
    this.tail = written.catch(() => {});
    const settled = Promise.race([written, this.givenUp]);
    // A writer that does not await must not bring the process down; one that does sees the error.
    settled.catch(() => {});
    return settled;
  }

  /** Whether bytes were dropped because the reader stalled after a stop. */
  get stalled(): boolean {
    return this.gone && !closed.has(this.fd);
  }

  /** Resolves once everything queued is out, or given up on. */
  drained(): Promise<void> {
    return Promise.race([this.tail, this.givenUp]);
  }

  /** From now on (we are stopping), a reader that takes nothing for STALLED_MS is given up on. */
  stopWaiting(): void {
    if (this.watchdog) return;
    let seen = this.finished;
    let waiting = this.queued > 0;
    this.watchdog = setInterval(() => {
      // Something was waiting at the last look, and nothing has gone out since.
      if (waiting && this.finished === seen) {
        this.gone = true;
        this.giveUp();
      }
      seen = this.finished;
      waiting = this.queued > 0;
    }, STALLED_MS);
    this.watchdog.unref?.();
  }

  private async out(chunk: Uint8Array | string): Promise<void> {
    try {
      await (this.writer ??= writerFor(this.fd))(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
    } catch (error) {
      this.gone = true;
      if ((error as NodeJS.ErrnoException).code !== "EPIPE") throw writeFailed(this.fd, error);
      closed.add(this.fd);
      if (this.fd === 1) brokenPipe.onStdoutClosed?.();
    }
  }
}

/**
 * How to write to fd without blocking this thread on its reader. A file or /dev/null: at once.
 * A pipe: through a descriptor of our own opened non-blocking on it (the flag stays ours: a
 * program given fd 1 itself still sees a blocking pipe), and only when the pipe is full, a
 * blocking write on a worker thread that returns as the reader makes room. Anything else (a
 * socket, a terminal): on a worker thread.
 */
function writerFor(fd: 1 | 2): (bytes: Uint8Array) => void | Promise<void> {
  const stat = fs().fstatSync(fd);
  if (stat.isFile() || (stat.isCharacterDevice() && !isTerminal(fd))) return (bytes) => writeUnlessFull(fd, fd, bytes);
  if (stat.isFIFO()) {
    try {
      const own = fs().openSync(`/proc/self/fd/${fd}`, fs().constants.O_WRONLY | fs().constants.O_NONBLOCK);
      return (bytes) => writeUnlessFull(own, fd, bytes);
    } catch {
      /* no /proc, or a pipe made by another user: the worker thread alone */
    }
  }
  return (bytes) => writeOnThread(fd, bytes);
}

/** Turns of the event loop to wait for a full pipe to drain before a worker thread waits instead. */
const SPINS = 50;

/**
 * Writes through `own` as long as it takes bytes. A full pipe usually drains within a few turns
 * of the event loop (a reader keeping up); one that does not is waited for on a worker thread.
 */
async function writeUnlessFull(own: number, fd: 1 | 2, bytes: Uint8Array): Promise<void> {
  let spins = 0;
  while (bytes.length > 0) {
    try {
      bytes = bytes.subarray(fs().writeSync(own, bytes));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EAGAIN") throw error;
      if (++spins > SPINS) return writeOnThread(fd, bytes);
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

async function writeOnThread(fd: 1 | 2, bytes: Uint8Array): Promise<void> {
  while (bytes.length > 0) {
    try {
      const written = await new Promise<number>((resolve, reject) => fs().write(fd, bytes, (error, n) => (error ? reject(error) : resolve(n))));
      bytes = bytes.subarray(written);
    } catch (error) {
      // Someone sharing the descriptor made it non-blocking: poll, gently.
      if ((error as NodeJS.ErrnoException).code !== "EAGAIN") throw error;
      await Bun.sleep(1);
    }
  }
}

const outlets = { 1: new Outlet(1), 2: new Outlet(2) } as const;

/** Blocking writes, for a line or a small document while nothing is queued (see write). */
function writeAll(fd: 1 | 2, chunk: Uint8Array | string): void {
  let bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
  while (bytes.length > 0) {
    try {
      bytes = bytes.subarray(fs().writeSync(fd, bytes));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EAGAIN") {
        // Someone sharing the descriptor made it non-blocking, and it is full: the rest goes out
        // behind, in order.
        void outlets[fd].write(bytes);
        return;
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
 * A line or a small document (a notice, an error report) now: written at once when nothing is
 * queued on that stream, else queued behind what is, so the order holds and a stalled reader
 * never blocks this process. main.ts waits for the queue (drainOutput) before it exits.
 */
function write(fd: 1 | 2, chunk: Uint8Array | string): void {
  if (closed.has(fd)) return;
  if (outlets[fd].idle) writeAll(fd, chunk);
  else void outlets[fd].write(chunk);
}

export function writeStdout(chunk: Uint8Array | string): void {
  write(1, chunk);
}

export function writeStderr(chunk: Uint8Array | string): void {
  write(2, chunk);
}

/**
 * A whole document (a table, a JSON document, help text) through Bun's own writer, resolving
 * once every byte is out. Commands that print only documents (providers, list, help) then never
 * load node:fs, which costs ~1 ms of start-up (bench/startup.ts). A reader that went away counts
 * as it does for streamed output.
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

/**
 * Streamed output (a running program's, a large --json document): resolves once the bytes are
 * out, so an output loop that awaits it passes the reader's pace back to the program. A reader
 * that went away (EPIPE) calls brokenPipe.onStdoutClosed and the rest is dropped.
 */
export function streamStdout(chunk: Uint8Array | string): Promise<void> {
  return outlets[1].write(chunk);
}

export function streamStderr(chunk: Uint8Array | string): Promise<void> {
  return outlets[2].write(chunk);
}

/**
 * Called once we are stopping (a signal, a closed pipe): output keeps flowing to readers that
 * keep reading, but a reader that stalls is given up on, so clean-up and exit never wait on it.
 */
export function stopWaitingForReaders(): void {
  outlets[1].stopWaiting();
  outlets[2].stopWaiting();
}

/** Whether output meant for stdout was dropped because its reader stalled while we were stopping. */
export function stdoutDropped(): boolean {
  return outlets[1].stalled;
}

/** Resolves once everything queued on stdout and stderr is out (or given up on, see above). */
export async function drainOutput(): Promise<void> {
  await Promise.all([outlets[1].drained(), outlets[2].drained()]);
}

/** A full disk or a closed descriptor is the user's environment, not a bug in sandboxes. */
function writeFailed(fd: 1 | 2, error: unknown): SandboxesError {
  const code = (error as NodeJS.ErrnoException).code;
  const what = fd === 1 ? "standard output" : "standard error";
  return new SandboxesError(fd === 1 ? "stdout_failed" : "stderr_failed", `cannot write to ${what}: ${code ?? (error as Error).message}`, "user", `check where ${what} goes (a full disk, a closed descriptor)`);
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
