/**
 * A fake Daytona on 127.0.0.1 that speaks the real wire protocol (provider-wire.md §2): the
 * control plane under /api (REST/JSON) and the toolbox under /toolbox/<sandboxId> (REST, a
 * multipart file API and WebSockets for log follow and PTYs). The real @daytonaio/sdk is pointed
 * at it with `apiUrl`; the sandbox DTOs carry `toolboxProxyUrl` = <base>/toolbox.
 *
 * Each sandbox is a temp directory whose home/ and tmp/ are mounted over /home/daytona (its HOME
 * and default cwd) and /tmp in mount and pid namespaces of its own, held by one process; every
 * command enters them (nsenter) and runs for real as a local `sh -c` in its own process group, so
 * one sandbox sees neither another's files in /tmp nor its processes in /proc. State is kept so tests can assert that nothing
 * leaked, and faults (HTTP statuses, dropped connections, slow answers) can be injected per route.
 *
 * Run standalone: `bun test/fakes/daytona/server.ts` prints the API URL and serves until killed.
 */
import { enter, type Held, holdNamespaces, keepEntering, pathInside, release } from "../namespaces";
import { offline } from "../netns";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { randomUUID } from "node:crypto";
import type { Server, ServerWebSocket } from "bun";

export interface Fault {
  /** "POST /api/sandbox", or a RegExp tested against `${method} ${path}`. */
  match: string | RegExp;
  /** Answer with this status instead of handling the request. */
  status?: number;
  /** With `status`: the Retry-After header of that answer (e.g. "1" with a 429). */
  retryAfter?: string;
  /** Handle the request (its effects happen) but then answer with `status` or drop: a lost reply. */
  afterHandling?: boolean;
  /** Close the connection without a valid answer. */
  drop?: boolean;
  /** Wait this long before answering. */
  delayMs?: number;
  /** How many matching requests this fault applies to (default: all). */
  times?: number;
}

export interface FakeOptions {
  /** When set, requests must carry `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Items per page of GET /api/sandbox (the SDK follows nextCursor). */
  pageSize?: number;
  /** State returned by create; "creating" makes the SDK poll until started. */
  initialState?: "started" | "creating";
  /** With initialState "creating": the build fails instead of the sandbox starting. */
  failBuild?: boolean;
  /** Older daemons keep a followed log open after the command ends (until the session goes). */
  logsOutliveCommand?: boolean;
  /** Older daemons kill only the session's shell on delete: the commands it started live on. */
  sessionDeleteSparesCommands?: boolean;
  /**
   * A deleted sandbox stays a while in state "destroying", as on the real service: get and list
   * still return it, its processes are gone, and its toolbox refuses (409).
   */
  lingerOnDelete?: boolean;
  /** How long one of Daytona's minutes (ttlMinutes) lasts here: tests shrink it to check the TTL. */
  minuteMs?: number;
  port?: number;
}

interface CommandRecord {
  id: string;
  command: string;
  exitCode?: number;
  /** Log bytes with Daytona's 3-byte stream markers, as the daemon stores them. */
  log: Uint8Array[];
  process?: ReturnType<typeof Bun.spawn>;
  done: Promise<void>;
  followers: Set<ServerWebSocket<SocketData>>;
}

interface Session {
  id: string;
  commands: Map<string, CommandRecord>;
}

interface PtyRecord {
  id: string;
  cols: number;
  rows: number;
  cwd: string;
  envs: Record<string, string>;
  createdAt: string;
  process?: ReturnType<typeof Bun.spawn>;
  terminal?: { write(d: string | Uint8Array): void; resize(c: number, r: number): void; close(): void };
  socket?: ServerWebSocket<SocketData>;
}

export interface FakeSandbox {
  id: string;
  name: string;
  /** The sandbox's HOME (/home/daytona inside) on this machine. */
  dir: string;
  /** The process that holds its namespaces (pid 1 inside). */
  held: Held;
  state: string;
  labels: Record<string, string>;
  env: Record<string, string>;
  snapshot?: string;
  buildInfo?: { dockerfileContent?: string };
  createdAt: string;
  /** Everything else the create request carried (autoStopInterval, ttlMinutes, resources…). */
  settings: Record<string, unknown>;
  sessions: Map<string, Session>;
  ptys: Map<string, PtyRecord>;
}

