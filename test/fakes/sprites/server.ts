/**
 * A fake of Sprites by Fly.io on 127.0.0.1 that speaks its real wire protocol (see
 * ../shared/reference/provider-wire.md §5), so the official `@fly/sprites` client runs against it
 * unchanged with `new SpritesClient(token, { baseURL })`:
 *   - REST/JSON under /v1/sprites (create, get, list with continuation tokens, delete), with
 *     `Authorization: Bearer <token>` on every request;
 *   - exec over a WebSocket at /v1/sprites/{name}/exec: argv in repeated `cmd` parameters, `env`
 *     as KEY=VALUE, `dir`, `stdin`; binary frames [stream][payload] (0 stdin, 1 stdout, 2 stderr,
 *     3 exit with a one-byte code, 4 stdin EOF). With `tty=true&rows&cols` the frames are raw
 *     terminal bytes both ways, text frames carry {"type":"resize"} and {"type":"signal"}, and,
 *     like the real server, no exit frame is sent: the socket closes (1000 for a zero exit, else
 *     1011, which the SDKs read as 1);
 *   - files: PUT /fs/write and GET /fs/read with raw bodies, errors as {error, code, path}.
 * Each sprite is a temp directory whose tmp/ and home/ are mounted over /tmp and /home/sprite in
 * a mount namespace of its own, held by one process; every command enters that namespace and runs
 * for real as a local process. Destroying a sprite kills every process in its namespace.
 */
import { mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, statSync, chmodSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, posix } from "node:path";
import type { ServerWebSocket, Subprocess } from "bun";
import { type Fault, faultAfter, faultBefore, Faults } from "../faults";

export interface FakeSprite {
  id: string;
  name: string;
  environment: Record<string, string>;
  labels: string[];
  config: Record<string, unknown>;
  createdAt: Date;
  dir: string;
  /** The process holding the sprite's mount namespace, and that namespace's identity. */
  holder: Subprocess;
  namespace: string;
  /** Commands running through exec sockets right now. */
  execs: Set<Subprocess>;
  /** Cold: asleep with nothing running (Sprites puts idle sprites to sleep); the next exec wakes it. */
  cold: boolean;
}

/**
 * A fault applies to requests whose "METHOD /path" is `match` (or starts with it, when `match`
 * ends with "*"), `times` times: an HTTP status with Sprites' error body, a dropped connection
 * (before or after the request did its work), or a slow answer.
 */
export type { Fault } from "../faults";

export interface FakeSpritesOptions {
  /** Sprites per page of GET /v1/sprites at most, whatever max_results asks. */
  pageSize?: number;
  /** The only token accepted (default: the one env() gives); another one gets a 401. */
  token?: string;
}

export interface FakeSprites {
  url: string;
  /** Every sprite alive right now, by name. */
  sprites: Map<string, FakeSprite>;
  /** Every request as "METHOD /path", in order (exec upgrades included). */
  requests: string[];
  /** Bodies of every POST /v1/sprites that created a sprite. */
  creates: Array<Record<string, any>>;
  /** Query strings of every exec socket opened, in order. */
  execs: URLSearchParams[];
  fault(fault: Fault): void;
  clearFaults(): void;
  /** Puts a sprite to sleep, as Sprites does with an idle one: it lists as cold until an exec wakes it. */
  sleep(name: string): void;
  /** Every request line, in order, with the time it arrived (ms since the epoch). */
  arrivals: ReadonlyArray<{ line: string; at: number }>;
  /** Environment that points the sandboxes binary at this fake. */
  env(): Record<string, string>;
  close(): Promise<void>;
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGUSR1: 10, SIGUSR2: 12, SIGPIPE: 13, SIGTERM: 15 };
const NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Runs in the sprite's new mount namespace: its directories over /home/sprite and /tmp, then waits. */
const HOLDER_SCRIPT = [
  'mount -t tmpfs fake-sprites-home /home && mkdir -p /home/sprite && mount --bind "$1/home" /home/sprite && mount --bind "$1/tmp" /tmp || exit 1',
  "echo ready",
  "exec sleep 2147483647",
].join("\n");

/** Runs each command inside the namespace: in its directory, as the rest of argv. */
const ENTER_SCRIPT = 'cd "$1" 2>/dev/null || { echo "fake-sprites: chdir $1: no such file or directory" >&2; exit 1; }; shift; exec "$@"';

const json = (body: unknown, status = 200) => Response.json(body, { status });
const apiError = (status: number, message: string, extra: Record<string, unknown> = {}) => json({ error: message, ...extra }, status);

