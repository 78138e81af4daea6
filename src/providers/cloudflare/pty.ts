import type { PtySession } from "../types";
import { PtyOutput } from "../shared/pty";

/**
 * The bridge's terminal socket (WS …/pty): text frames {"type":"ready"}, {"type":"exit","code"},
 * {"type":"error","message"} from the Worker; binary frames are terminal output one way and
 * input the other; {"type":"resize","cols","rows"} from us. Output that arrives before onData
 * is called is kept, not lost.
 */
export async function openTerminal(url: string, headers: Record<string, string>, kill: () => Promise<void>): Promise<PtySession> {
  const socket = new WebSocket(url, { headers } as unknown as string[]);
  socket.binaryType = "arraybuffer";
  const output = new PtyOutput();
  const deliver = output.push;
  const encoder = new TextEncoder();
  let code: number | undefined;
  let failure: string | undefined;
  const exited = new Promise<number>((resolve) => {
    socket.addEventListener("message", (event) => {
      if (typeof event.data !== "string") return deliver(new Uint8Array(event.data as ArrayBuffer));
      let message: { type?: string; code?: unknown; signal?: unknown; message?: unknown };
      try {
        message = JSON.parse(event.data);
      } catch {
        return deliver(encoder.encode(event.data));
      }
      if (message.type === "exit") {
        code = exitCode(message.code, message.signal);
        socket.close();
      } else if (message.type === "error") {
        failure = typeof message.message === "string" ? message.message : "the terminal failed";
        deliver(encoder.encode(`\r\nsandboxes: ${failure}\r\n`));
      }
    });
    // Without an exit message (the connection dropped), the program's fate is unknown: 1.
    socket.addEventListener("close", () => resolve(code ?? 1));
  });
  await new Promise<void>((resolve, reject) => {
    const onClose = (event: CloseEvent) => reject(new Error(failure ?? `the terminal connection was closed (${event.code}${event.reason ? ` ${event.reason}` : ""})`));
    socket.addEventListener("open", () => (socket.removeEventListener("close", onClose), resolve()), { once: true });
    socket.addEventListener("error", () => reject(new Error("the terminal connection could not be opened")), { once: true });
    socket.addEventListener("close", onClose, { once: true });
  });
  const send = (data: string | Uint8Array) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(data);
  };
  return {
    write: (data) => send(typeof data === "string" ? encoder.encode(data) : data),
    resize: (cols, rows) => send(JSON.stringify({ type: "resize", cols, rows })),
    onData: output.onData,
    exited,
    kill: async () => {
      if (code === undefined) {
        await kill();
        // The program's exit message follows the kill: give it a moment to arrive.
        await Promise.race([exited, Bun.sleep(2000)]);
      }
      socket.close();
      await Promise.race([exited, Bun.sleep(5000)]);
    },
  };
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGTERM: 15 };

function exitCode(code: unknown, signal: unknown): number {
  if (typeof code === "number" && code !== 0) return code & 255;
  const number = typeof signal === "number" ? signal : typeof signal === "string" ? SIGNALS[signal] : undefined;
  if (number) return 128 + number;
  return typeof code === "number" ? code : 1;
}
