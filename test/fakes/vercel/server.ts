/**
 * A fake of the Vercel Sandbox API on 127.0.0.1. provider-wire.md has no Vercel section, so the
 * protocol below was read out of the official SDK, @vercel/sandbox 3.5.0 (files under
 * node_modules/@vercel/sandbox/dist/; "api-client.js:140" is a line of api-client/api-client.js).
 * The official SDK runs against this fake unchanged (test/fakes/vercel/sdk.test.ts), given a
 * `fetch` that sends https://vercel.com/api/... here.
 *
 * Every request (base-client.js:22-38, api-client.js:63-78):
 *   - base URL https://vercel.com/api (api-client.js:34); `Authorization: Bearer <token>`;
 *     `teamId=<team>` in the query of EVERY call; `content-type: application/json` unless set.
 *   - errors: a non-2xx status with `{ "error": { "code", "message" } }` (base-client.js:70,
 *     sandbox.js:23-37: 404 not found, 410 session stopped, 422 code sandbox_stopping or
 *     sandbox_snapshotting, both answered by resuming and asking again, sandbox.js:613-624).
 *   - the SDK retries 429 and 5xx twice and network errors (with-retry.js:154-210).
 *   - a sandbox is addressed by its NAME; commands and files by the id of its current SESSION.
 *
 * Calls our client makes (src/providers/vercel/provider.ts) and where each comes from:
 *   1. create  POST /v3/sandboxes (no runtime) or POST /v2/sandboxes (with `runtime`)
 *      (api-client.js:86-114, sandbox.js:346-386). Body: { projectId, name?, ports: [], timeout?
 *      (ms), resources?: { vcpus }, runtime? | image?, networkPolicy?: { mode: "deny-all" }, env?,
 *      tags? (at most 5, sandbox.d.ts:92), persistent?, ... }. Answer { sandbox, session, routes }
 *      (validators.js:262-267). Memory is 2048 MB per vCPU (sandbox.d.ts:63, sandbox.js:1083-1086).
 *   2. get     GET /v2/sandboxes/{name}?projectId=&resume=true|false (api-client.js:438-449,
 *      sandbox.js:457-483, 595-609) -> { sandbox, session, routes, resumed? }; 404 when unknown.
 *      With resume=true a stopped sandbox gets a new running session.
 *   3. list    GET /v2/sandboxes?project=&limit=&cursor=&tags=key:value (api-client.js:450-464;
 *      ONE tag at most, api-client.js:551-557) -> { sandboxes: [sandbox], pagination: { count,
 *      next } } (validators.js:268-271); the SDK follows `next` until null (paginator.js).
 *   4. delete  DELETE /v2/sandboxes/{name}?projectId= (api-client.js:495-504, sandbox.js:1132-1140)
 *      -> { sandbox }.
 *   5. run     POST /v2/sandboxes/sessions/{sessionId}/cmd { command, args, cwd?, env, sudo,
 *      wait: true, logs: true, timeout? } (api-client.js:140-189, session.js:234-279). The answer is
 *      `content-type: application/x-ndjson`: first { command } (exitCode null), then log lines
 *      { stream: "stdout"|"stderr", data: <string> } as they come, or { stream: "error", data:
 *      { code, message } }, then { command } again with its exitCode (validators.js:140-178).
 *      Without `wait` the answer is { command } (api-client.js:190-201) and the output is read
 *      with 6. and 7.
 *   6. wait    GET .../sessions/{sessionId}/cmd/{cmdId}?wait=true -> { command } with exitCode
 *      (api-client.js:203-208, command.js:150-167).
 *   7. logs    GET .../sessions/{sessionId}/cmd/{cmdId}/logs -> NDJSON log lines from the start
 *      (api-client.js:359-394, command.js:123-130).
 *   8. kill    POST .../sessions/{sessionId}/cmd/{cmdId}/kill { signal: <number> } -> { command }
 *      (api-client.js:352-358, command.js:252-260; signal names -> numbers in resolveSignal.js).
 *   9. write   POST .../sessions/{sessionId}/fs/write, body a gzipped tar, `content-type:
 *      application/gzip`, `x-cwd: <directory the entries are relative to>` -> {}
 *      (api-client.js:226-242, 306-323, file-writer.js, normalizePath.js; session.js:416-424
 *      writes at "/").
 *  10. read    POST .../sessions/{sessionId}/fs/read { path, cwd? } -> the bytes as
 *      `application/octet-stream`, or 404 when there is no such file (api-client.js:324-351).
 * Our client does not stdin (no such call in 3.5.0), PTY (POST .../interactive only hands out a
 * WebSocket whose protocol the SDK does not contain), snapshots, stop or extend-timeout.
 *
 * Assumptions the SDK does not settle, made the same way here and in our client: a command killed
 * by signal N ends with exitCode 128+N; kill signals only the command's own process; a command's
 * cwd must exist; the sandbox env (create) applies to every command and a command's env adds to it;
 * a second create under a taken name is 409.
 *
 * Each sandbox is a temp directory whose work/ and tmp/ are mounted over /home/vercel-sandbox and
 * /tmp in a mount namespace of its own, held by one process; every command enters that namespace
 * and runs for real (and in a network namespace with nothing in it under deny-all). (The real default directory is /vercel/sandbox; a fake cannot make /vercel
 * on this machine, so its session `cwd` says /home/vercel-sandbox.) A session that reaches its
 * timeout stops: its commands are killed, the files stay (persistent), and resume starts a new one.
 */
import { mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { type Fault, faultAfter, faultBefore, Faults } from "../faults";

export interface FakeCommand {
  id: string;
  name: string;
  args: string[];
  cwd: string;
  sessionId: string;
  startedAt: number;
  exitCode: number | null;
  durationMs?: number;
  child: Subprocess;
  logs: Array<{ stream: "stdout" | "stderr"; data: string }>;
  /** Resolves once the process exited and its output was read. */
  done: Promise<void>;
  listeners: Set<() => void>;
}

export interface FakeSession {
  id: string;
  status: "running" | "stopping" | "stopped";
  createdAt: number;
  startedAt: number;
  stoppedAt?: number;
  timeout: number;
  timer?: ReturnType<typeof setTimeout>;
  commands: Map<string, FakeCommand>;
}

export interface FakeVercelSandbox {
  name: string;
  projectId: string;
  body: Record<string, any>;
  env: Record<string, string>;
  tags: Record<string, string>;
  vcpus: number;
  createdAt: number;
  dir: string;
  holder: Subprocess;
  namespace: string;
  session: FakeSession;
}

export type { Fault } from "../faults";

export interface FakeVercelOptions {
  pageSize?: number;
  token?: string;
  teamId?: string;
  projectId?: string;
}

export interface FakeVercel {
  url: string;
  token: string;
  teamId: string;
  projectId: string;
  /** Every sandbox that exists right now (running or stopped), by name. */
  sandboxes: Map<string, FakeVercelSandbox>;
  /** Every request as "METHOD /path", in order. */
  requests: string[];
  /** Query strings of every request, in the same order. */
  queries: URLSearchParams[];
  /** Bodies of every create that made a sandbox. */
  creates: Array<Record<string, any>>;
  /** Bodies of every command started. */
  commands: Array<Record<string, any>>;
  fault(fault: Fault): void;
  clearFaults(): void;
  /** Every request line, in order, with the time it arrived (ms since the epoch). */
  arrivals: ReadonlyArray<{ line: string; at: number }>;
  /** Processes running right now in any sandbox. */
  running(): number;
  /**
   * Puts a sandbox's session in "stopping", as when its timeout has just passed: its commands are
   * killed, calls on the session get 422 sandbox_stopping, and a lookup with resume=true lets the
   * stop finish and starts a new session.
   */
  beginStopping(name: string): void;
  /** The next command sent to a session finds it stopping, as if its timeout passed just then. */
  stopAtNextCommand(): void;
  env(): Record<string, string>;
  close(): Promise<void>;
}

const SIGNALS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGUSR1: 10, SIGUSR2: 12, SIGPIPE: 13, SIGTERM: 15 };
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_-]{0,62}$/;
const HOME = "/home/vercel-sandbox";
const DEFAULT_TIMEOUT = 300_000;

