/**
 * A fake Cloudflare sandbox Worker on 127.0.0.1: the HTTP API of `@cloudflare/sandbox/bridge`
 * 0.12.10 under /v1 (provider-wire.md §6), in one of two forms that share one container
 * backend (container.ts, commands run for real):
 *   - "contract": our own hand-written routes, call by call as the bridge answers them:
 *     POST /v1/sandbox -> {id} (26 chars of base32, nothing stored, no container yet);
 *     POST …/exec {argv, timeout_ms?, cwd?} -> text/event-stream of `stdout`/`stderr` (base64 of
 *     the text), then `exit` {exit_code} or `error` {error, code}; argv is shell-quoted, joined and
 *     run by bash; cwd must resolve inside /workspace (else 403);
 *     PUT/GET …/file/<path> under /workspace only (403), 32 MiB at most (413), 404 with
 *     `workspace_read_not_found`; GET …/running; WS …/pty; DELETE (204, also for unknown ids);
 *     Bearer auth when an API key is set (401 {error, code:"unauthorized"}), ids checked (400).
 *   - "bridge": the REAL published router, run in Bun behind fake Durable Objects (bridge.ts).
 * Both serve the terminal socket the container serves: {"type":"ready"}, binary output,
 * {"type":"exit","code"}; binary input and {"type":"resize"} from the client. Like the real
 * one, a terminal outlives a client that goes away (for 30 s here), and a command outlives an
 * exec stream that the client dropped.
 */
import type { Server, ServerWebSocket } from "bun";
import { type FakeContainer, Containers, type TerminalHandle } from "./container";
import { FakeDurableObjects, loadBridge, type UpgradeData } from "./bridge";
import { type Fault, faultAfter, faultBefore, Faults } from "../faults";

export type FakeMode = "contract" | "bridge";

export type { Fault } from "../faults";

export interface FakeCloudflareOptions {
  mode?: FakeMode;
  /** The Worker's SANDBOX_API_KEY; without it, like the real bridge, any request is accepted. */
  apiKey?: string | null;
}

export interface FakeCloudflare {
  url: string;
  mode: FakeMode;
  /** Sandbox ids that hold a container (or, for the bridge, a warm-pool assignment) right now. */
  live(): string[];
  /** Ids handed out by POST /v1/sandbox. */
  issued: string[];
  /** Every request as "METHOD /path", in order. */
  requests: string[];
  /** Bodies of every exec. */
  execs: Array<{ argv: string[]; cwd?: string; timeout_ms?: number }>;
  containers: Containers;
  fault(fault: Fault): void;
  clearFaults(): void;
  /** Every request line, in order, with the time it arrived (ms since the epoch). */
  arrivals: ReadonlyArray<{ line: string; at: number }>;
  /** Environment that points the sandboxes binary at this fake. */
  env(): Record<string, string>;
  close(): Promise<void>;
}

const DEFAULT_KEY = "fake-cloudflare-key";
const MAX_WRITE_BYTES = 32 * 1024 * 1024;

