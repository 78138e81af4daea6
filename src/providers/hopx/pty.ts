import { shellQuote as quote } from "../../base/quote";
import type { PtySession, PtySpec } from "../types";
import type { AgentAccess } from "./api";
import { PtyOutput, StartGate, startLine } from "../shared/pty";

/**
 * A terminal running `spec.argv` over the agent's WS /terminal (JSON text messages: input and
 * resize from us; output and exit from the agent). The agent starts its own shell; we set the
 * size, type `cd DIR && exec env K=V… ARGV` into it (see startLine) and hide what comes before.
 */
export function commandLine(spec: PtySpec): string {
  const env = Object.entries(spec.env).map(([key, value]) => quote(`${key}=${value}`));
  const program = ["exec", ...(env.length ? ["env", ...env] : []), ...spec.argv.map(quote)].join(" ");
  const cd = spec.cwd ? `cd -- ${quote(spec.cwd)} && ` : "";
  return startLine(`${cd}${program}`);
}

export async function openTerminal(access: AgentAccess, spec: PtySpec): Promise<PtySession> {
  const url = new URL("/terminal", access.host);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(url.toString(), { headers: { Authorization: `Bearer ${access.token}` } } as unknown as string[]);
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener("open", () => resolve(), { once: true });
    socket.addEventListener("error", () => reject(new Error("the terminal connection failed")), { once: true });
    socket.addEventListener("close", (event) => reject(new Error(`the terminal connection was closed (${event.code}${event.reason ? ` ${event.reason}` : ""})`)), { once: true });
  });

  const output = new PtyOutput();
  const gate = new StartGate(output);
  const encoder = new TextEncoder();

  const exited = new Promise<number>((resolve) => {
    let code = 255;
    socket.addEventListener("message", (event) => {
      let message: { type?: string; data?: unknown; code?: unknown };
      try {
        message = JSON.parse(typeof event.data === "string" ? event.data : new TextDecoder().decode(event.data as ArrayBuffer));
      } catch {
        return;
      }
      if (message.type === "output" && typeof message.data === "string") gate.push(encoder.encode(message.data));
      else if (message.type === "exit") {
        code = typeof message.code === "number" ? message.code & 255 : 255;
        socket.close();
      }
    });
    socket.addEventListener("close", () => {
      gate.end();
      resolve(code);
    });
  });

  const send = (message: unknown) => {
    if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  };
  const decoder = new TextDecoder();
  send({ type: "resize", cols: spec.cols, rows: spec.rows });
  send({ type: "input", data: commandLine(spec) });
  return {
    write: (data) => {
      const text = typeof data === "string" ? data : decoder.decode(data, { stream: true });
      if (text) send({ type: "input", data: text });
    },
    resize: (cols, rows) => send({ type: "resize", cols, rows }),
    onData: output.onData,
    exited,
    kill: async () => {
      socket.close();
      await Promise.race([exited, Bun.sleep(2000)]);
    },
  };
}
