import type { PtySession } from "../providers/types";

/**
 * Local terminal <-> remote PTY. The local terminal goes into raw mode so every key (Ctrl-C,
 * Ctrl-Z, arrows, escape sequences of full-screen programs) reaches the remote side as bytes;
 * the remote terminal driver turns Ctrl-C into SIGINT for the remote foreground job, so our own
 * process never sees it. Whatever way the session ends, the local terminal is restored.
 */
export interface TerminalSize {
  cols: number;
  rows: number;
}

export interface LocalTerminal {
  /** Keys typed by the user. */
  input: NodeJS.ReadStream;
  /** Where the remote screen is drawn. */
  output: NodeJS.WriteStream;
}

export interface AttachOptions {
  /** False when the provider cannot resize: SIGWINCH is then ignored (the caller said so once). */
  resize: boolean;
  /** Ends the session (our SIGTERM/SIGHUP, Ctrl-C outside raw mode): the remote side is killed. */
  signal?: AbortSignal;
}

export function localTerminal(): LocalTerminal {
  return { input: process.stdin, output: process.stdout };
}

/** Raw mode needs a terminal on stdin; the size comes from whichever output is a terminal. */
export function isInteractive(terminal: LocalTerminal = localTerminal()): boolean {
  return Boolean(terminal.input.isTTY && typeof terminal.input.setRawMode === "function");
}

export function terminalSize(terminal: LocalTerminal = localTerminal()): TerminalSize {
  for (const stream of [terminal.output, process.stderr]) {
    if (stream.isTTY && stream.columns > 0 && stream.rows > 0) return { cols: stream.columns, rows: stream.rows };
  }
  return { cols: 80, rows: 24 };
}

/**
 * Bridges until the remote process ends (or the connection drops, or `signal` aborts) and
 * returns the remote exit code. Restores the local terminal in `finally`, and on process exit
 * too, so even a second SIGTERM that makes main.ts exit at once leaves a sane terminal.
 */
export async function attach(session: PtySession, terminal: LocalTerminal, options: AttachOptions): Promise<number> {
  const { input, output } = terminal;
  const wasRaw = Boolean(input.isRaw);
  let restored = false;
  const restore = () => {
    if (restored) return;
    restored = true;
    try {
      input.setRawMode(wasRaw);
    } catch {
      /* the terminal is gone (hangup): nothing left to restore */
    }
  };
  const forwardInput = (chunk: Buffer | string) => {
    try {
      session.write(typeof chunk === "string" ? chunk : new Uint8Array(chunk));
    } catch {
      /* the remote side is closing; `exited` settles the session */
    }
  };
  const onResize = () => {
    const { cols, rows } = terminalSize(terminal);
    try {
      session.resize(cols, rows);
    } catch {
      /* a resize racing the end of the session is harmless */
    }
  };
  let aborted: () => void = () => {};
  const abortedPromise = new Promise<"aborted">((resolve) => {
    aborted = () => resolve("aborted");
    if (options.signal?.aborted) resolve("aborted");
    options.signal?.addEventListener("abort", aborted, { once: true });
  });

  process.on("exit", restore);
  const shown = (async () => {
    for await (const chunk of session.output) output.write(chunk);
  })().catch(() => {});
  try {
    input.setRawMode(true);
    input.on("data", forwardInput);
    input.resume();
    if (options.resize) {
      process.on("SIGWINCH", onResize);
      onResize();
    }
    const outcome = await Promise.race([session.exited, abortedPromise]);
    if (outcome === "aborted") {
      await session.kill().catch(() => {});
      return 128 + signalNumber(options.signal?.reason);
    }
    // The program's last words are in the output stream still: show them before the terminal is
    // given back (bounded, for a session whose output never ends).
    await Promise.race([shown, Bun.sleep(1000)]);
    return outcome;
  } finally {
    input.off("data", forwardInput);
    input.pause();
    process.off("SIGWINCH", onResize);
    options.signal?.removeEventListener("abort", aborted);
    restore();
    process.off("exit", restore);
    await new Promise<void>((resolve) => output.write("", () => resolve()));
  }
}

function signalNumber(reason: unknown): number {
  if (reason === "SIGHUP") return 1;
  if (reason === "SIGINT") return 2;
  return 15;
}