type SocketData =
  | { kind: "logs"; command: CommandRecord }
  | { kind: "pty"; sandbox: FakeSandbox; pty: PtyRecord; envs: Record<string, string> };

const HOME = "/home/daytona";
const STDOUT_MARK = new Uint8Array([1, 1, 1]);
const STDERR_MARK = new Uint8Array([2, 2, 2]);

export class FakeDaytona {
  readonly root = mkdtempSync(join(tmpdir(), "sandboxes-fake-daytona-"));
  readonly sandboxes = new Map<string, FakeSandbox>();
  /** `${method} ${path}` of every request, for asserting what the client did. */
  readonly requests: string[] = [];
  /** The same requests with the time each arrived (ms since the epoch). */
  readonly arrivals: Array<{ line: string; at: number }> = [];
  /** The id of every sandbox a create made, in order (destroyed ones too). */
  readonly created: string[] = [];
  /** Every command line a session ran, in order (they outlive their sandbox here). */
  readonly commands: string[] = [];
  /** Files written through the upload API. */
  readonly uploads: Array<{ path: string; size: number }> = [];
  private faults: Array<Fault & { used: number }> = [];
  private server!: Server<SocketData>;

  constructor(private readonly options: FakeOptions = {}) {}

  get url(): string {
    return `http://127.0.0.1:${this.server.port}`;
  }

  /** What DAYTONA_API_URL / apiUrl should be. */
  get apiUrl(): string {
    return `${this.url}/api`;
  }

  start(): this {
    this.server = Bun.serve<SocketData>({
      hostname: "127.0.0.1",
      port: this.options.port ?? 0,
      idleTimeout: 120,
      // Daytona takes uploads of gigabytes (its SDK streams them); Bun's default stops at 128 MiB.
      maxRequestBodySize: 4 * 1024 ** 3,
      fetch: (req, server) => this.handle(req, server),
      websocket: {
        open: (ws) => this.onSocketOpen(ws),
        message: (ws, message) => this.onSocketMessage(ws, message),
        close: (ws) => this.onSocketClose(ws),
      },
    });
    return this;
  }

  async stop(): Promise<void> {
    for (const sandbox of [...this.sandboxes.values()]) this.destroy(sandbox);
    this.server?.stop(true);
    rmSync(this.root, { recursive: true, force: true });
  }

  inject(fault: Fault): void {
    this.faults.push({ ...fault, used: 0 });
  }

  clearFaults(): void {
    this.faults = [];
  }

  /** Destroys every sandbox, so one failing test cannot leak into the next one's assertions. */
  reset(): void {
    for (const sandbox of [...this.sandboxes.values()]) this.destroy(sandbox);
  }

  /** Sandboxes that exist (not destroyed): what a leak check looks at. */
  live(): FakeSandbox[] {
    return [...this.sandboxes.values()];
  }

  private takeFault(method: string, path: string): Fault | undefined {
    const key = `${method} ${path}`;
    for (const fault of this.faults) {
      const matches = typeof fault.match === "string" ? fault.match === key : fault.match.test(key);
      if (!matches || (fault.times !== undefined && fault.used >= fault.times)) continue;
      fault.used++;
      return fault;
    }
    return undefined;
  }

  private async handle(req: Request, server: Server<SocketData>): Promise<Response | undefined> {
    const url = new URL(req.url);
    const path = url.pathname;
    this.requests.push(`${req.method} ${path}`);
    this.arrivals.push({ line: `${req.method} ${path}`, at: Date.now() });
    const fault = this.takeFault(req.method, path);
    if (fault?.delayMs) await Bun.sleep(fault.delayMs);
    if (fault && !fault.afterHandling) {
      if (fault.drop) return dropConnection(req, server);
      if (fault.status) {
        const refused = errorResponse(fault.status);
        if (fault.retryAfter !== undefined) refused.headers.set("retry-after", fault.retryAfter);
        return refused;
      }
    }
    if (this.options.apiKey && req.headers.get("authorization") !== `Bearer ${this.options.apiKey}`) {
      return errorResponse(401, "Invalid credentials");
    }
    let response: Response | undefined;
    try {
      response = await this.route(req, url, server);
    } catch (error) {
      response = errorResponse(500, (error as Error).message);
    }
    if (fault?.afterHandling) {
      if (fault.drop) return dropConnection(req, server);
      if (fault.status) return errorResponse(fault.status);
    }
    return response;
  }

