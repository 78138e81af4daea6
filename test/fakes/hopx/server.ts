/**
 * A fake Hopx on 127.0.0.1 that speaks its real wire protocol (provider-wire.md §4), so the
 * official @hopx-ai/sdk runs against it unchanged with `baseURL` pointing here:
 *   - the control plane: REST/JSON under /v1/sandboxes, X-API-Key;
 *   - the in-VM agent, at the sandbox's `public_host`: POST /commands/run, /files/write,
 *     GET /files/read and /files/download, GET|PUT|PATCH /env and the WS /terminal (JSON text
 *     messages). The SDK's WSClient keeps only the scheme and host of public_host, so every agent
 *     lives at this server's root and is told apart by its Bearer JWT.
 * Each sandbox is a small "VM": a temp directory and a private mount + PID namespace (unshare)
 * whose root is the host's directories with the sandbox's own /tmp, /root and /workspace bound
 * over them. Commands run in it for real (nsenter + chroot); deleting the sandbox kills the
 * namespace's init and with it every process the sandbox ever started.
 * What the reference does not say (the agent's answer when its own `timeout` passes, error bodies)
 * is an assumption of this fake and marked so.
 *
 * Run standalone: `bun test/fakes/hopx/server.ts` prints the environment for the CLI.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, posix } from "node:path";
import type { Server, ServerWebSocket, Subprocess } from "bun";
import { type Fault, faultAfter, faultBefore, Faults } from "../faults";

export interface FakeHopxSandbox {
  id: string;
  templateName: string;
  envVars: Record<string, string>;
  timeoutSeconds?: number;
  internetAccess: boolean;
  status: "running" | "paused";
  dir: string;
  /** The namespace's init, as this machine sees it. */
  initPid: number;
  holder: Subprocess;
  createdAt: Date;
  timer?: ReturnType<typeof setTimeout>;
  /** Every process an agent call started (commands, terminals). */
  processes: Set<Subprocess>;
}

/**
 * A fault applies to requests whose "METHOD /path" is `match` (or starts with it when `match` ends
 * with "*"), `times` times: an HTTP status, a dropped connection before or after the request did
 * its work, or a slow answer.
 */
export type { Fault } from "../faults";

export interface FakeHopxOptions {
  apiKey?: string;
  /** Sandboxes per page of GET /v1/sandboxes (at most what the client asks for). */
  pageSize?: number;
  /** Template names that exist; any name when absent. */
  templates?: string[];
}

export interface FakeHopx {
  url: string;
  apiKey: string;
  sandboxes: Map<string, FakeHopxSandbox>;
  /** Every request as "METHOD /path", in order. */
  requests: string[];
  /** Bodies of every POST /v1/sandboxes that created a sandbox. */
  creates: Array<Record<string, unknown>>;
  /** Bodies of every agent POST /commands/run. */
  commands: Array<Record<string, unknown>>;
  fault(fault: Fault): void;
  clearFaults(): void;
  /** Every request line, in order, with the time it arrived (ms since the epoch). */
  arrivals: ReadonlyArray<{ line: string; at: number }>;
  /** Environment that points the sandboxes binary at this fake. */
  env(): Record<string, string>;
  close(): Promise<void>;
}

/** Builds the sandbox's root in its own namespaces, then idles as their init. */
const HOLDER_SCRIPT = String.raw`sbx=$1; r=$sbx/.root
mount -t tmpfs fake-hopx-root "$r" || exit 1
for d in /*; do
  n=$(basename "$d")
  case $n in tmp|root|workspace|proc|dev|sys) continue;; esac
  if [ -L "$d" ]; then ln -s "$(readlink "$d")" "$r/$n"
  elif [ -d "$d" ]; then mkdir "$r/$n" && mount --rbind "$d" "$r/$n"
  fi
done
for n in tmp root workspace; do mkdir "$r/$n" && mount --bind "$sbx/$n" "$r/$n" || exit 1; done
mkdir "$r/dev" "$r/sys" "$r/proc" && mount --rbind /dev "$r/dev" && mount --rbind /sys "$r/sys" && mount -t proc proc "$r/proc" || exit 1
echo ready
exec sleep infinity`;

/** Inside the sandbox: cd to the workdir (126 when it is missing), then run argv. */
const ENTER_SCRIPT = 'cd "$1" 2>/dev/null || { echo "chdir $1: no such file or directory" >&2; exit 200; }; shift; exec "$@"';
const MISSING_WORKDIR = 200;