export async function startFakeCloudflare(options: FakeCloudflareOptions = {}): Promise<FakeCloudflare> {
  const mode = options.mode ?? "contract";
  const apiKey = options.apiKey === null ? undefined : (options.apiKey ?? DEFAULT_KEY);
  const containers = new Containers();
  const objects = new FakeDurableObjects(containers);
  const workerFetch = mode === "bridge" ? await loadBridge() : undefined;
  const issued: string[] = [];
  const requests: string[] = [];
  const execs: FakeCloudflare["execs"] = [];
  const faults = new Faults();
  const starting = new Map<string, Promise<FakeContainer>>();

  /** The contract fake's container for a sandbox id, started on first use like the real one. */
  function containerFor(id: string): Promise<FakeContainer> {
    const live = containers.live.get(id);
    if (live) return Promise.resolve(live);
    let start = starting.get(id);
    if (!start) {
      start = containers.start(id).finally(() => starting.delete(id));
      starting.set(id, start);
    }
    return start;
  }

  async function contract(req: Request, url: URL, server: Server<UpgradeData>): Promise<Response | undefined> {
    const path = url.pathname;
    if (req.method === "GET" && path === "/health") return Response.json({ ok: true });
    if (!path.startsWith("/v1/sandbox")) return error("Not Found", "not_found", 404);
    const id = path.split("/")[3];
    if (id && !/^[a-z2-7]{1,128}$/.test(id)) return error("Invalid sandbox ID format", "invalid_request", 400);
    if (apiKey && bearer(req) !== apiKey) return error("Unauthorized", "unauthorized", 401);
    if (req.method === "POST" && path === "/v1/sandbox") {
      const fresh = base32(crypto.getRandomValues(new Uint8Array(16)));
      issued.push(fresh);
      return Response.json({ id: fresh });
    }
    const match = /^\/v1\/sandbox\/([a-z2-7]+)(\/.*)?$/.exec(path);
    if (!match) return error("Not Found", "not_found", 404);
    const rest = match[2] ?? "";
    if (rest === "" && req.method === "DELETE") {
      containers.destroy(id!);
      return new Response(null, { status: 204 });
    }
    if (rest === "/exec" && req.method === "POST") return exec(req, id!);
    if (rest.startsWith("/file/")) return file(req, id!, decodeURIComponent(rest.slice("/file/".length)));
    if (rest === "/running" && req.method === "GET") {
      await containerFor(id!);
      return Response.json({ running: true });
    }
    if (rest === "/pty" && req.method === "GET") {
      if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") return error("WebSocket upgrade required", "invalid_request", 400);
      const cols = Number(url.searchParams.get("cols") ?? 80);
      const rows = Number(url.searchParams.get("rows") ?? 24);
      if (Number.isNaN(cols) || Number.isNaN(rows)) return error("cols and rows must be valid numbers", "invalid_request", 400);
      const data: UpgradeData = { container: await containerFor(id!), cols, rows, shell: url.searchParams.get("shell") || "/bin/bash" };
      return server.upgrade(req, { data }) ? undefined : error("upgrade failed", "invalid_request", 400);
    }
    return error("Not Found", "not_found", 404);
  }

  async function exec(req: Request, id: string): Promise<Response> {
    let body: { argv?: unknown; timeout_ms?: unknown; cwd?: unknown };
    try {
      body = (await req.json()) as typeof body;
    } catch {
      return error("Invalid JSON body", "invalid_request", 400);
    }
    if (!Array.isArray(body.argv) || body.argv.length === 0) return error("argv must be a non-empty array", "invalid_request", 400);
    let cwd: string | undefined;
    if (typeof body.cwd === "string") {
      cwd = workspacePath(body.cwd) ?? undefined;
      if (!cwd) return error("cwd must resolve to a location within /workspace", "invalid_request", 403);
    }
    const timeout = typeof body.timeout_ms === "number" ? body.timeout_ms : undefined;
    execs.push({ argv: body.argv.map(String), ...(cwd ? { cwd } : {}), ...(timeout !== undefined ? { timeout_ms: timeout } : {}) });
    const command = body.argv.map((word) => shellQuote(String(word))).join(" ");
    const container = await containerFor(id);
    const encoder = new TextEncoder();
    let open = true;
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const stream = new ReadableStream<Uint8Array>({
      start: (c) => void (controller = c),
      cancel: () => void (open = false),
    });
    const send = (event: string, data: string) => {
      if (!open) return;
      try {
        controller.enqueue(encoder.encode(`event: ${event}\ndata: ${data}\n\n`));
      } catch {
        open = false;
      }
    };
    // The command runs on whether or not anyone still reads its stream.
    void containers
      .exec(container, command, { cwd, timeoutMs: timeout }, (which, text) => send(which, Buffer.from(text, "utf8").toString("base64")))
      .then((result) => {
        if (result.timedOut) send("error", JSON.stringify({ error: `Command timed out after ${timeout}ms`, code: "exec_error" }));
        else send("exit", JSON.stringify({ exit_code: result.exitCode }));
      })
      .catch((failure: Error) => send("error", JSON.stringify({ error: `exec failed: ${failure.message}`, code: "exec_transport_error" })))
      .finally(() => {
        if (open) controller.close();
        open = false;
      });
    return new Response(stream, { headers: { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" } });
  }

  async function file(req: Request, id: string, relative: string): Promise<Response> {
    if (!relative) return error("file path must not be empty", "invalid_request", 400);
    const path = workspacePath(`/${relative}`);
    if (!path) return error("path must resolve to a location within /workspace", "invalid_request", 403);
    const container = await containerFor(id);
    if (req.method === "GET") {
      const bytes = await containers.readFile(container, path);
      if (!bytes) return error(`File not found: ${path}`, "workspace_read_not_found", 404);
      return new Response(bytes as Uint8Array<ArrayBuffer>, { headers: { "Content-Type": "application/octet-stream" } });
    }
    if (req.method === "PUT") {
      const bytes = new Uint8Array(await req.arrayBuffer());
      if (bytes.length > MAX_WRITE_BYTES) return error(`payload too large: ${bytes.length} bytes exceeds the ${MAX_WRITE_BYTES}-byte limit`, "payload_too_large", 413);
      try {
        await containers.writeFile(container, path, bytes);
      } catch (failure) {
        return error(`write failed: ${(failure as Error).message}`, "workspace_archive_write_error", 502);
      }
      return Response.json({ ok: true });
    }
    return error("Not Found", "not_found", 404);
  }

  const server: Server<UpgradeData> = Bun.serve<UpgradeData>({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    error: () => new Response(null, { status: 500 }),
    async fetch(req, server) {
      const url = new URL(req.url);
      const line = `${req.method} ${url.pathname}`;
      requests.push(line);
      const fault = faults.take(line);
      const refused = await faultBefore(fault, req, (status) => error(`injected ${status}`, "injected", status));
      if (refused) return refused;
      let response: Response | undefined;
      if (workerFetch) {
        const upgraded = { done: false };
        response = await workerFetch(req, objects.env(req, server, apiKey, upgraded), { waitUntil: () => {}, passThroughOnException: () => {} });
        if (upgraded.done) return undefined as unknown as Response;
        if (req.method === "POST" && url.pathname === "/v1/sandbox" && response.ok) {
          const answer = (await response.clone().json()) as { id: string };
          issued.push(answer.id);
        }
      } else {
        response = await contract(req, url, server);
        if (response === undefined) return undefined as unknown as Response;
      }
      return faultAfter(fault, response);
    },
    websocket: {
      open(ws) {
        const socket = ws as ServerWebSocket<UpgradeData & { term?: TerminalHandle }>;
        const { container, cols, rows, shell } = socket.data;
        socket.send(JSON.stringify({ type: "ready" }));
        const term = containers.terminal(container, { cols, rows, shell, onData: (data) => void socket.sendBinary(data) });
        socket.data.term = term;
        void term.exited.then((code) => {
          socket.send(JSON.stringify({ type: "exit", code }));
          socket.close();
        });
      },
      message(ws, message) {
        const term = (ws.data as UpgradeData & { term?: TerminalHandle }).term;
        if (!term) return;
        if (typeof message !== "string") return void term.write(new Uint8Array(message));
        try {
          const control = JSON.parse(message) as { type?: string; cols?: number; rows?: number };
          if (control.type === "resize" && control.cols && control.rows) term.resize(control.cols, control.rows);
        } catch {}
      },
      close(ws) {
        // The real container keeps a terminal whose client went away for its disconnect timeout.
        const term = (ws.data as UpgradeData & { term?: TerminalHandle }).term;
        if (term) setTimeout(() => term.kill(), 30_000).unref?.();
      },
    },
  });

  const url = `http://127.0.0.1:${server.port}`;
  return {
    url,
    mode,
    live: () => (mode === "bridge" ? [...objects.assigned.keys()] : [...containers.live.keys()]),
    arrivals: faults.seen,
    issued,
    requests,
    execs,
    containers,
    fault(fault) {
      faults.add(fault);
    },
    clearFaults() {
      faults.clear();
    },
    env: () => ({ CLOUDFLARE_SANDBOX_URL: url, ...(apiKey ? { CLOUDFLARE_SANDBOX_API_KEY: apiKey } : {}) }),
    async close() {
      server.stop(true);
      containers.close();
    },
  };
}

function bearer(req: Request): string {
  const header = req.headers.get("authorization") ?? "";
  return header.toLowerCase().startsWith("bearer ") ? header.slice(7) : "";
}

function error(message: string, code: string, status: number): Response {
  return Response.json({ error: message, code }, { status });
}

/** Like the bridge: safe words bare, the rest in ANSI-C $'…' quotes. */
function shellQuote(word: string): string {
  if (/^[A-Za-z0-9@%+=:,./-]+$/.test(word)) return word;
  return `$'${word.replace(/\\/g, "\\\\").replace(/'/g, "\\'").replace(/\n/g, "\\n").replace(/\r/g, "\\r").replace(/\t/g, "\\t")}'`;
}

/** The path with . and .. resolved, when it lies inside /workspace; else null. */
function workspacePath(path: string): string | null {
  const absolute = path.startsWith("/") ? path : `/workspace/${path}`;
  const parts: string[] = [];
  for (const segment of absolute.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") parts.pop();
    else parts.push(segment);
  }
  const resolved = `/${parts.join("/")}`;
  return resolved === "/workspace" || resolved.startsWith("/workspace/") ? resolved : null;
}

function base32(bytes: Uint8Array): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz234567";
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}


if (import.meta.main) {
  const fake = await startFakeCloudflare({ mode: (process.env.FAKE_CLOUDFLARE_MODE as FakeMode) || "contract" });
  process.stdout.write(`${JSON.stringify(fake.env())}\n`);
  const stop = () => void fake.close().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