  private async route(req: Request, url: URL, server: Server<SocketData>): Promise<Response | undefined> {
    const path = url.pathname;
    const method = req.method;
    let m: RegExpMatchArray | null;
    if (path === "/api/sandbox" && method === "POST") return this.create(await req.json());
    if (path === "/api/sandbox" && method === "GET") return this.list(url);
    if ((m = path.match(/^\/api\/sandbox\/([^/]+)$/))) {
      const sandbox = this.find(decodeURIComponent(m[1]!));
      if (!sandbox) return notFound(m[1]!);
      if (method === "GET") return json(this.dto(sandbox));
      if (method === "DELETE") {
        if (this.options.lingerOnDelete) {
          this.killAll(sandbox);
          sandbox.state = "destroying";
          return json(this.dto(sandbox));
        }
        this.destroy(sandbox);
        return json({ ...this.dto(sandbox), state: "destroying" });
      }
    }
    if ((m = path.match(/^\/api\/sandbox\/([^/]+)\/(start|stop)$/)) && method === "POST") {
      const sandbox = this.find(decodeURIComponent(m[1]!));
      if (!sandbox) return notFound(m[1]!);
      sandbox.state = m[2] === "start" ? "started" : "stopped";
      if (sandbox.state === "stopped") this.killAll(sandbox);
      return json(this.dto(sandbox));
    }
    if ((m = path.match(/^\/api\/sandbox\/([^/]+)\/toolbox-proxy-url$/)) && method === "GET") {
      return json({ url: `${this.url}/toolbox` });
    }
    if ((m = path.match(/^\/toolbox\/([^/]+)(\/.*)$/))) {
      const sandbox = this.sandboxes.get(m[1]!);
      if (!sandbox) return errorResponse(404, `sandbox ${m[1]} not found`);
      if (sandbox.state !== "started") return errorResponse(409, `sandbox ${sandbox.id} is ${sandbox.state}`);
      return this.toolbox(sandbox, m[2]!, req, url, server);
    }
    return errorResponse(404, `Cannot ${method} ${path}`);
  }

  // ---- control plane -------------------------------------------------------------------------

  private async create(body: Record<string, unknown>): Promise<Response> {
    const name = typeof body.name === "string" && body.name ? body.name : undefined;
    if (name && [...this.sandboxes.values()].some((s) => s.name === name)) {
      return errorResponse(409, `Sandbox with name ${name} already exists`);
    }
    const id = randomUUID();
    this.created.push(id);
    const dir = join(this.root, id);
    const held = await holdNamespaces(dir, HOME);
    if ("error" in held) {
      rmSync(dir, { recursive: true, force: true });
      return errorResponse(500, `fake could not make the sandbox's namespaces: ${held.error}`);
    }
    const { labels, env, snapshot, buildInfo, ...settings } = body;
    const sandbox: FakeSandbox = {
      id,
      name: name ?? id,
      dir: join(dir, "home"),
      held,
      state: this.options.initialState ?? "started",
      labels: (labels as Record<string, string>) ?? {},
      env: (env as Record<string, string>) ?? {},
      snapshot: snapshot as string | undefined,
      buildInfo: buildInfo as FakeSandbox["buildInfo"],
      createdAt: new Date().toISOString(),
      settings,
      sessions: new Map(),
      ptys: new Map(),
    };
    this.sandboxes.set(id, sandbox);
    // Like Daytona: after ttlMinutes the sandbox is gone, whatever it is doing.
    const ttlMinutes = Number(settings.ttlMinutes ?? 0);
    if (ttlMinutes > 0) setTimeout(() => this.sandboxes.get(id) === sandbox && this.destroy(sandbox), ttlMinutes * (this.options.minuteMs ?? 60_000)).unref?.();
    if (sandbox.state !== "started") {
      setTimeout(() => {
        if (sandbox.state === "creating") sandbox.state = this.options.failBuild ? "build_failed" : "started";
      }, 300);
    }
    return json(this.dto(sandbox), 200);
  }

