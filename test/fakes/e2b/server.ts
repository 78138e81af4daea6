/**
 * A fake of E2B on 127.0.0.1 that speaks its real wire protocol (see
 * ../shared/reference/provider-wire.md §1), so the real `e2b` SDK runs against it unchanged with
 * E2B_API_URL and E2B_SANDBOX_URL pointing here:
 *   - the control plane: REST/JSON under /v2/sandboxes and /sandboxes (X-API-KEY);
 *   - envd, the in-sandbox daemon: Connect protocol with the JSON codec (process.Process/*) and
 *     REST for files (/files), routed by the E2b-Sandbox-Id header (X-Access-Token).
 * Each sandbox is a temp directory whose tmp/ and home/ are mounted over /tmp and /home/user (in a
 * private mount namespace, `unshare --mount`) for the commands it runs, which run for real as
 * local processes. State is kept so tests can assert nothing leaked, and faults can be injected.
 */
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join, posix } from "node:path";
import type { Subprocess } from "bun";
import { type Fault, faultAfter, faultBefore, Faults } from "../faults";

export interface FakeProcess {
  pid: number;
  child: Subprocess;
  terminal?: { write(data: Uint8Array | string): void; resize(cols: number, rows: number): void; close(): void };
  argv: string[];
}

export interface FakeSandbox {
  id: string;
  templateID: string;
  metadata: Record<string, string>;
  envVars: Record<string, string>;
  /** Seconds the sandbox lives for (from create or set timeout). */
  timeout: number;
  allowInternetAccess: boolean;
  accessToken: string;
  dir: string;
  startedAt: Date;
  endAt: Date;
  processes: Map<number, FakeProcess>;
  timer: ReturnType<typeof setTimeout>;
  /** Paused: the processes envd started are stopped (SIGSTOP), it does not expire, and envd does not answer until a connect resumes it. */
  state: "running" | "paused";
}

/**
 * A fault applies to requests whose "METHOD /path" is `match` (or starts with it, when `match`
 * ends with "*"), `times` times:
 * an HTTP status with E2B's error body, a dropped connection (before or after the request did its
 * work), or a slow answer.
 */
export type { Fault } from "../faults";

export interface FakeE2BOptions {
  /** Sandboxes per page of GET /v2/sandboxes unless the client asks for a limit. */
  pageSize?: number;
  /** Templates that exist; any name when absent. */
  templates?: string[];
  /** The only API key accepted (X-API-Key); another one gets E2B's 401. */
  apiKey?: string;
}

export interface FakeE2B {
  url: string;
  /** Every sandbox alive right now, by id. */
  sandboxes: Map<string, FakeSandbox>;
  /** Every request as "METHOD /path", in order. */
  requests: string[];
  /** Bodies of every POST /v2/sandboxes that created a sandbox. */
  creates: Array<Record<string, unknown>>;
  /** The argv of every process envd started, in order. */
  started: string[][];
  fault(fault: Fault): void;
  clearFaults(): void;
  /** Pauses a sandbox, as Sandbox.pause() or an auto-pause at its timeout would. */
  pause(id: string): void;
  /** Every request line, in order, with the time it arrived (ms since the epoch). */
  arrivals: ReadonlyArray<{ line: string; at: number }>;
  /** Environment that points the SDK (and the sandboxes binary) at this fake. */
  env(): Record<string, string>;
  close(): Promise<void>;
}

const ENVD_VERSION = "0.5.7";
const encoder = new TextEncoder();

/** Go's ProcessState.String() for a signal death, as envd reports it. */
const GO_SIGNAL_NAMES: Record<string, string> = {
  SIGHUP: "hangup",
  SIGINT: "interrupt",
  SIGQUIT: "quit",
  SIGABRT: "aborted",
  SIGKILL: "killed",
  SIGSEGV: "segmentation fault",
  SIGPIPE: "broken pipe",
  SIGTERM: "terminated",
  SIGUSR1: "user defined signal 1",
};

const CONNECT_STATUS: Record<string, number> = { invalid_argument: 400, unauthenticated: 401, permission_denied: 403, not_found: 404, unavailable: 503, internal: 500 };