const asRoot = process.getuid?.() === 0;
const json = (body: unknown, status = 200) => Response.json(body, { status, headers: { "x-request-id": `req-${crypto.randomUUID().slice(0, 8)}` } });
/** Error bodies carry both `error` and `message` (an assumption: the SDK reads `message`). */
const apiError = (status: number, message: string, code?: string) => json({ error: message, message, ...(code ? { code } : {}) }, status);

function newId(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  return `${Date.now()}${Array.from(crypto.getRandomValues(new Uint8Array(6)), (b) => alphabet[b % alphabet.length]).join("")}`;
}

const b64url = (value: string) => Buffer.from(value).toString("base64url");
function newToken(id: string, expires: Date): string {
  return [b64url(JSON.stringify({ alg: "HS256", typ: "JWT" })), b64url(JSON.stringify({ sandbox_id: id, exp: Math.floor(expires.getTime() / 1000) })), crypto.randomUUID().replaceAll("-", "")].join(".");
}

interface SocketData {
  sandbox: FakeHopxSandbox;
  child?: Subprocess;
  terminal?: { write(data: string | Uint8Array): void; resize(cols: number, rows: number): void; close(): void };
}

export async function startFakeHopx(options: FakeHopxOptions = {}): Promise<FakeHopx> {
  const apiKey = options.apiKey ?? "hopx_fake_key";
  const sandboxes = new Map<string, FakeHopxSandbox>();
  const tokens = new Map<string, string>();
  const requests: string[] = [];
  const creates: Array<Record<string, unknown>> = [];
  const commands: Array<Record<string, unknown>> = [];
  const faults = new Faults();
  const root = mkdtempSync(join(tmpdir(), "fake-hopx-"));
  let url = "";

  function kill(sandbox: FakeHopxSandbox): void {
    clearTimeout(sandbox.timer);
    sandboxes.delete(sandbox.id);
    for (const [token, id] of tokens) if (id === sandbox.id) tokens.delete(token);
    // SIGKILL to a PID namespace's init takes every process in the namespace with it.
    try {
      process.kill(sandbox.initPid, "SIGKILL");
    } catch {}
    for (const child of sandbox.processes) child.kill("SIGKILL");
    sandbox.holder.kill("SIGKILL");
    rmSync(sandbox.dir, { recursive: true, force: true });
  }

  async function boot(id: string, internetAccess: boolean): Promise<{ dir: string; holder: Subprocess; initPid: number }> {
    const dir = mkdtempSync(join(root, "sbx-"));
    for (const sub of [".root", "root", "workspace"]) mkdirSync(join(dir, sub));
    mkdirSync(join(dir, "tmp"));
    chmodSync(join(dir, "tmp"), 0o1777);
    const flags = ["--mount", "--pid", "--fork", ...(internetAccess ? [] : ["--net"]), ...(asRoot ? [] : ["--map-root-user"])];
    const holder = Bun.spawn(["unshare", ...flags, "/bin/sh", "-c", HOLDER_SCRIPT, `fake-hopx-${id}`, dir], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const reader = (holder.stdout as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    reader.releaseLock();
    if (!new TextDecoder().decode(first.value ?? new Uint8Array()).startsWith("ready")) {
      holder.kill("SIGKILL");
      throw new Error(`the fake could not build a sandbox: ${await new Response(holder.stderr as ReadableStream).text()}`);
    }
    const children = readFileSync(`/proc/${holder.pid}/task/${holder.pid}/children`, "utf8").trim().split(/\s+/);
    return { dir, holder, initPid: Number(children[0]) };
  }

  /** argv run inside the sandbox: its namespaces, its root, `cwd`. */
  function inside(sandbox: FakeHopxSandbox, cwd: string, argv: string[]): string[] {
    const enter = ["nsenter", "-t", String(sandbox.initPid), "-m", "-p", ...(sandbox.internetAccess ? [] : ["-n"]), ...(asRoot ? [] : ["-U", "--preserve-credentials"])];
    return [...enter, "--", "chroot", join(sandbox.dir, ".root"), "/bin/sh", "-c", ENTER_SCRIPT, "fake-agent", cwd, ...argv];
  }

  function baseEnv(sandbox: FakeHopxSandbox, extra: Record<string, string> = {}): Record<string, string> {
    return { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", HOME: "/root", USER: "root", LANG: "C.UTF-8", ...sandbox.envVars, ...extra };
  }

  /** A sandbox path -> where it lives on this machine: /tmp, /root and /workspace only. */
  function hostPath(sandbox: FakeHopxSandbox, path: string): string | undefined {
    const absolute = posix.resolve("/workspace", path);
    for (const top of ["tmp", "root", "workspace"]) {
      if (absolute === `/${top}` || absolute.startsWith(`/${top}/`)) return join(sandbox.dir, top, absolute.slice(top.length + 1));
    }
    return undefined;
  }

  const info = (sandbox: FakeHopxSandbox) => ({
    id: sandbox.id,
    template_name: sandbox.templateName,
    template_id: "73",
    organization_id: 1,
    node_id: "fake-node",
    region: "fake-1",
    status: sandbox.status,
    public_host: url,
    direct_url: url,
    resources: { vcpu: 2, memory_mb: 2048, disk_mb: 10240 },
    internet_access: sandbox.internetAccess,
    live_mode: false,
    timeout_seconds: sandbox.timeoutSeconds ?? null,
    created_at: sandbox.createdAt.toISOString(),
    expires_at: sandbox.timeoutSeconds ? new Date(sandbox.createdAt.getTime() + sandbox.timeoutSeconds * 1000).toISOString() : null,
  });

  function issueToken(sandbox: FakeHopxSandbox) {
    const expires = new Date(Date.now() + 24 * 3600 * 1000);
    const token = newToken(sandbox.id, expires);
    tokens.set(token, sandbox.id);
    return { auth_token: token, token_expires_at: expires.toISOString() };
  }

  async function control(req: Request, path: string, query: URLSearchParams): Promise<Response> {
    if (req.headers.get("x-api-key") !== apiKey) return apiError(401, "Invalid or missing API key", "UNAUTHORIZED");
    if (req.method === "POST" && path === "/v1/sandboxes") {
      const body = (await req.json()) as Record<string, any>;
      const template = String(body.template_name ?? body.template_id ?? "");
      if (!template) return apiError(400, "template_name or template_id is required", "VALIDATION_ERROR");
      if (options.templates && !options.templates.includes(template)) return apiError(404, `Template '${template}' not found`, "TEMPLATE_NOT_FOUND");
      const id = newId();
      const internetAccess = body.internet_access !== false;
      const vm = await boot(id, internetAccess);
      const sandbox: FakeHopxSandbox = {
        id,
        templateName: template,
        envVars: { ...(body.env_vars ?? {}) },
        timeoutSeconds: typeof body.timeout_seconds === "number" ? body.timeout_seconds : undefined,
        internetAccess,
        status: "running",
        ...vm,
        createdAt: new Date(),
        processes: new Set(),
      };
      if (sandbox.timeoutSeconds) {
        sandbox.timer = setTimeout(() => kill(sandbox), sandbox.timeoutSeconds * 1000);
        sandbox.timer.unref?.();
      }
      sandboxes.set(id, sandbox);
      creates.push(body);
      return json({ ...info(sandbox), ...issueToken(sandbox) }, 201);
    }
    if (req.method === "GET" && path === "/v1/sandboxes") {
      const all = [...sandboxes.values()].filter((s) => !query.get("status") || s.status === query.get("status")).sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || a.id.localeCompare(b.id));
      const limit = Math.min(Number(query.get("limit") || 100), options.pageSize ?? 100);
      const offset = Number(query.get("cursor") || 0);
      const page = all.slice(offset, offset + limit);
      const more = offset + limit < all.length;
      return json({ data: page.map(info), has_more: more, next_cursor: more ? String(offset + limit) : null });
    }
    const match = /^\/v1\/sandboxes\/([^/]+)(?:\/(.+))?$/.exec(path);
    const sandbox = match ? sandboxes.get(decodeURIComponent(match[1]!)) : undefined;
    if (match && !sandbox) return apiError(404, `Sandbox not found: ${decodeURIComponent(match[1]!)}`, "SANDBOX_NOT_FOUND");
    const action = `${req.method} ${match?.[2] ?? ""}`;
    if (sandbox) {
      switch (action) {
        case "GET ":
          return json(info(sandbox));
        case "DELETE ":
          kill(sandbox);
          return new Response(null, { status: 204 });
        case "POST token/refresh":
          return json(issueToken(sandbox));
        case "POST pause":
          sandbox.status = "paused";
          return json(info(sandbox));
        case "POST resume":
          sandbox.status = "running";
          return json(info(sandbox));
        case "PUT timeout": {
          const seconds = Number(((await req.json()) as { timeout_seconds: number }).timeout_seconds);
          clearTimeout(sandbox.timer);
          sandbox.timeoutSeconds = seconds;
          sandbox.timer = setTimeout(() => kill(sandbox), seconds * 1000);
          sandbox.timer.unref?.();
          return json(info(sandbox));
        }
      }
    }
    return apiError(404, `no route ${req.method} ${path}`, "NOT_FOUND");
  }

  async function agent(req: Request, path: string, query: URLSearchParams, sandbox: FakeHopxSandbox, server: Server<SocketData>): Promise<Response | undefined> {
    if (sandbox.status !== "running") return apiError(503, "sandbox is paused");
    if (path === "/terminal") {
      if (server.upgrade(req, { data: { sandbox } })) return undefined;
      return apiError(400, "expected a WebSocket upgrade");
    }
    if (path === "/health") return json({ status: "healthy" });
    if (path === "/commands/run" && req.method === "POST") return run(sandbox, (await req.json()) as Record<string, any>);
    if (path === "/env") {
      if (req.method === "GET") return json({ env_vars: sandbox.envVars });
      const body = (await req.json()) as { env_vars?: Record<string, string> };
      if (req.method === "PUT") sandbox.envVars = { ...(body.env_vars ?? {}) };
      else if (req.method === "PATCH") sandbox.envVars = { ...sandbox.envVars, ...(body.env_vars ?? {}) };
      else return apiError(405, "method not allowed");
      return json({ env_vars: sandbox.envVars });
    }
    if (path === "/files/write" && req.method === "POST") {
      const body = (await req.json()) as { path: string; content: string; encoding?: string; overwrite?: boolean; mode?: string };
      const target = hostPath(sandbox, body.path);
      if (!target) return apiError(403, `permission denied: ${body.path} is outside /tmp, /root and /workspace in this fake`, "PERMISSION_DENIED");
      const bytes = body.encoding === "base64" ? Buffer.from(body.content, "base64") : Buffer.from(body.content ?? "", "utf8");
      mkdirSync(dirname(target), { recursive: true });
      await writeFile(target, bytes, { flag: body.overwrite === false ? "wx" : "w", mode: parseInt(body.mode ?? "0644", 8) });
      return json({ success: true, path: body.path, size: bytes.length });
    }
    if ((path === "/files/read" || path === "/files/download") && req.method === "GET") {
      const wanted = query.get("path") ?? "";
      const target = hostPath(sandbox, wanted);
      if (!target) return apiError(403, `permission denied: ${wanted}`, "PERMISSION_DENIED");
      try {
        if (statSync(target).isDirectory()) return apiError(400, `${wanted} is a directory`, "FILE_OPERATION_FAILED");
        const bytes = await readFile(target);
        if (path === "/files/download") return new Response(bytes, { headers: { "content-type": "application/octet-stream" } });
        return json({ content: bytes.toString("utf8"), path: wanted, size: bytes.length });
      } catch {
        return json({ error: `file not found: ${wanted}`, message: `file not found: ${wanted}`, code: "FILE_NOT_FOUND", path: wanted }, 404);
      }
    }
    return apiError(404, `no route ${req.method} ${path}`, "NOT_FOUND");
  }

  async function run(sandbox: FakeHopxSandbox, body: Record<string, any>): Promise<Response> {
    commands.push(body);
    const started = Date.now();
    const argv = [String(body.command), ...((body.args ?? []) as string[])];
    const child = Bun.spawn(inside(sandbox, String(body.workdir || "/workspace"), argv), { env: baseEnv(sandbox, body.env ?? {}), stdin: "ignore", stdout: "pipe", stderr: "pipe", detached: true });
    sandbox.processes.add(child);
    // The agent's own bound (an assumption about its answer: exit_code -1 and an error line).
    let timedOut = false;
    const seconds = Number(body.timeout ?? 30);
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {}
    }, seconds * 1000);
    const [stdout, stderr, code] = await Promise.all([new Response(child.stdout as ReadableStream).text(), new Response(child.stderr as ReadableStream).text(), child.exited]);
    clearTimeout(timer);
    sandbox.processes.delete(child);
    const base = { command: argv.join(" "), pid: child.pid, execution_time: (Date.now() - started) / 1000, timestamp: new Date().toISOString() };
    if (timedOut) return json({ ...base, success: false, stdout, stderr, exit_code: -1, error: `command timed out after ${seconds}s` });
    if (code === MISSING_WORKDIR && /^chdir /.test(stderr)) return json({ ...base, success: false, stdout: "", stderr: "", exit_code: -1, error: stderr.trim() });
    const exit = child.signalCode ? -1 : code;
    return json({ ...base, success: exit === 0, stdout, stderr, exit_code: exit });
  }

  const server: Server<SocketData> = Bun.serve<SocketData>({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    // The agent takes files far past Bun's 128 MiB default (files/write: base64 in JSON).
    maxRequestBodySize: 4 * 1024 ** 3,
    error: (error) => apiError(500, `fake error: ${error.message}`),
    async fetch(req, server) {
      const parsed = new URL(req.url);
      const line = `${req.method} ${parsed.pathname}`;
      requests.push(line);
      const fault = faults.take(line);
      const refused = await faultBefore(fault, req, (status) => apiError(status, `injected ${status}`));
      if (refused) return refused;
      const bearer = /^Bearer (.+)$/.exec(req.headers.get("authorization") ?? "")?.[1];
      let response: Response | undefined;
      if (bearer !== undefined) {
        const sandbox = sandboxes.get(tokens.get(bearer) ?? "");
        response = sandbox ? await agent(req, parsed.pathname, parsed.searchParams, sandbox, server) : apiError(401, "invalid or expired token", "TOKEN_EXPIRED");
      } else {
        response = await control(req, parsed.pathname, parsed.searchParams);
      }
      return faultAfter(fault, response);
    },
    websocket: {
      open(ws: ServerWebSocket<SocketData>) {
        const { sandbox } = ws.data;
        const decoder = new TextDecoder();
        const child = Bun.spawn(inside(sandbox, "/workspace", ["/bin/bash", "-i"]), {
          env: baseEnv(sandbox, { TERM: "xterm" }),
          terminal: {
            cols: 80,
            rows: 24,
            data: (_terminal: unknown, data: Uint8Array) => {
              const text = decoder.decode(data, { stream: true });
              if (text) ws.send(JSON.stringify({ type: "output", data: text }));
            },
          },
        } as Parameters<typeof Bun.spawn>[1]);
        sandbox.processes.add(child);
        ws.data.child = child;
        ws.data.terminal = (child as unknown as { terminal: SocketData["terminal"] }).terminal;
        void child.exited.then(async (code) => {
          sandbox.processes.delete(child);
          await Bun.sleep(50);
          try {
            ws.send(JSON.stringify({ type: "exit", code }));
            ws.close();
          } catch {}
        });
      },
      message(ws: ServerWebSocket<SocketData>, raw: string | Buffer) {
        let message: { type?: string; data?: string; cols?: number; rows?: number };
        try {
          message = JSON.parse(String(raw));
        } catch {
          return;
        }
        if (message.type === "input" && typeof message.data === "string") ws.data.terminal?.write(message.data);
        else if (message.type === "resize" && message.cols && message.rows) ws.data.terminal?.resize(message.cols, message.rows);
      },
      close(ws: ServerWebSocket<SocketData>) {
        ws.data.terminal?.close();
        ws.data.child?.kill("SIGKILL");
      },
    },
  });

  url = `http://127.0.0.1:${server.port}`;
  return {
    url,
    apiKey,
    sandboxes,
    requests,
    arrivals: faults.seen,
    creates,
    commands,
    fault(fault) {
      faults.add(fault);
    },
    clearFaults() {
      faults.clear();
    },
    env: () => ({ HOPX_API_KEY: apiKey, HOPX_API_URL: url }),
    async close() {
      for (const sandbox of [...sandboxes.values()]) kill(sandbox);
      server.stop(true);
      rmSync(root, { recursive: true, force: true });
    },
  };
}


if (import.meta.main) {
  const fake = await startFakeHopx({ pageSize: Number(process.env.FAKE_HOPX_PAGE_SIZE || 100) });
  process.stdout.write(`${JSON.stringify(fake.env())}\n`);
  const stop = () => void fake.close().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
