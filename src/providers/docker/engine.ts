import { readFileSync } from "node:fs";
import * as net from "node:net";
import * as tls from "node:tls";
import { ProviderError } from "../../base/errors";
import { describeEndpoint, type Endpoint } from "./endpoint";

const PROVIDER = "docker";
const UNREACHABLE_HINT = "start dockerd (or `systemctl start docker`), or point DOCKER_HOST at a running engine";

/** A failed Engine API call; `status` is the HTTP status (404 for a missing container or image). */
export class EngineError extends ProviderError {
  constructor(
    /** The engine's own message, without our prefix and status. */
    readonly detail: string,
    readonly httpStatus: number,
    hint?: string,
  ) {
    super(PROVIDER, detail, httpStatus, undefined, hint);
  }
}

/** "ECONNREFUSED" rather than the runtime's prose about typos in URLs. */
function unreachable(where: string, error: unknown): ProviderError {
  const code = (error as { code?: string }).code;
  const reason = code && code !== "ERR_SOCKET_CONNECTION_FAILED" ? code : (error as Error).message;
  const hint = code === "EACCES" || code === "EPERM" ? "your user may not open the socket: add it to the docker group (then log in again), or use rootless Docker" : UNREACHABLE_HINT;
  return new ProviderError(PROVIDER, `cannot reach the Docker Engine at ${where} (${reason})`, undefined, undefined, hint, "engine_unreachable");
}

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  json?: unknown;
  body?: Uint8Array | ReadableStream<Uint8Array>;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** A connection the engine handed over to the raw exec stream (after `Upgrade: tcp`). */
export interface Hijacked {
  /** Bytes that arrive from the engine, in order; while a returned promise is pending the socket is paused (backpressure). */
  onData(listener: (chunk: Uint8Array) => unknown): void;
  /** Resolves when the engine closes its side (the process ended and its output is drained). */
  readonly ended: Promise<void>;
  /** Resolves once the socket can take more (backpressure), or at once when it is closed. */
  write(data: Uint8Array | string): Promise<void>;
  /** Half-close: the process sees EOF on stdin, its output keeps flowing. */
  closeWrite(): void;
  destroy(): void;
}

/**
 * A small client for the Docker Engine HTTP API: plain calls through `fetch` (over the unix
 * socket or TCP/TLS), and the hijacked exec stream through a raw socket, since fetch cannot
 * hand over a connection after an HTTP upgrade.
 */
export class Engine {
  private readonly base: string;
  private readonly open = new Set<net.Socket>();
  private tlsOptions?: { ca: string; cert: string; key: string };

  constructor(readonly endpoint: Endpoint) {
    this.base = endpoint.kind === "unix" ? "http://docker" : `${endpoint.tls ? "https" : "http"}://${endpoint.host}:${endpoint.port}`;
  }

  get where(): string {
    return describeEndpoint(this.endpoint);
  }

  private tlsFiles() {
    if (this.endpoint.kind !== "tcp" || !this.endpoint.tls) return undefined;
    if (!this.tlsOptions) {
      const files = this.endpoint.tls;
      try {
        this.tlsOptions = { ca: readFileSync(files.ca, "utf8"), cert: readFileSync(files.cert, "utf8"), key: readFileSync(files.key, "utf8") };
      } catch (error) {
        throw new ProviderError(PROVIDER, `cannot read the TLS client certificates: ${(error as Error).message}`, undefined, undefined, "set DOCKER_CERT_PATH to the directory holding ca.pem, cert.pem and key.pem");
      }
    }
    return this.tlsOptions;
  }

