/**
 * One exec WebSocket of the Sprites API, opened with Bun's WebSocket (which, unlike the browser
 * one, takes request headers: the token goes in Authorization on the upgrade). Messages and the
 * close that arrive before a handler is set are kept, so nothing sent right after the upgrade is
 * lost while the caller is still wiring itself up.
 */

/** The first byte of every binary frame outside TTY mode. */
export const Stream = { Stdin: 0, Stdout: 1, Stderr: 2, Exit: 3, StdinEof: 4 } as const;
export type Stream = (typeof Stream)[keyof typeof Stream];

export class ExecSocket {
  private messageHandler?: (data: Uint8Array | string) => void;
  private closeHandler?: (code: number) => void;
  private readonly early: Array<Uint8Array | string> = [];
  private closedWith?: number;

  private constructor(private readonly ws: WebSocket) {
    ws.addEventListener("message", (event) => {
      const data = typeof event.data === "string" ? event.data : new Uint8Array(event.data as ArrayBuffer);
      if (this.messageHandler) this.messageHandler(data);
      else this.early.push(data);
    });
    ws.addEventListener("close", (event) => {
      this.closedWith = event.code;
      this.closeHandler?.(event.code);
    });
  }

  /** Resolves once the upgrade succeeded; rejects when it failed or the socket closed first. */
  static open(url: string, token: string): Promise<ExecSocket> {
    return new Promise((resolve, reject) => {
      let ws: WebSocket;
      try {
        ws = new WebSocket(url, { headers: { Authorization: `Bearer ${token}` } } as unknown as string[]);
      } catch (error) {
        reject(error);
        return;
      }
      ws.binaryType = "arraybuffer";
      const socket = new ExecSocket(ws);
      const failed = (why: string) => () => {
        ws.removeEventListener("open", opened);
        reject(Object.assign(new Error(why), { code: "ws_open_failed" }));
      };
      const onError = failed("the exec connection could not be opened");
      const onClose = failed("the exec connection closed before it opened");
      const opened = () => {
        ws.removeEventListener("error", onError);
        ws.removeEventListener("close", onClose);
        resolve(socket);
      };
      ws.addEventListener("open", opened, { once: true });
      ws.addEventListener("error", onError, { once: true });
      ws.addEventListener("close", onClose, { once: true });
    });
  }

  onMessage(handler: (data: Uint8Array | string) => void): void {
    this.messageHandler = handler;
    for (const data of this.early.splice(0)) handler(data);
  }

  onClose(handler: (code: number) => void): void {
    this.closeHandler = handler;
    if (this.closedWith !== undefined) handler(this.closedWith);
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Bytes queued locally and not yet handed to the network. */
  get buffered(): number {
    return this.ws.bufferedAmount;
  }

  /** A frame on one stream: [stream][payload]. */
  sendStream(stream: Stream, payload: Uint8Array = new Uint8Array(0)): void {
    if (!this.open) return;
    const frame = new Uint8Array(payload.length + 1);
    frame[0] = stream;
    frame.set(payload, 1);
    this.ws.send(frame);
  }

  /** Raw bytes (TTY mode: the terminal's input, no stream byte). */
  sendRaw(bytes: Uint8Array): void {
    if (this.open) this.ws.send(bytes);
  }

  /** A JSON control message (resize, signal) as a text frame. */
  sendControl(message: Record<string, unknown>): void {
    if (this.open) this.ws.send(JSON.stringify(message));
  }

  close(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000, "");
  }

  /** Resolves when the socket has closed (at once if it already has). */
  closed(): Promise<number> {
    if (this.closedWith !== undefined) return Promise.resolve(this.closedWith);
    return new Promise((resolve) => this.ws.addEventListener("close", (event) => resolve(event.code), { once: true }));
  }
}