const HOLDER_SCRIPT = [
  `mount -t tmpfs fake-vercel-home /home && mkdir -p ${HOME} && mount --bind "$1/work" ${HOME} && mount --bind "$1/tmp" /tmp || exit 1`,
  "echo ready",
  "exec sleep 2147483647",
].join("\n");

/** Runs each command inside the namespace: in its directory, as the rest of argv. */
const ENTER_SCRIPT = 'cd "$1" 2>/dev/null || { echo "fake-vercel: chdir $1: no such file or directory" >&2; exit 1; }; shift; exec "$@"';

const json = (body: unknown, status = 200) => Response.json(body, { status });
const apiError = (status: number, code: string, message: string) => json({ error: { code, message } }, status);

export async function startFakeVercel(options: FakeVercelOptions = {}): Promise<FakeVercel> {
  const token = options.token ?? "fake-vercel-token";
  const teamId = options.teamId ?? "team_fake";
  const projectId = options.projectId ?? "prj_fake";
  const sandboxes = new Map<string, FakeVercelSandbox>();
  const sessions = new Map<string, FakeVercelSandbox>();
  const requests: string[] = [];
  const queries: URLSearchParams[] = [];
  const creates: Array<Record<string, any>> = [];
  const commands: Array<Record<string, any>> = [];
  const faults = new Faults();
  let stopAtNextCommand = false;
  const root = mkdtempSync(join(tmpdir(), "fake-vercel-"));
  const asRoot = process.getuid?.() === 0;

  function processesOf(sandbox: FakeVercelSandbox): number[] {
    const pids: number[] = [];
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry) || Number(entry) === sandbox.holder.pid) continue;
      try {
        if (readlinkSync(`/proc/${entry}/ns/mnt`) === sandbox.namespace) pids.push(Number(entry));
      } catch {}
    }
    return pids;
  }

  function killAll(sandbox: FakeVercelSandbox): void {
    for (const pid of processesOf(sandbox)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
  }

  function stopSession(sandbox: FakeVercelSandbox): void {
    const session = sandbox.session;
    if (session.status === "stopped") return;
    clearTimeout(session.timer);
    session.status = "stopped";
    session.stoppedAt = Date.now();
    killAll(sandbox);
  }

  function beginStopping(sandbox: FakeVercelSandbox): void {
    clearTimeout(sandbox.session.timer);
    sandbox.session.status = "stopping";
    killAll(sandbox);
  }

  function destroy(sandbox: FakeVercelSandbox): void {
    stopSession(sandbox);
    sandboxes.delete(sandbox.name);
    try {
      sandbox.holder.kill("SIGKILL");
    } catch {}
    rmSync(sandbox.dir, { recursive: true, force: true });
  }

  function newSession(sandbox: Pick<FakeVercelSandbox, "name">, timeout: number): FakeSession {
    const now = Date.now();
    const session: FakeSession = { id: `sbx_${crypto.randomUUID().replace(/-/g, "")}`, status: "running", createdAt: now, startedAt: now, timeout, commands: new Map() };
    session.timer = setTimeout(() => {
      const owner = sandboxes.get(sandbox.name);
      if (owner?.session === session) stopSession(owner);
    }, timeout);
    session.timer.unref?.();
    return session;
  }

  const sessionJson = (sandbox: FakeVercelSandbox) => {
    const s = sandbox.session;
    return {
      id: s.id,
      memory: sandbox.vcpus * 2048,
      vcpus: sandbox.vcpus,
      region: "iad1",
      ...(sandbox.body.runtime ? { runtime: sandbox.body.runtime } : {}),
      timeout: s.timeout,
      status: s.status,
      requestedAt: s.createdAt,
      startedAt: s.startedAt,
      ...(s.stoppedAt ? { stoppedAt: s.stoppedAt } : {}),
      createdAt: s.createdAt,
      cwd: HOME,
      updatedAt: s.stoppedAt ?? s.startedAt,
      networkPolicy: sandbox.body.networkPolicy ?? { mode: "allow-all" },
    };
  };

  const sandboxJson = (sandbox: FakeVercelSandbox) => ({
    name: sandbox.name,
    persistent: sandbox.body.persistent ?? true,
    region: "iad1",
    vcpus: sandbox.vcpus,
    memory: sandbox.vcpus * 2048,
    ...(sandbox.body.runtime ? { runtime: sandbox.body.runtime } : { image: `${sandbox.body.image ?? "vercel/sandbox/universal"}@sha256:${"0".repeat(64)}` }),
    timeout: sandbox.session.timeout,
    networkPolicy: sandbox.body.networkPolicy ?? { mode: "allow-all" },
    createdAt: sandbox.createdAt,
    updatedAt: sandbox.createdAt,
    currentSessionId: sandbox.session.id,
    status: sandbox.session.status,
    cwd: HOME,
    tags: sandbox.tags,
  });

  const full = (sandbox: FakeVercelSandbox, extra: Record<string, unknown> = {}) => json({ sandbox: sandboxJson(sandbox), session: sessionJson(sandbox), routes: [], ...extra });

  async function create(body: Record<string, any>, endpoint: "v2" | "v3"): Promise<Response> {
    if (body.projectId !== projectId) return apiError(404, "project_not_found", `project ${body.projectId} not found`);
    if (endpoint === "v2" && !body.runtime) return apiError(400, "bad_request", "runtime is required on /v2/sandboxes");
    if (body.runtime && !["node22", "node24", "node26", "python3.13"].includes(body.runtime)) return apiError(400, "bad_request", `unknown runtime "${body.runtime}"`);
    if (body.image === "no-such-image") return apiError(400, "image_not_found", `image "${body.image}" not found`);
    const name = String(body.name ?? `sbx-${crypto.randomUUID().slice(0, 12)}`);
    if (!NAME.test(name)) return apiError(400, "bad_request", `invalid sandbox name "${name}"`);
    if (sandboxes.has(name)) return apiError(409, "sandbox_already_exists", `a sandbox named "${name}" already exists`);
    const tags = { ...(body.tags ?? {}) } as Record<string, string>;
    if (Object.keys(tags).length > 5) return apiError(400, "bad_request", "a sandbox has at most 5 tags");
    const vcpus = body.resources?.vcpus ?? 2;
    if (![1, 2, 4, 8].includes(vcpus)) return apiError(400, "bad_request", `resources.vcpus must be 1, 2, 4 or 8, not ${vcpus}`);
    const dir = mkdtempSync(join(root, "sandbox-"));
    mkdirSync(join(dir, "tmp"));
    chmodSync(join(dir, "tmp"), 0o1777);
    mkdirSync(join(dir, "work"));
        // deny-all is real here: the sandbox gets a network namespace of its own with nothing in it.
    const isolated = body.networkPolicy?.mode === "deny-all";
    const holder = Bun.spawn(["unshare", "--mount", ...(isolated ? ["--net"] : []), ...(asRoot ? [] : ["--map-root-user"]), "/bin/sh", "-c", HOLDER_SCRIPT, "fake-vercel", dir], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const reader = (holder.stdout as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    reader.releaseLock();
    if (first.done || !new TextDecoder().decode(first.value).startsWith("ready")) {
      const why = await new Response(holder.stderr as ReadableStream<Uint8Array>).text();
      rmSync(dir, { recursive: true, force: true });
      return apiError(500, "internal", `fake could not make the sandbox's namespace: ${why.trim()}`);
    }
    const sandbox: FakeVercelSandbox = {
      name,
      projectId,
      body,
      env: { ...(body.env ?? {}) },
      tags,
      vcpus,
      createdAt: Date.now(),
      dir,
      holder,
      namespace: readlinkSync(`/proc/${holder.pid}/ns/mnt`),
      session: newSession({ name }, typeof body.timeout === "number" ? body.timeout : DEFAULT_TIMEOUT),
    };
    sandboxes.set(name, sandbox);
    sessions.set(sandbox.session.id, sandbox);
    creates.push(body);
    return full(sandbox);
  }

  /** A process inside the sandbox's namespace. */
  function spawnIn(sandbox: FakeVercelSandbox, cwd: string, argv: string[], env: Record<string, string>, stdin: "ignore" | "pipe" = "ignore"): Subprocess<typeof stdin, "pipe", "pipe"> {
    const base = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME, USER: "vercel-sandbox", LOGNAME: "vercel-sandbox", ...sandbox.env, ...env };
    return Bun.spawn(["nsenter", "--target", String(sandbox.holder.pid), "--mount", "--net", ...(asRoot ? [] : ["--user", "--preserve-credentials"]), "/bin/sh", "-c", ENTER_SCRIPT, "fake-vercel", cwd, ...argv], { env: base, stdin, stdout: "pipe", stderr: "pipe" });
  }

  function startCommand(sandbox: FakeVercelSandbox, body: Record<string, any>): FakeCommand {
    commands.push(body);
    const session = sandbox.session;
    const cwd = typeof body.cwd === "string" && body.cwd ? body.cwd : HOME;
    const args = Array.isArray(body.args) ? body.args.map(String) : [];
    const child = spawnIn(sandbox, cwd, [String(body.command), ...args], body.env ?? {});
    const command: FakeCommand = { id: `cmd_${crypto.randomUUID().replace(/-/g, "")}`, name: String(body.command), args, cwd, sessionId: session.id, startedAt: Date.now(), exitCode: null, child, logs: [], done: Promise.resolve(), listeners: new Set() };
    const notify = () => command.listeners.forEach((listener) => listener());
    const pump = async (readable: ReadableStream<Uint8Array>, stream: "stdout" | "stderr") => {
      // Strings on the wire: multi-byte characters split across reads are kept whole.
      const decoder = new TextDecoder();
      for await (const chunk of readable) {
        const data = decoder.decode(chunk, { stream: true });
        if (data) command.logs.push({ stream, data }), notify();
      }
      const rest = decoder.decode();
      if (rest) command.logs.push({ stream, data: rest }), notify();
    };
    const pumps = Promise.all([pump(child.stdout, "stdout"), pump(child.stderr, "stderr")]);
    if (typeof body.timeout === "number") setTimeout(() => child.kill("SIGKILL"), body.timeout).unref?.();
    command.done = (async () => {
      const code = await child.exited;
      // The end comes when the process exits, even if orphans still hold its pipes.
      await Promise.race([pumps, Bun.sleep(300)]);
      command.exitCode = child.signalCode ? 128 + (SIGNALS[child.signalCode] ?? 9) : code;
      command.durationMs = Date.now() - command.startedAt;
      notify();
    })();
    session.commands.set(command.id, command);
    return command;
  }

  const commandJson = (c: FakeCommand) => ({ id: c.id, name: c.name, args: c.args, cwd: c.cwd, sessionId: c.sessionId, exitCode: c.exitCode, startedAt: c.startedAt, ...(c.durationMs !== undefined ? { durationMs: c.durationMs } : {}) });

  /** NDJSON: optionally the command first, then its logs from the start, then (optionally) the finished command. */
  function stream(command: FakeCommand, framing: { head: boolean; tail: boolean }): Response {
    const encoder = new TextEncoder();
    let listener: (() => void) | undefined;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        const line = (value: unknown) => controller.enqueue(encoder.encode(`${JSON.stringify(value)}\n`));
        if (framing.head) line({ command: commandJson({ ...command, exitCode: null }) });
        let sent = 0;
        const flush = () => {
          while (sent < command.logs.length) line(command.logs[sent++]);
          if (command.exitCode !== null) {
            if (framing.tail) line({ command: commandJson(command) });
            command.listeners.delete(listener!);
            controller.close();
          }
        };
        listener = flush;
        command.listeners.add(flush);
        flush();
      },
      cancel() {
        if (listener) command.listeners.delete(listener);
      },
    });
    return new Response(body, { headers: { "content-type": "application/x-ndjson" } });
  }

  async function sessionCall(req: Request, url: URL, sandbox: FakeVercelSandbox, rest: string): Promise<Response> {
    const session = sandbox.session;
    if (rest === "/cmd" && req.method === "POST") {
      const body = (await req.json()) as Record<string, any>;
      if (typeof body.command !== "string" || !body.command) return apiError(400, "bad_request", "command is required");
      const command = startCommand(sandbox, body);
      if (body.wait) return stream(command, { head: true, tail: true });
      return json({ command: commandJson(command) });
    }
    const cmd = /^\/cmd\/([^/]+)(\/logs|\/kill)?$/.exec(rest);
    if (cmd) {
      const command = session.commands.get(decodeURIComponent(cmd[1]!));
      if (!command) return apiError(404, "command_not_found", `command ${cmd[1]} not found`);
      if (!cmd[2] && req.method === "GET") {
        if (url.searchParams.get("wait") === "true") await command.done;
        return json({ command: commandJson(command) });
      }
      if (cmd[2] === "/logs" && req.method === "GET") return stream(command, { head: false, tail: false });
      if (cmd[2] === "/kill" && req.method === "POST") {
        const { signal } = (await req.json()) as { signal?: unknown };
        if (typeof signal !== "number") return apiError(400, "bad_request", "signal must be a number");
        if (command.exitCode !== null) return apiError(400, "command_finished", `command ${command.id} is not running`);
        try {
          process.kill(command.child.pid, signal);
        } catch {}
        return json({ command: commandJson(command) });
      }
    }
    if (rest === "/fs/write" && req.method === "POST") {
      if (req.headers.get("content-type") !== "application/gzip") return apiError(400, "bad_request", "expected application/gzip");
      const cwd = req.headers.get("x-cwd") || HOME;
      const archive = new Uint8Array(await req.arrayBuffer());
      const tar = spawnIn(sandbox, cwd, ["tar", "-xz", "--no-same-owner", "-f", "-"], {}, "pipe");
      const sink = tar.stdin as import("bun").FileSink;
      sink.write(archive);
      await sink.end();
      const [code, err] = await Promise.all([tar.exited, new Response(tar.stderr).text()]);
      if (code !== 0) return apiError(400, "write_failed", err.trim() || `tar exited ${code}`);
      return json({});
    }
    if (rest === "/fs/read" && req.method === "POST") {
      const { path, cwd } = (await req.json()) as { path?: string; cwd?: string };
      const cat = spawnIn(sandbox, cwd || HOME, ["sh", "-c", '[ -f "$1" ] || exit 44; exec cat "$1"', "read", String(path)], {});
      const [code, bytes] = await Promise.all([cat.exited, new Response(cat.stdout).arrayBuffer()]);
      if (code === 44) return apiError(404, "file_not_found", `file ${path} not found`);
      if (code !== 0) return apiError(400, "read_failed", `cannot read ${path}`);
      return new Response(bytes, { headers: { "content-type": "application/octet-stream" } });
    }
    return apiError(404, "not_found", `no route ${req.method} ${url.pathname}`);
  }

  async function api(req: Request, url: URL): Promise<Response> {
    const path = url.pathname;
    if (req.method === "POST" && (path === "/v2/sandboxes" || path === "/v3/sandboxes")) return create((await req.json()) as Record<string, any>, path === "/v2/sandboxes" ? "v2" : "v3");
    if (req.method === "GET" && path === "/v2/sandboxes") {
      if (url.searchParams.get("project") !== projectId) return apiError(404, "project_not_found", "project not found");
      const tagFilters = url.searchParams.getAll("tags").map((t) => [t.slice(0, t.indexOf(":")), t.slice(t.indexOf(":") + 1)] as const);
      if (tagFilters.length > 1) return apiError(400, "bad_request", "filter by one tag at most");
      const all = [...sandboxes.values()]
        .filter((s) => tagFilters.every(([k, v]) => Object.hasOwn(s.tags, k) && s.tags[k] === v))
        .sort((a, b) => a.createdAt - b.createdAt || a.name.localeCompare(b.name));
      const limit = Math.min(Number(url.searchParams.get("limit") || 50), options.pageSize ?? 50);
      const offset = Number(url.searchParams.get("cursor") || 0);
      const page = all.slice(offset, offset + limit);
      const more = offset + limit < all.length;
      return json({ sandboxes: page.map(sandboxJson), pagination: { count: page.length, next: more ? String(offset + limit) : null } });
    }
    const bySession = /^\/v2\/sandboxes\/sessions\/([^/]+)(\/.*)$/.exec(path);
    if (bySession) {
      const sandbox = sessions.get(decodeURIComponent(bySession[1]!));
      if (!sandbox || !sandboxes.has(sandbox.name)) return apiError(404, "session_not_found", `session ${bySession[1]} not found`);
      if (stopAtNextCommand && bySession[2] === "/cmd" && req.method === "POST") {
        stopAtNextCommand = false;
        beginStopping(sandbox);
      }
      // sandbox.js:23-37: a session on its way down is 422 sandbox_stopping, one that is down 410.
      if (sandbox.session.id === decodeURIComponent(bySession[1]!) && sandbox.session.status === "stopping") return apiError(422, "sandbox_stopping", `session ${bySession[1]} is stopping`);
      if (sandbox.session.id !== decodeURIComponent(bySession[1]!) || sandbox.session.status !== "running") return apiError(410, "sandbox_stopped", `session ${bySession[1]} has stopped`);
      return sessionCall(req, url, sandbox, bySession[2]!);
    }
    const byName = /^\/v2\/sandboxes\/([^/]+)$/.exec(path);
    if (byName) {
      const sandbox = sandboxes.get(decodeURIComponent(byName[1]!));
      if (url.searchParams.get("projectId") !== projectId) return apiError(404, "project_not_found", "project not found");
      if (!sandbox) return apiError(404, "sandbox_not_found", `sandbox ${decodeURIComponent(byName[1]!)} not found`);
      if (req.method === "GET") {
        let resumed = false;
        if (url.searchParams.get("resume") === "true" && sandbox.session.status === "stopping") stopSession(sandbox);
        if (url.searchParams.get("resume") === "true" && sandbox.session.status === "stopped") {
          sandbox.session = newSession(sandbox, sandbox.session.timeout);
          sessions.set(sandbox.session.id, sandbox);
          resumed = true;
        }
        return full(sandbox, url.searchParams.has("resume") ? { resumed } : {});
      }
      if (req.method === "DELETE") {
        destroy(sandbox);
        return json({ sandbox: sandboxJson(sandbox) });
      }
    }
    return apiError(404, "not_found", `no route ${req.method} ${path}`);
  }

  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    idleTimeout: 0,
    // The service takes files far past Bun's 128 MiB default (fs/write: one gzipped tar per file).
    maxRequestBodySize: 4 * 1024 ** 3,
    error: () => new Response(null, { status: 500 }),
    async fetch(req) {
      const url = new URL(req.url);
      const line = `${req.method} ${url.pathname}`;
      requests.push(line);
      queries.push(url.searchParams);
      const fault = faults.take(line);
      if (req.headers.get("authorization") !== `Bearer ${token}`) return apiError(403, "forbidden", "Not authorized");
      if (url.searchParams.get("teamId") !== teamId) return apiError(403, "forbidden", "You don't have access to this team");
      const refused = await faultBefore(fault, req, (status) => apiError(status, "injected", `injected ${status}`));
      if (refused) return refused;
      const response = await api(req, url);
      return faultAfter(fault, response);
    },
  });

  const url = `http://127.0.0.1:${server.port}`;
  return {
    url,
    token,
    teamId,
    projectId,
    sandboxes,
    requests,
    queries,
    arrivals: faults.seen,
    creates,
    commands,
    fault(fault) {
      faults.add(fault);
    },
    clearFaults() {
      faults.clear();
    },
    running: () => [...sandboxes.values()].reduce((n, s) => n + processesOf(s).length, 0),
    beginStopping: (name) => beginStopping(sandboxes.get(name)!),
    stopAtNextCommand() {
      stopAtNextCommand = true;
    },
    env: () => ({ VERCEL_TOKEN: token, VERCEL_TEAM_ID: teamId, VERCEL_PROJECT_ID: projectId, VERCEL_API_URL: url }),
    async close() {
      for (const sandbox of [...sandboxes.values()]) destroy(sandbox);
      server.stop(true);
      rmSync(root, { recursive: true, force: true });
    },
  };
}


if (import.meta.main) {
  const fake = await startFakeVercel({ pageSize: Number(process.env.FAKE_VERCEL_PAGE_SIZE || 50) });
  process.stdout.write(`${JSON.stringify(fake.env())}\n`);
  const stop = () => void fake.close().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