  private url(path: string, query?: RequestOptions["query"]): string {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query ?? {})) if (value !== undefined) params.set(key, String(value));
    const search = params.toString();
    return `${this.base}${path}${search ? `?${search}` : ""}`;
  }

  /** One API call; non-2xx statuses become EngineError with the engine's own message. */
  async request(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { ...options.headers };
    let body: BodyInit | undefined;
    if (options.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(options.json);
    } else if (options.body) {
      body = options.body as unknown as BodyInit;
    }
    let response: Response;
    try {
      response = await fetch(this.url(path, options.query), {
        method,
        headers,
        body,
        signal: options.signal,
        ...(this.endpoint.kind === "unix" ? { unix: this.endpoint.socketPath } : {}),
        ...(this.tlsFiles() ? { tls: this.tlsFiles() } : {}),
      } as RequestInit);
    } catch (error) {
      if ((error as Error).name === "AbortError") throw error;
      throw unreachable(this.where, error);
    }
    if (response.ok) return response;
    const text = await response.text().catch(() => "");
    let message = text.trim();
    try {
      message = (JSON.parse(text) as { message?: string }).message ?? message;
    } catch {
      // Not JSON: keep the text.
    }
    throw new EngineError(message || response.statusText, response.status);
  }

  async json<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const response = await this.request(method, path, options);
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }

  /** The engine's version string, or throws when it does not answer. */
  async version(): Promise<{ Version: string; ApiVersion: string }> {
    return this.json("GET", "/version");
  }

  /** POST `path` with `Upgrade: tcp` and return the raw connection once the engine switches to it (exec start, container attach). */
  hijack(path: string, json?: unknown): Promise<Hijacked> {
    const payload = json === undefined ? "" : JSON.stringify(json);
    const endpoint = this.endpoint;
    const socket: net.Socket =
      endpoint.kind === "unix"
        ? net.createConnection({ path: endpoint.socketPath })
        : endpoint.tls
          ? tls.connect({ host: endpoint.host, port: endpoint.port, ...this.tlsFiles(), ...(net.isIP(endpoint.host) ? {} : { servername: endpoint.host }) })
          : net.createConnection({ host: endpoint.host, port: endpoint.port });
    this.open.add(socket);
    const request =
      `POST ${path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n` +
      `Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n${payload}`;
    socket.write(request);
    return new Promise<Hijacked>((resolve, reject) => {
      let head = Buffer.alloc(0);
      let switched = false;
      const listeners: Array<(chunk: Uint8Array) => unknown> = [];
      const pending: Uint8Array[] = [];
      let endResolve!: () => void;
      const ended = new Promise<void>((r) => (endResolve = r));
      const deliver = (chunk: Uint8Array) => {
        if (listeners.length === 0) return void pending.push(chunk);
        const taken = listeners.map((listener) => listener(chunk)).filter((result) => result instanceof Promise);
        if (taken.length === 0) return;
        socket.pause();
        void Promise.allSettled(taken).then(() => socket.resume());
      };
      socket.on("data", (chunk: Buffer) => {
        if (switched) return deliver(chunk);
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf("\r\n\r\n");
        if (end < 0) return;
        const statusLine = head.subarray(0, head.indexOf("\r\n")).toString("latin1");
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0);
        const rest = head.subarray(end + 4);
        if (status !== 101 && status !== 200) {
          // An error before the switch: the body is the engine's JSON message.
          socket.destroy();
          this.open.delete(socket);
          let message = rest.toString("utf8").trim();
          try {
            message = (JSON.parse(message) as { message?: string }).message ?? message;
          } catch {
            // Chunked or plain text: keep it.
          }
          return reject(new EngineError(message || statusLine, status));
        }
        switched = true;
        resolve({
          onData(listener) {
            listeners.push(listener);
            for (const chunk of pending.splice(0)) listener(chunk);
          },
          ended,
          write: (data) =>
            new Promise<void>((resolveWrite) => {
              if (!socket.writable || socket.write(data)) return resolveWrite();
              const done = () => {
                socket.off("drain", done);
                socket.off("close", done);
                resolveWrite();
              };
              socket.on("drain", done);
              socket.on("close", done);
            }),
          closeWrite: () => void (socket.writable && socket.end()),
          destroy: () => {
            socket.destroy();
            this.open.delete(socket);
          },
        });
        if (rest.length) deliver(rest);
      });
      const finish = () => {
        this.open.delete(socket);
        if (!switched) reject(new ProviderError(PROVIDER, `the Docker Engine at ${this.where} closed the exec stream before it started`, undefined, undefined, UNREACHABLE_HINT));
        endResolve();
      };
      socket.on("end", finish);
      socket.on("close", finish);
      socket.on("error", (error) => {
        if (!switched) {
          this.open.delete(socket);
          reject(unreachable(this.where, error));
        }
        endResolve();
      });
    });
  }

  /** Drops every hijacked connection still open, so the process can exit. */
  close(): void {
    for (const socket of this.open) socket.destroy();
    this.open.clear();
  }
}