  private list(url: URL): Response {
    const filter = url.searchParams.get("labels");
    const labels: Record<string, string> = filter ? JSON.parse(filter) : {};
    const all = [...this.sandboxes.values()]
      .filter((s) => Object.entries(labels).every(([k, v]) => Object.hasOwn(s.labels, k) && s.labels[k] === v))
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id));
    const pageSize = Number(url.searchParams.get("limit")) || this.options.pageSize || 100;
    const start = Number(url.searchParams.get("cursor") ?? 0) || 0;
    const page = all.slice(start, start + pageSize);
    const next = start + pageSize < all.length ? String(start + pageSize) : null;
    return json({ items: page.map((s) => this.listItem(s)), nextCursor: next });
  }

  private find(idOrName: string): FakeSandbox | undefined {
    return this.sandboxes.get(idOrName) ?? [...this.sandboxes.values()].find((s) => s.name === idOrName);
  }

  private listItem(s: FakeSandbox) {
    return {
      id: s.id,
      organizationId: "org-fake",
      name: s.name,
      target: (s.settings.target as string) ?? "us",
      state: s.state,
      snapshot: s.snapshot,
      user: "daytona",
      public: false,
      networkBlockAll: Boolean(s.settings.networkBlockAll),
      cpu: (s.settings.cpu as number) ?? 1,
      gpu: 0,
      memory: (s.settings.memory as number) ?? 1,
      disk: (s.settings.disk as number) ?? 3,
      labels: s.labels,
      autoStopInterval: (s.settings.autoStopInterval as number) ?? 15,
      autoDeleteInterval: (s.settings.autoDeleteInterval as number) ?? -1,
      createdAt: s.createdAt,
      updatedAt: s.createdAt,
      ...(s.state === "build_failed" ? { errorReason: "fake: the image build failed" } : {}),
      toolboxProxyUrl: `${this.url}/toolbox`,
    };
  }

  private dto(s: FakeSandbox) {
    return { ...this.listItem(s), env: s.env, buildInfo: s.buildInfo, volumes: [], ttlMinutes: s.settings.ttlMinutes };
  }

  private destroy(sandbox: FakeSandbox): void {
    this.killAll(sandbox);
    this.sandboxes.delete(sandbox.id);
    release(sandbox.held);
    rmSync(dirname(sandbox.dir), { recursive: true, force: true });
  }

  /** argv that runs `argv` inside the sandbox, in `cwd` (a path inside), offline when its network is blocked. */
  private inSandbox(sandbox: FakeSandbox, cwd: string, argv: string[]): string[] {
    return enter(sandbox.held, cwd, [...offline(Boolean(sandbox.settings.networkBlockAll)), ...argv]);
  }

  private killAll(sandbox: FakeSandbox): void {
    for (const session of sandbox.sessions.values()) for (const command of session.commands.values()) killGroup(command.process);
    for (const pty of sandbox.ptys.values()) killGroup(pty.process);
  }

  // ---- toolbox (the daemon inside the sandbox) -------------------------------------------------

  private async toolbox(sandbox: FakeSandbox, path: string, req: Request, url: URL, server: Server<SocketData>): Promise<Response | undefined> {
    const method = req.method;
    let m: RegExpMatchArray | null;
    if (path === "/process/execute" && method === "POST") return this.executeMerged(sandbox, await req.json());
    if (path === "/process/session" && method === "POST") {
      const { sessionId } = (await req.json()) as { sessionId: string };
      if (sandbox.sessions.has(sessionId)) return errorResponse(409, `session ${sessionId} already exists`);
      sandbox.sessions.set(sessionId, { id: sessionId, commands: new Map() });
      return new Response(null, { status: 201 });
    }
    if ((m = path.match(/^\/process\/session\/([^/]+)$/))) {
      const session = sandbox.sessions.get(m[1]!);
      if (!session) return errorResponse(404, `session ${m[1]} not found`);
      if (method === "GET") return json({ sessionId: session.id, commands: [...session.commands.values()].map(commandJson) });
      if (method === "DELETE") {
        for (const command of session.commands.values()) {
          if (!this.options.sessionDeleteSparesCommands) killGroup(command.process);
          for (const ws of command.followers) ws.close(1000, "session deleted");
        }
        sandbox.sessions.delete(session.id);
        return new Response(null, { status: 204 });
      }
    }
    if ((m = path.match(/^\/process\/session\/([^/]+)\/exec$/)) && method === "POST") {
      const session = sandbox.sessions.get(m[1]!);
      if (!session) return errorResponse(404, `session ${m[1]} not found`);
      const body = (await req.json()) as { command: string; runAsync?: boolean; async?: boolean };
      const command = this.startCommand(sandbox, session, body.command);
      if (body.runAsync || body.async) return json({ cmdId: command.id }, 202);
      await command.done;
      const { stdout, stderr } = demux(command.log);
      return json({ cmdId: command.id, output: stdout + stderr, stdout, stderr, exitCode: command.exitCode });
    }
    if ((m = path.match(/^\/process\/session\/([^/]+)\/command\/([^/]+)$/)) && method === "GET") {
      const command = sandbox.sessions.get(m[1]!)?.commands.get(m[2]!);
      if (!command) return errorResponse(404, `command ${m[2]} not found`);
      return json(commandJson(command));
    }
    if ((m = path.match(/^\/process\/session\/([^/]+)\/command\/([^/]+)\/logs$/)) && method === "GET") {
      const command = sandbox.sessions.get(m[1]!)?.commands.get(m[2]!);
      if (!command) return errorResponse(404, `command ${m[2]} not found`);
      if (url.searchParams.get("follow") === "true") {
        if (server.upgrade(req, { data: { kind: "logs", command } })) return undefined;
        return errorResponse(400, "expected a WebSocket upgrade");
      }
      const { stdout, stderr } = demux(command.log);
      return json({ output: stdout + stderr, stdout, stderr });
    }
    if (path === "/files/bulk-upload" && method === "POST") {
      const form = await req.formData();
      for (let i = 0; form.has(`files[${i}].path`); i++) {
        const target = this.resolvePath(sandbox, String(form.get(`files[${i}].path`)));
        const file = form.get(`files[${i}].file`) as unknown as Blob;
        const bytes = new Uint8Array(await file.arrayBuffer());
        mkdirSync(dirname(target), { recursive: true });
        writeFileSync(target, bytes);
        this.uploads.push({ path: target, size: bytes.length });
      }
      return new Response(null, { status: 200 });
    }
    if (path === "/files" && method === "DELETE") {
      const target = this.resolvePath(sandbox, url.searchParams.get("path") ?? "");
      if (!existsSync(target)) return errorResponse(404, `file not found: ${url.searchParams.get("path")}`);
      if (statSync(target).isDirectory() && url.searchParams.get("recursive") !== "true") return errorResponse(400, "is a directory: pass recursive=true");
      rmSync(target, { recursive: true, force: true });
      return new Response(null, { status: 204 });
    }
    if (path === "/files/bulk-download" && method === "POST") {
      const { paths } = (await req.json()) as { paths: string[] };
      const form = new FormData();
      for (const requested of paths) {
        const target = this.resolvePath(sandbox, requested);
        if (!existsSync(target) || statSync(target).isDirectory()) {
          const body = JSON.stringify({ message: `file not found: ${requested}`, statusCode: 404, code: "FILE_NOT_FOUND" });
          form.append("error", new Blob([body], { type: "application/json" }), requested);
        } else {
          form.append("file", new Blob([readFileSync(target)], { type: "application/octet-stream" }), requested);
        }
      }
      return new Response(form);
    }
    if (path === "/process/pty/create-connect" && method === "GET") return this.ptyUpgrade(sandbox, req, url, server);
    if ((m = path.match(/^\/process\/pty\/([^/]+)\/resize$/)) && method === "POST") {
      const pty = sandbox.ptys.get(m[1]!);
      if (!pty) return errorResponse(404, `pty ${m[1]} not found`);
      const { cols, rows } = (await req.json()) as { cols: number; rows: number };
      pty.cols = cols;
      pty.rows = rows;
      pty.terminal?.resize(cols, rows);
      return json(ptyInfo(pty));
    }
    if ((m = path.match(/^\/process\/pty\/([^/]+)$/))) {
      const pty = sandbox.ptys.get(m[1]!);
      if (!pty) return errorResponse(404, `pty ${m[1]} not found`);
      if (method === "GET") return json(ptyInfo(pty));
      if (method === "DELETE") {
        killGroup(pty.process);
        return json({ message: "PTY session killed" });
      }
    }
    return errorResponse(404, `Cannot ${method} ${path}`);
  }

  /** A path inside the sandbox (relative ones under its HOME), as this machine reaches it through the holder's root. */
  private resolvePath(sandbox: FakeSandbox, path: string): string {
    return pathInside(sandbox.held, path.startsWith("/") ? path : join(HOME, path));
  }

  private environment(sandbox: FakeSandbox, extra: Record<string, string> = {}): Record<string, string> {
    return { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME, LANG: "C.UTF-8", ...sandbox.env, ...extra };
  }

  /** POST /process/execute: the daemon merges stderr into the one `result` string. */
  private async executeMerged(sandbox: FakeSandbox, body: { command: string; cwd?: string; envs?: Record<string, string>; timeout?: number }): Promise<Response> {
    const child = Bun.spawn(this.inSandbox(sandbox, body.cwd ?? HOME, ["sh", "-c", `${body.command} 2>&1`]), { env: this.environment(sandbox, body.envs), stdout: "pipe", stdin: "ignore" });
    const [result, exitCode] = await Promise.all([new Response(child.stdout).text(), child.exited]);
    return json({ exitCode, result });
  }

  private startCommand(sandbox: FakeSandbox, session: Session, line: string): CommandRecord {
    const id = randomUUID();
    const command: CommandRecord = { id, command: line, log: [], followers: new Set(), done: Promise.resolve() };
    this.commands.push(line);
    session.commands.set(id, command);
    // setsid: its own process group (nsenter and what it starts), so deleting the session kills the whole tree.
    const child = Bun.spawn(["setsid", ...this.inSandbox(sandbox, HOME, ["sh", "-c", line])], { env: this.environment(sandbox), stdout: "pipe", stderr: "pipe", stdin: "ignore" });
    command.process = child;
    void child.exited.then(keepEntering(child.pid));
    const pump = async (stream: ReadableStream<Uint8Array>, mark: Uint8Array) => {
      for await (const chunk of stream) {
        const framed = concat(mark, chunk);
        command.log.push(framed);
        for (const ws of command.followers) ws.sendBinary(framed);
      }
    };
    command.done = Promise.all([pump(child.stdout as ReadableStream<Uint8Array>, STDOUT_MARK), pump(child.stderr as ReadableStream<Uint8Array>, STDERR_MARK), child.exited]).then(() => {
      command.exitCode = child.signalCode ? 128 + signalNumber(child.signalCode) : (child.exitCode ?? 0);
      if (this.options.logsOutliveCommand) return;
      for (const ws of command.followers) ws.close(1000, "command finished");
      command.followers.clear();
    });
    return command;
  }

  private ptyUpgrade(sandbox: FakeSandbox, req: Request, url: URL, server: Server<SocketData>): Response | undefined {
    const offered = (req.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim()).filter(Boolean);
    let envs: Record<string, string> = {};
    const envToken = offered.find((p) => p.startsWith("X-Daytona-Pty-Envs~"));
    if (envToken) envs = JSON.parse(Buffer.from(envToken.slice("X-Daytona-Pty-Envs~".length), "base64url").toString("utf8"));
    const id = url.searchParams.get("id") ?? randomUUID();
    if (sandbox.ptys.has(id)) return errorResponse(409, `pty ${id} already exists`);
    const pty: PtyRecord = {
      id,
      cols: Number(url.searchParams.get("cols") ?? 80),
      rows: Number(url.searchParams.get("rows") ?? 24),
      cwd: url.searchParams.get("cwd") || HOME,
      envs,
      createdAt: new Date().toISOString(),
    };
    sandbox.ptys.set(id, pty);
    const echo = offered.find((p) => p === "X-Daytona-Pty-Exit-Control") ?? offered[0];
    const upgraded = server.upgrade(req, { data: { kind: "pty", sandbox, pty, envs }, headers: echo ? { "Sec-WebSocket-Protocol": echo } : undefined });
    if (upgraded) return undefined;
    sandbox.ptys.delete(id);
    return errorResponse(400, "expected a WebSocket upgrade");
  }

  private onSocketOpen(ws: ServerWebSocket<SocketData>): void {
    const data = ws.data;
    if (data.kind === "logs") {
      for (const chunk of data.command.log) ws.sendBinary(chunk);
      if (data.command.exitCode !== undefined && !this.options.logsOutliveCommand) ws.close(1000, "command finished");
      else data.command.followers.add(ws);
      return;
    }
    const { sandbox, pty, envs } = data;
    pty.socket = ws;
    // A session of its own inside (setsid -c takes the terminal): job control needs a foreground group the shell can see.
    const child = Bun.spawn(this.inSandbox(sandbox, pty.cwd, ["setsid", "-c", "sh", "-i"]), {
      env: this.environment(sandbox, { TERM: "xterm-256color", PS1: "$ ", ...envs }),
      terminal: {
        cols: pty.cols,
        rows: pty.rows,
        data: (_terminal: unknown, bytes: Uint8Array) => ws.sendBinary(bytes),
      },
    } as Parameters<typeof Bun.spawn>[1]);
    pty.process = child;
    pty.terminal = (child as unknown as { terminal: PtyRecord["terminal"] }).terminal;
    ws.send(JSON.stringify({ type: "control", status: "connected" }));
    void child.exited.then(async () => {
      await Bun.sleep(30); // let the terminal's last bytes reach the socket first
      const exitCode = child.signalCode ? 128 + signalNumber(child.signalCode) : (child.exitCode ?? 0);
      const exitReason = child.signalCode ? "killed" : undefined;
      try {
        ws.send(JSON.stringify({ type: "control", status: "exited", exitCode, ...(exitReason ? { exitReason } : {}) }));
        ws.close(1000, "pty exited");
      } catch {}
      pty.terminal?.close();
      sandbox.ptys.delete(pty.id);
    });
  }

  private onSocketMessage(ws: ServerWebSocket<SocketData>, message: string | Buffer): void {
    if (ws.data.kind !== "pty") return;
    ws.data.pty.terminal?.write(typeof message === "string" ? message : new Uint8Array(message));
  }

  private onSocketClose(ws: ServerWebSocket<SocketData>): void {
    if (ws.data.kind === "logs") ws.data.command.followers.delete(ws);
  }
}