/** Mounts the sandbox's directories over /home/user and /tmp, then runs the command there. */
const MOUNT_SCRIPT = [
  'sbx=$1; cwd=$2; shift 2',
  'mount -t tmpfs fake-e2b-home /home && mkdir -p /home/user && mount --bind "$sbx/home" /home/user && mount --bind "$sbx/tmp" /tmp || exit 126',
  'cd "$cwd" || exit 126',
  'exec "$@"',
].join("\n");

function envelope(flags: number, message: unknown): Uint8Array<ArrayBuffer> {
  const json = encoder.encode(JSON.stringify(message));
  const out = new Uint8Array(5 + json.length);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, json.length);
  out.set(json, 5);
  return out;
}

function firstEnvelope(body: Uint8Array): any {
  const length = new DataView(body.buffer, body.byteOffset).getUint32(1);
  return JSON.parse(new TextDecoder().decode(body.subarray(5, 5 + length)));
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");
const json = (body: unknown, status = 200, headers: Record<string, string> = {}) => Response.json(body, { status, headers });
const apiError = (status: number, message: string) => json({ code: status, message }, status);
const connectError = (code: string, message: string) => json({ code, message }, CONNECT_STATUS[code] ?? 500);

function newId(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = crypto.getRandomValues(new Uint8Array(19));
  return "i" + Array.from(bytes, (b) => alphabet[b % alphabet.length]).join("");
}

export async function startFakeE2B(options: FakeE2BOptions = {}): Promise<FakeE2B> {
  const sandboxes = new Map<string, FakeSandbox>();
  const requests: string[] = [];
  const creates: Array<Record<string, unknown>> = [];
  const started: string[][] = [];
  const faults = new Faults();
  const root = mkdtempSync(join(tmpdir(), "fake-e2b-"));
  const apiKey = options.apiKey ?? "e2b_fake_key";
  const asRoot = process.getuid?.() === 0;

  function signalAll(sandbox: FakeSandbox, signal: NodeJS.Signals): void {
    for (const proc of sandbox.processes.values()) {
      try {
        proc.child.kill(signal);
      } catch {}
    }
  }

  function kill(sandbox: FakeSandbox): void {
    clearTimeout(sandbox.timer);
    for (const proc of sandbox.processes.values()) {
      try {
        proc.child.kill("SIGKILL");
      } catch {}
    }
    sandboxes.delete(sandbox.id);
    rmSync(sandbox.dir, { recursive: true, force: true });
  }

  function arm(sandbox: FakeSandbox, seconds: number): void {
    clearTimeout(sandbox.timer);
    sandbox.timeout = seconds;
    sandbox.endAt = new Date(Date.now() + seconds * 1000);
    sandbox.timer = setTimeout(() => kill(sandbox), seconds * 1000);
    sandbox.timer.unref?.();
  }

  const connectAnswer = (sandbox: FakeSandbox) => ({
    sandboxID: sandbox.id,
    templateID: sandbox.templateID,
    clientID: "fake-client",
    envdVersion: ENVD_VERSION,
    envdAccessToken: sandbox.accessToken,
    domain: null,
  });

  const info = (sandbox: FakeSandbox) => ({
    sandboxID: sandbox.id,
    templateID: sandbox.templateID,
    alias: sandbox.templateID,
    clientID: "fake-client",
    metadata: sandbox.metadata,
    startedAt: sandbox.startedAt.toISOString(),
    endAt: sandbox.endAt.toISOString(),
    state: sandbox.state,
    cpuCount: 2,
    memoryMB: 512,
    diskSizeMB: 1024,
    envdVersion: ENVD_VERSION,
  });

  /** A sandbox path -> where it lives on this machine; only /tmp and /home/user exist. */
  function hostPath(sandbox: FakeSandbox, path: string): string | undefined {
    const absolute = posix.resolve("/home/user", path);
    if (absolute === "/tmp" || absolute.startsWith("/tmp/")) return join(sandbox.dir, "tmp", absolute.slice(4));
    if (absolute === "/home/user" || absolute.startsWith("/home/user/")) return join(sandbox.dir, "home", absolute.slice(10));
    return undefined;
  }

  async function control(req: Request, url: URL): Promise<Response> {
    const key = req.headers.get("x-api-key");
    if (!key?.startsWith("e2b_")) return apiError(401, "Invalid API key, it must start with 'e2b_'");
    if (key !== apiKey) return apiError(401, "Invalid API key");
    const path = url.pathname;
    if (req.method === "POST" && path === "/v2/sandboxes") {
      const body = (await req.json()) as Record<string, any>;
      const template = String(body.templateID ?? "base");
      if (options.templates && !options.templates.includes(template)) return apiError(404, `template '${template}' not found`);
      const dir = mkdtempSync(join(root, "sbx-"));
      mkdirSync(join(dir, "tmp"), { mode: 0o1777 });
      mkdirSync(join(dir, "home"));
      const sandbox: FakeSandbox = {
        id: newId(),
        templateID: template,
        metadata: { ...(body.metadata ?? {}) },
        envVars: { ...(body.envVars ?? {}) },
        timeout: 0,
        allowInternetAccess: body.allow_internet_access !== false,
        accessToken: crypto.randomUUID(),
        dir,
        startedAt: new Date(),
        endAt: new Date(),
        processes: new Map(),
        timer: setTimeout(() => {}, 0),
        state: "running",
      };
      arm(sandbox, Number(body.timeout ?? 300));
      sandboxes.set(sandbox.id, sandbox);
      creates.push(body);
      return json(connectAnswer(sandbox), 201);
    }
    if (req.method === "GET" && path === "/v2/sandboxes") {
      // A Map and own-property checks: `__proto__` is a key like any other (as on the real service).
      const wanted = new Map<string, string>();
      // The SDK encodes metadata twice: a URLSearchParams string of encodeURIComponent'd pairs.
      for (const [key, value] of new URLSearchParams(url.searchParams.get("metadata") ?? "")) wanted.set(decodeURIComponent(key), decodeURIComponent(value));
      const all = [...sandboxes.values()]
        .filter((s) => [...wanted].every(([k, v]) => Object.hasOwn(s.metadata, k) && s.metadata[k] === v))
        .sort((a, b) => a.startedAt.getTime() - b.startedAt.getTime() || a.id.localeCompare(b.id));
      const limit = Number(url.searchParams.get("limit") || options.pageSize || 100);
      const offset = Number(url.searchParams.get("nextToken") || 0);
      const page = all.slice(offset, offset + limit);
      const headers: Record<string, string> = offset + limit < all.length ? { "x-next-token": String(offset + limit) } : {};
      return json(page.map(info), 200, headers);
    }
    const match = /^\/(?:v2\/)?sandboxes\/([^/]+)(\/[a-z]+)?$/.exec(path);
    const sandbox = match ? sandboxes.get(match[1]!) : undefined;
    if (match && !sandbox) return apiError(404, `sandbox "${match[1]}" doesn't exist or you don't have access to it`);
    if (sandbox && req.method === "GET" && !match![2]) return json(info(sandbox));
    if (sandbox && req.method === "POST" && match![2] === "/connect") {
      // Like E2B: connecting sets the lifetime to at least `timeout` (default 300 s) from now, never shorter.
      const body = (await req.json().catch(() => ({}))) as { timeout?: number };
      // Connecting to a paused sandbox resumes it (201), with the lifetime asked for.
      if (sandbox.state === "paused") {
        signalAll(sandbox, "SIGCONT");
        sandbox.state = "running";
        arm(sandbox, body.timeout ?? 300);
        return json(connectAnswer(sandbox), 201);
      }
      arm(sandbox, Math.max(body.timeout ?? 300, (sandbox.endAt.getTime() - Date.now()) / 1000));
      return json(connectAnswer(sandbox));
    }
    if (sandbox && req.method === "POST" && match![2] === "/timeout") {
      arm(sandbox, Number(((await req.json()) as { timeout: number }).timeout));
      return new Response(null, { status: 204 });
    }
    if (sandbox && req.method === "DELETE" && !match![2]) {
      kill(sandbox);
      return new Response(null, { status: 204 });
    }
    return apiError(404, `no route ${req.method} ${path}`);
  }

  async function envd(req: Request, url: URL, sandbox: FakeSandbox): Promise<Response> {
    const path = url.pathname;
    if (path === "/health") return new Response(null, { status: 204 });
    if (path === "/files") return files(req, url, sandbox);
    if (path === "/process.Process/Start") return start(sandbox, firstEnvelope(new Uint8Array(await req.arrayBuffer())));
    const body = (await req.json().catch(() => ({}))) as any;
    const proc = sandbox.processes.get(Number(body?.process?.pid));
    if (path === "/process.Process/List") return json({ processes: [...sandbox.processes.values()].map((p) => ({ pid: p.pid, config: { cmd: p.argv[0], args: p.argv.slice(1), envs: {} } })) });
    if (!proc) return connectError("not_found", `process with pid ${body?.process?.pid} not found`);
    switch (path) {
      case "/process.Process/SendInput": {
        const input = body.input ?? {};
        if (input.pty !== undefined) proc.terminal?.write(Buffer.from(input.pty, "base64"));
        else if (input.stdin !== undefined) {
          const sink = proc.child.stdin as import("bun").FileSink | undefined;
          if (!sink || typeof sink === "number") return connectError("failed_precondition", "stdin not enabled or closed");
          sink.write(Buffer.from(input.stdin, "base64"));
          await sink.flush();
        }
        return json({});
      }
      case "/process.Process/CloseStdin": {
        const sink = proc.child.stdin as import("bun").FileSink | undefined;
        if (sink && typeof sink !== "number") await sink.end();
        return json({});
      }
      case "/process.Process/SendSignal": {
        const signal = body.signal === "SIGNAL_SIGTERM" || body.signal === 15 ? "SIGTERM" : "SIGKILL";
        proc.child.kill(signal);
        return json({});
      }
      case "/process.Process/Update": {
        const size = body.pty?.size;
        if (size && proc.terminal) proc.terminal.resize(size.cols, size.rows);
        return json({});
      }
    }
    return connectError("unimplemented", `${path} is not implemented by the fake`);
  }

  function start(sandbox: FakeSandbox, request: any): Response {
    const config = request.process ?? {};
    const cwd = config.cwd ? posix.resolve("/home/user", config.cwd) : "/home/user";
    const cwdOnHost = hostPath(sandbox, cwd) ?? cwd;
    try {
      if (!statSync(cwdOnHost).isDirectory()) throw new Error();
    } catch {
      // A streaming call fails inside the stream: HTTP 200 and an end-stream envelope with the error.
      const error = envelope(2, { error: { code: "invalid_argument", message: `cwd '${cwd}' does not exist` } });
      return new Response(error, { headers: { "content-type": "application/connect+json" } });
    }
    const argv = [String(config.cmd), ...((config.args ?? []) as string[])];
    started.push(argv);
    const isolation = ["unshare", "--mount", ...(sandbox.allowInternetAccess ? [] : ["--net"]), ...(asRoot ? [] : ["--map-root-user"])];
    const full = [...isolation, "/bin/sh", "-c", MOUNT_SCRIPT, "fake-envd", sandbox.dir, cwd, ...argv];
    const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: "/home/user", USER: "user", LOGNAME: "user", ...sandbox.envVars, ...(config.envs ?? {}) };
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const stream = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
    const send = (event: unknown) => {
      try {
        controller.enqueue(envelope(0, { event }));
      } catch {}
    };
    let child: Subprocess;
    let terminal: FakeProcess["terminal"];
    if (request.pty) {
      child = Bun.spawn(full, {
        env,
        terminal: { cols: request.pty.size?.cols ?? 80, rows: request.pty.size?.rows ?? 24, data: (_t: unknown, data: Uint8Array) => send({ data: { pty: b64(data) } }) },
      } as Parameters<typeof Bun.spawn>[1]);
      terminal = (child as unknown as { terminal: FakeProcess["terminal"] }).terminal;
    } else {
      child = Bun.spawn(full, { env, stdin: request.stdin === false ? "ignore" : "pipe", stdout: "pipe", stderr: "pipe" });
    }
    const proc: FakeProcess = { pid: child.pid, child, terminal, argv };
    sandbox.processes.set(proc.pid, proc);
    send({ start: { pid: proc.pid } });
    const pump = async (readable: ReadableStream<Uint8Array> | undefined, key: "stdout" | "stderr") => {
      if (!readable) return;
      for await (const chunk of readable) send({ data: { [key]: b64(chunk) } });
    };
    const pumps = request.pty ? Promise.resolve() : Promise.all([pump(child.stdout as ReadableStream<Uint8Array>, "stdout"), pump(child.stderr as ReadableStream<Uint8Array>, "stderr")]);
    void (async () => {
      const code = await child.exited;
      // Like envd, the end comes when the process exits, even if orphans still hold its pipes.
      await Promise.race([pumps, Bun.sleep(300)]);
      if (request.pty) await Bun.sleep(50);
      terminal?.close();
      sandbox.processes.delete(proc.pid);
      const signal = child.signalCode;
      const end = signal
        ? { exitCode: -1, exited: false, status: `signal: ${GO_SIGNAL_NAMES[signal] ?? String(signal).toLowerCase()}`, error: `signal: ${GO_SIGNAL_NAMES[signal] ?? signal}` }
        : { exitCode: code, exited: true, status: `exit status ${code}`, ...(code !== 0 ? { error: `exit status ${code}` } : {}) };
      send({ end });
      try {
        controller.enqueue(envelope(2, {}));
        controller.close();
      } catch {}
    })();
    return new Response(stream, { headers: { "content-type": "application/connect+json" } });
  }

  async function files(req: Request, url: URL, sandbox: FakeSandbox): Promise<Response> {
    const path = url.searchParams.get("path") ?? "";
    const target = hostPath(sandbox, path);
    if (!target) return apiError(403, `permission denied: ${path} is outside /tmp and /home/user in this fake`);
    if (req.method === "GET") {
      try {
        if (statSync(target).isDirectory()) return apiError(400, `path '${path}' is a directory`);
        return new Response(await readFile(target), { headers: { "content-type": "application/octet-stream" } });
      } catch {
        return apiError(404, `path '${path}' does not exist`);
      }
    }
    if (req.method === "POST") {
      let bytes: Uint8Array;
      if ((req.headers.get("content-type") ?? "").startsWith("multipart/form-data")) {
        const file = (await req.formData()).get("file");
        if (!(file instanceof Blob)) return apiError(400, "missing multipart field 'file'");
        bytes = new Uint8Array(await file.arrayBuffer());
      } else {
        bytes = new Uint8Array(await req.arrayBuffer());
      }
      mkdirSync(dirname(target), { recursive: true });
      await writeFile(target, bytes);
      return json([{ name: basename(path), type: "file", path: posix.resolve("/home/user", path) }]);
    }
    return apiError(405, "method not allowed");
  }

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    // The service takes files far past Bun's 128 MiB default (envd's file upload).
    maxRequestBodySize: 4 * 1024 ** 3,
    error: () => new Response(null, { status: 500 }),
    async fetch(req) {
      const url = new URL(req.url);
      const line = `${req.method} ${url.pathname}`;
      requests.push(line);
      const fault = faults.take(line);
      const refused = await faultBefore(fault, req, (status) => apiError(status, `injected ${status}`));
      if (refused) return refused;
      const sandboxId = req.headers.get("e2b-sandbox-id");
      let response: Response;
      if (sandboxId) {
        const sandbox = sandboxes.get(sandboxId);
        if (!sandbox) response = json({ sandboxId, message: "The sandbox was not found", code: 502 }, 502);
        else if (sandbox.state === "paused") response = json({ sandboxId, message: "The sandbox is paused", code: 502 }, 502);
        else if (req.headers.get("x-access-token") !== sandbox.accessToken) response = apiError(401, "invalid access token");
        else response = await envd(req, url, sandbox);
      } else {
        response = await control(req, url);
      }
      return faultAfter(fault, response);
    },
  });

  const url = `http://127.0.0.1:${server.port}`;
  return {
    url,
    sandboxes,
    requests,
    arrivals: faults.seen,
    creates,
    started,
    pause(id) {
      const sandbox = sandboxes.get(id)!;
      clearTimeout(sandbox.timer);
      signalAll(sandbox, "SIGSTOP");
      sandbox.state = "paused";
    },
    fault(fault) {
      faults.add(fault);
    },
    clearFaults() {
      faults.clear();
    },
    env: () => ({ E2B_API_KEY: apiKey, E2B_API_URL: url, E2B_SANDBOX_URL: url }),
    async close() {
      for (const sandbox of [...sandboxes.values()]) kill(sandbox);
      server.stop(true);
      rmSync(root, { recursive: true, force: true });
    },
  };
}


if (import.meta.main) {
  const fake = await startFakeE2B({ pageSize: Number(process.env.FAKE_E2B_PAGE_SIZE || 100) });
  process.stdout.write(`${JSON.stringify(fake.env())}\n`);
  const stop = () => void fake.close().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
