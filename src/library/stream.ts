import type { ExecOptions, ExecResult, StreamEvent } from "./types";

/**
 * Output as it happens, then one `exit` event, from `exec` (which runs the command with the live
 * callbacks given). Leaving the loop early stops the command.
 */
export async function* streamEvents(exec: (options: ExecOptions) => Promise<ExecResult>, options: Omit<ExecOptions, "onStdout" | "onStderr">): AsyncGenerator<StreamEvent> {
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  const queue: StreamEvent[] = [];
  let wake: (() => void) | undefined;
  const push = (event: StreamEvent) => {
    queue.push(event);
    wake?.();
  };
  const decoder = { stdout: new TextDecoder(), stderr: new TextDecoder() };
  const chunk = (type: "stdout" | "stderr") => (data: Uint8Array) => push({ type, data, text: decoder[type].decode(data, { stream: true }) });
  let settled = false;
  // Events carry the output; nothing is kept for a result nobody reads.
  const done = exec({ ...options, maxOutputBytes: 0, signal, onStdout: chunk("stdout"), onStderr: chunk("stderr") })
    .then(
      (outcome) => push({ type: "exit", exitCode: outcome.exitCode, timedOut: outcome.timedOut }),
      (error: unknown) => ({ error }),
    )
    .finally(() => (settled = true));
  try {
    while (true) {
      while (queue.length === 0) {
        const failed = await Promise.race([done, new Promise<void>((resolve) => (wake = resolve))]);
        if (failed && queue.length === 0) throw failed.error;
      }
      const event = queue.shift()!;
      yield event;
      if (event.type === "exit") return;
    }
  } finally {
    // The loop was left before the exit event: stop the command rather than leave it running.
    if (!settled) {
      stop.abort("SIGINT");
      await done;
    }
  }
}