function commandJson(command: CommandRecord) {
  return { id: command.id, command: command.command, ...(command.exitCode !== undefined ? { exitCode: command.exitCode } : {}) };
}

function ptyInfo(pty: PtyRecord) {
  return { id: pty.id, active: pty.process?.exitCode === null, cols: pty.cols, rows: pty.rows, cwd: pty.cwd, envs: pty.envs, createdAt: pty.createdAt, lazyStart: false };
}

function killGroup(child: ReturnType<typeof Bun.spawn> | undefined): void {
  if (!child || child.exitCode !== null || child.signalCode) return;
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    child.kill("SIGKILL");
  }
}

function signalNumber(name: string | number): number {
  if (typeof name === "number") return name;
  return ((require("node:os") as typeof import("node:os")).constants.signals as Record<string, number>)[name] ?? 9;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function demux(log: Uint8Array[]): { stdout: string; stderr: string } {
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  for (const chunk of log) (chunk[0] === 1 ? out : err).push(chunk.subarray(3));
  return { stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") };
}

function json(body: unknown, status = 200): Response {
  return Response.json(body, { status });
}

const REASONS: Record<number, string> = { 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable" };

function errorResponse(status: number, message?: string): Response {
  return json({ statusCode: status, message: message ?? REASONS[status] ?? "Error", error: REASONS[status] ?? "Error" }, status);
}

/** No answer at all: the server closes the connection when the request's 1 s idle timeout expires. */
function dropConnection(req: Request, server: Server<SocketData>): Promise<Response> {
  server.timeout(req, 1);
  return new Promise<Response>(() => {});
}

function notFound(idOrName: string): Response {
  return errorResponse(404, `Sandbox with ID or name ${decodeURIComponent(idOrName)} not found`);
}

if (import.meta.main) {
  const fake = new FakeDaytona({ port: Number(process.env.PORT) || 0 }).start();
  console.log(`DAYTONA_API_URL=${fake.apiUrl}`);
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => void fake.stop().then(() => process.exit(0)));
}