interface SocketData {
  sprite: FakeSprite;
  query: URLSearchParams;
  child?: Subprocess;
  terminal?: { write(data: Uint8Array | string): void; resize(cols: number, rows: number): void; close(): void };
  done?: boolean;
}

export async function startFakeSprites(options: FakeSpritesOptions = {}): Promise<FakeSprites> {
  const sprites = new Map<string, FakeSprite>();
  const requests: string[] = [];
  const creates: Array<Record<string, any>> = [];
  const execs: URLSearchParams[] = [];
  const faults = new Faults();
  const root = mkdtempSync(join(tmpdir(), "fake-sprites-"));
  const asRoot = process.getuid?.() === 0;

  /** Every process of this machine inside the sprite's mount namespace. */
  function processesOf(sprite: FakeSprite): number[] {
    const pids: number[] = [];
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        if (readlinkSync(`/proc/${entry}/ns/mnt`) === sprite.namespace) pids.push(Number(entry));
      } catch {}
    }
    return pids;
  }

  function destroy(sprite: FakeSprite): void {
    sprites.delete(sprite.name);
    for (const pid of processesOf(sprite)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
    try {
      sprite.holder.kill("SIGKILL");
    } catch {}
    rmSync(sprite.dir, { recursive: true, force: true });
  }

  const info = (sprite: FakeSprite) => ({
    id: sprite.id,
    name: sprite.name,
    organization: "fake-org",
    status: sprite.execs.size > 0 ? "running" : sprite.cold ? "cold" : "warm",
    config: { ram_mb: 1024, cpus: 1, region: "fake", storage_gb: 10, ...sprite.config },
    environment: sprite.environment,
    labels: sprite.labels,
    url: `https://${sprite.name}-fake.sprites.app`,
    url_settings: { auth: "sprite" },
    created_at: sprite.createdAt.toISOString(),
    updated_at: sprite.createdAt.toISOString(),
  });

  /** A sprite path -> where it lives on this machine; only /tmp and /home/sprite exist in the fake. */
  function hostPath(sprite: FakeSprite, path: string, workingDir: string): string | undefined {
    const absolute = posix.resolve(workingDir || "/", path);
    if (absolute === "/tmp" || absolute.startsWith("/tmp/")) return join(sprite.dir, "tmp", absolute.slice(4));
    if (absolute === "/home/sprite" || absolute.startsWith("/home/sprite/")) return join(sprite.dir, "home", absolute.slice(12));
    return undefined;
  }

  async function createSprite(body: Record<string, any>): Promise<Response> {
    const name = String(body.name ?? "");
    if (!NAME.test(name)) return apiError(400, `invalid sprite name "${name}": use lowercase letters, digits and dashes`, { code: "invalid_name" });
    if (sprites.has(name)) return apiError(409, `sprite "${name}" already exists`, { code: "already_exists" });
    const dir = mkdtempSync(join(root, "sprite-"));
    mkdirSync(join(dir, "tmp"), { mode: 0o1777 });
    chmodSync(join(dir, "tmp"), 0o1777);
    mkdirSync(join(dir, "home"));
    const holder = Bun.spawn(["unshare", "--mount", ...(asRoot ? [] : ["--map-root-user"]), "/bin/sh", "-c", HOLDER_SCRIPT, "fake-sprites", dir], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const reader = (holder.stdout as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    reader.releaseLock();
    if (first.done || !new TextDecoder().decode(first.value).startsWith("ready")) {
      const why = await new Response(holder.stderr as ReadableStream<Uint8Array>).text();
      rmSync(dir, { recursive: true, force: true });
      return apiError(500, `fake could not make the sprite's namespace: ${why.trim()}`);
    }
    const sprite: FakeSprite = {
      id: `sprite-${crypto.randomUUID()}`,
      name,
      environment: { ...(body.environment ?? {}) },
      labels: Array.isArray(body.labels) ? body.labels.map(String) : [],
      config: { ...(body.config ?? {}) },
      createdAt: new Date(),
      dir,
      holder,
      namespace: readlinkSync(`/proc/${holder.pid}/ns/mnt`),
      execs: new Set(),
      cold: false,
    };
    sprites.set(name, sprite);
    creates.push(body);
    return json(info(sprite), 201);
  }

  async function api(req: Request, url: URL, server: import("bun").Server<SocketData>): Promise<Response | undefined> {
    const path = url.pathname;
    if (req.method === "POST" && path === "/v1/sprites") return createSprite((await req.json()) as Record<string, any>);
    if (req.method === "GET" && path === "/v1/sprites") {
      const prefix = url.searchParams.get("prefix") ?? "";
      const all = [...sprites.values()].filter((s) => s.name.startsWith(prefix)).sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || a.name.localeCompare(b.name));
      const limit = Math.min(Number(url.searchParams.get("max_results") || 50), options.pageSize ?? 50);
      const offset = Number(url.searchParams.get("continuation_token") || 0);
      const page = all.slice(offset, offset + limit);
      const more = offset + limit < all.length;
      return json({ sprites: page.map(info), has_more: more, next_continuation_token: more ? String(offset + limit) : null, name: "fake-org", running: 0, warm: all.length, cold: 0 });
    }
    const match = /^\/v1\/sprites\/([^/]+)(\/.*)?$/.exec(path);
    if (!match) return apiError(404, `no route ${req.method} ${path}`);
    const name = decodeURIComponent(match[1]!);
    const rest = match[2] ?? "";
    const sprite = sprites.get(name);
    if (!sprite) return apiError(404, `sprite "${name}" not found`);
    if (rest === "" && req.method === "GET") return json(info(sprite));
    if (rest === "" && req.method === "DELETE") {
      destroy(sprite);
      return new Response(null, { status: 204 });
    }
    if (rest === "/exec" && req.method === "GET") {
      if (server.upgrade(req, { data: { sprite, query: url.searchParams } })) return undefined;
      return apiError(400, "exec needs a WebSocket upgrade");
    }
    if (rest.startsWith("/fs/")) return files(req, url, sprite, rest.slice(4));
    return apiError(404, `no route ${req.method} ${path}`);
  }

  async function files(req: Request, url: URL, sprite: FakeSprite, op: string): Promise<Response> {
    const path = url.searchParams.get("path") ?? "";
    const target = hostPath(sprite, path, url.searchParams.get("workingDir") ?? "/");
    if (!target) return apiError(403, `permission denied: ${path} is outside /tmp and /home/sprite in this fake`, { code: "EACCES", path });
    if (op === "read" && req.method === "GET") {
      try {
        if (statSync(target).isDirectory()) return apiError(400, `${path} is a directory`, { code: "EISDIR", path });
        return new Response(await readFile(target), { headers: { "content-type": "application/octet-stream" } });
      } catch {
        return apiError(404, `no such file or directory: ${path}`, { code: "ENOENT", path });
      }
    }
    if (op === "write" && req.method === "PUT") {
      const bytes = new Uint8Array(await req.arrayBuffer());
      if (url.searchParams.get("mkdirParents") === "true") mkdirSync(dirname(target), { recursive: true });
      try {
        await writeFile(target, bytes);
      } catch {
        return apiError(404, `no such directory: ${posix.dirname(path)}`, { code: "ENOENT", path });
      }
      const mode = url.searchParams.get("mode");
      if (mode) chmodSync(target, Number.parseInt(mode, 8));
      return json({ path: posix.resolve(url.searchParams.get("workingDir") || "/", path), size: bytes.length });
    }
    if (op === "delete" && req.method === "DELETE") {
      rmSync(target, { recursive: url.searchParams.get("recursive") === "true", force: true });
      return json({ deleted: [path] });
    }
    return apiError(405, "method not allowed");
  }

  /** Starts the socket's command inside the sprite and wires its output to frames. */
  function startExec(ws: ServerWebSocket<SocketData>): void {
    const { sprite, query } = ws.data;
    // Like Sprites: an exec wakes a sleeping sprite and runs on it.
    sprite.cold = false;
    execs.push(query);
    const argv = query.getAll("cmd");
    if (argv.length === 0) argv.push("bash", "-l");
    const cwd = query.get("dir") || "/home/sprite";
    const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: "/home/sprite", USER: "sprite", LOGNAME: "sprite", ...sprite.environment };
    for (const pair of query.getAll("env")) {
      const at = pair.indexOf("=");
      if (at > 0) env[pair.slice(0, at)] = pair.slice(at + 1);
    }
    const enter = ["nsenter", "--target", String(sprite.holder.pid), "--mount", ...(asRoot ? [] : ["--user", "--preserve-credentials"])];
    const full = [...enter, "/bin/sh", "-c", ENTER_SCRIPT, "fake-sprites", cwd, ...argv];
    const tty = query.get("tty") === "true";
    let child: Subprocess;
    if (tty) {
      child = Bun.spawn(full, {
        env,
        terminal: { cols: Number(query.get("cols") || 80), rows: Number(query.get("rows") || 24), data: (_t: unknown, data: Uint8Array) => void ws.sendBinary(data) },
      } as Parameters<typeof Bun.spawn>[1]);
      ws.data.terminal = (child as unknown as { terminal: SocketData["terminal"] }).terminal;
    } else {
      child = Bun.spawn(full, { env, stdin: query.get("stdin") === "true" ? "pipe" : "ignore", stdout: "pipe", stderr: "pipe" });
    }
    ws.data.child = child;
    sprite.execs.add(child);
    const frame = (stream: number, payload: Uint8Array) => {
      const out = new Uint8Array(payload.length + 1);
      out[0] = stream;
      out.set(payload, 1);
      ws.sendBinary(out);
    };
    const pump = async (readable: ReadableStream<Uint8Array>, stream: number) => {
      for await (const chunk of readable) frame(stream, chunk);
    };
    const pumps = tty ? Promise.resolve() : Promise.all([pump(child.stdout as ReadableStream<Uint8Array>, 1), pump(child.stderr as ReadableStream<Uint8Array>, 2)]);
    void (async () => {
      const code = await child.exited;
      // Like the real server, the exit comes when the process exits, even if orphans hold its pipes.
      await Promise.race([pumps, Bun.sleep(300)]);
      sprite.execs.delete(child);
      ws.data.done = true;
      const signal = child.signalCode ? SIGNALS[child.signalCode] ?? 9 : undefined;
      if (tty) {
        await Bun.sleep(50);
        ws.data.terminal?.close();
        ws.close(code === 0 ? 1000 : 1011, "");
        return;
      }
      frame(3, new Uint8Array([(signal !== undefined ? 128 + signal : code) & 255]));
      // The real server holds the socket a while after the exit frame; the SDKs close it first.
      setTimeout(() => ws.close(1000, ""), 5000).unref?.();
    })();
  }

  function onMessage(ws: ServerWebSocket<SocketData>, message: string | Buffer): void {
    const { child, terminal } = ws.data;
    if (!child) return;
    if (typeof message === "string") {
      let control: { type?: string; cols?: number; rows?: number; signal?: string } = {};
      try {
        control = JSON.parse(message);
      } catch {}
      if (control.type === "resize" && terminal && control.cols && control.rows) terminal.resize(control.cols, control.rows);
      if (control.type === "signal" && control.signal && SIGNALS[control.signal] !== undefined) {
        try {
          child.kill(control.signal as NodeJS.Signals);
        } catch {}
      }
      return;
    }
    const bytes = new Uint8Array(message);
    if (terminal) return void terminal.write(bytes);
    const sink = child.stdin as import("bun").FileSink | undefined;
    if (!sink || typeof sink === "number" || bytes.length === 0) return;
    try {
      if (bytes[0] === 0) {
        sink.write(bytes.subarray(1));
        void sink.flush();
      } else if (bytes[0] === 4) {
        void sink.end();
      }
    } catch {}
  }

  const server = Bun.serve<SocketData>({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    // The service takes files far past Bun's 128 MiB default (PUT fs/write).
    maxRequestBodySize: 4 * 1024 ** 3,
    error: () => new Response(null, { status: 500 }),
    async fetch(req, server) {
      const url = new URL(req.url);
      const line = `${req.method} ${url.pathname}`;
      requests.push(line);
      const fault = faults.take(line);
      const auth = req.headers.get("authorization") ?? "";
      const token = /^Bearer (.+)$/.exec(auth)?.[1];
      if (!token || token !== (options.token ?? "fake-sprites-token")) return apiError(401, "unauthorized: invalid or missing token");
      const refused = await faultBefore(fault, req, (status) => apiError(status, `injected ${status}`));
      if (refused) return refused;
      const response = await api(req, url, server);
      if (response === undefined) return undefined as unknown as Response;
      return faultAfter(fault, response);
    },
    websocket: {
      open: startExec,
      message: onMessage,
      close(ws) {
        // A client that goes away takes its command with it (when it is still running).
        if (!ws.data.done) {
          try {
            ws.data.child?.kill("SIGKILL");
          } catch {}
        }
      },
    },
  });

  const url = `http://127.0.0.1:${server.port}`;
  return {
    url,
    sprites,
    requests,
    arrivals: faults.seen,
    creates,
    execs,
    sleep(name) {
      sprites.get(name)!.cold = true;
    },
    fault(fault) {
      faults.add(fault);
    },
    clearFaults() {
      faults.clear();
    },
    env: () => ({ SPRITES_TOKEN: options.token ?? "fake-sprites-token", SPRITES_API_URL: url }),
    async close() {
      for (const sprite of [...sprites.values()]) destroy(sprite);
      server.stop(true);
      rmSync(root, { recursive: true, force: true });
    },
  };
}


if (import.meta.main) {
  const fake = await startFakeSprites({ pageSize: Number(process.env.FAKE_SPRITES_PAGE_SIZE || 50) });
  process.stdout.write(`${JSON.stringify(fake.env())}\n`);
  const stop = () => void fake.close().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
