import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { posix } from "node:path";
import { InterruptedError, ProviderError, SandboxesError } from "../../base/errors";
import { pumpBody, streamOf } from "../shared/http";
import { LABEL_PREFIX, type ArchiveChunk, type ArchiveSource, type Capabilities, type CreateSpec, type ExecOutcome, type ExecSpec, type Provider, type ProviderContext, type PtySession, type PtySpec, type SandboxRecord, type SandboxState } from "../types";
import { resolveEndpoint, type Endpoint } from "./endpoint";
import { Engine, EngineError, type Hijacked } from "./engine";
import { DEFAULT_IMAGE, DOCKER_CAPABILITIES } from "./index";
import { Demultiplexer } from "./multiplex";
import { watchExit } from "./oneshot";
import { pullImage } from "./pull";
import { dict, own } from "../../base/keys";
import { PtyOutput } from "../shared/pty";

const MANAGED = `${LABEL_PREFIX}managed`;
const NAME = `${LABEL_PREFIX}name`;
const USER_LABEL = `${LABEL_PREFIX}label.`;
/** Marks every process of one exec so a timeout or Ctrl-C can find and kill exactly that tree. */
const EXEC_MARK = "SANDBOXES_EXEC_ID";
/** The keepalive's lifetime when no TTL is asked for (~68 years: a number every sleep(1) accepts). */
const FOREVER_SECONDS = 2147483647;
/** Name prefix of a container that destroy() has sent on its way out. */
const REMOVING = "sandboxes-removing-";
/** States of a container on its way out: every sandbox has AutoRemove, so the engine is deleting it. */
const DYING = new Set(["exited", "removing"]);
/** How long a killed command's stream may stay open (an escaped child holding stdout) before we hang up. */
const KILL_GRACE_MS = 2000;

/**
 * Kills every process that carries the exec's mark in its environment, together with its
 * process group: runc starts each exec as a session leader, so children that kept the group
 * die with it even if they cleared their environment. Everything is stopped first, so a shell
 * cannot run its next command in the moment between its child's death and its own.
 */
const KILL_SCRIPT =
  'm="$1"; for s in STOP KILL KILL; do for d in /proc/[0-9]*; do p=${d#/proc/}; [ "$p" = "$$" ] && continue; ' +
  'if tr "\\0" "\\n" <"$d/environ" 2>/dev/null | grep -qxF "$m"; then kill -"$s" -"$p" 2>/dev/null; kill -"$s" "$p" 2>/dev/null; fi; done; done; exit 0';

/**
 * KILL_SCRIPT's work from this machine, for an engine whose processes are ours to see (a local
 * engine as root, or rootless as its user): every process carrying the exec's mark, and its
 * process group, stopped, then killed, through no program of the container's. Returns how many
 * it found: none where the engine runs elsewhere (another machine, a VM), or no /proc.
 */
function killOnHost(mark: string): number {
  const wanted = `${EXEC_MARK}=${mark}`;
  const marked = (): number[] => {
    let entries: string[];
    try {
      entries = readdirSync("/proc");
    } catch {
      return [];
    }
    return entries.filter((entry) => {
      if (!/^\d+$/.test(entry)) return false;
      try {
        return readFileSync(`/proc/${entry}/environ`, "latin1").split("\0").includes(wanted);
      } catch {
        return false; // gone meanwhile, or not ours to read
      }
    }).map(Number);
  };
  // As KILL_SCRIPT: everything stopped first, looking again for what was forked meanwhile.
  const found = new Set<number>();
  for (const signal of ["SIGSTOP", "SIGSTOP", "SIGKILL"] as const) {
    for (const pid of marked()) found.add(pid);
    for (const pid of found) {
      for (const target of [-pid, pid]) {
        try {
          process.kill(target, signal);
        } catch {
          // Not a group leader, or gone.
        }
      }
    }
  }
  return found.size;
}

/** chown -R to the image's USER ("name", "uid", "name:group"…); a bare user also gets its own group. */
const CHOWN_SCRIPT = 'u="$1"; shift; case "$u" in *:*) ;; *) g=$(id -g "$u" 2>/dev/null) && u="$u:$g" ;; esac; exec chown -R -- "$u" "$@"';

/** Sets the terminal size itself before the program starts, so even the first `stty size` sees it. */
const PTY_WRAPPER = 'stty cols "$1" rows "$2" 2>/dev/null; shift 2; exec "$@"';

interface ContainerSummary {
  Id: string;
  Names?: string[];
  Image: string;
  Created: number;
  State: string;
  Labels: Record<string, string> | null;
}

interface ContainerInspect {
  Id: string;
  Name: string;
  Created: string;
  State: { Status: string };
  Config: { Image: string; User?: string; Labels: Record<string, string> | null };
}

interface ExecInspect {
  Running: boolean;
  ExitCode: number | null;
}

export class DockerProvider implements Provider {
  readonly name = "docker";
  readonly capabilities: Capabilities;
  private engineClient?: Engine;
  /** Containers this process created or verified as ours: destroy needs no second look. */
  private readonly ours = new Set<string>();
  private readonly users = new Map<string, string>();

  constructor(
    private readonly ctx: ProviderContext,
    private readonly endpoint?: Endpoint,
  ) {
    // A configured lifetime must bound every container, even if this process dies mid-run; a
    // one-shot container lives as long as its command, so runs take the keepalive path then.
    this.capabilities = this.defaultTtl() === undefined ? DOCKER_CAPABILITIES : { ...DOCKER_CAPABILITIES, oneShot: false };
  }

  private get engine(): Engine {
    if (!this.engineClient) {
      const endpoint = this.endpoint ?? resolveEndpoint(this.ctx.env, this.ctx.config);
      if ("missing" in endpoint) throw new SandboxesError("not_configured", `provider docker is not configured: ${endpoint.missing}`, "user");
      this.engineClient = new Engine(endpoint);
    }
    return this.engineClient;
  }

  private defaultImage(): string {
    const configured = this.ctx.config.image;
    return typeof configured === "string" && configured ? configured : DEFAULT_IMAGE;
  }

  private defaultTtl(): number | undefined {
    const configured = this.ctx.config.ttl_seconds;
    return typeof configured === "number" && configured > 0 ? configured : undefined;
  }

  async create(spec: CreateSpec, signal?: AbortSignal): Promise<SandboxRecord> {
    const image = spec.image || this.defaultImage();
    const ttl = spec.ttlSeconds ?? this.defaultTtl();
    // The keepalive: docker-init as PID 1 reaps orphans and forwards signals; `sleep` ends the
    // container when the TTL runs out, and AutoRemove then deletes it.
    const body = containerConfig(spec, image, { Entrypoint: ["sleep"], Cmd: [String(ttl ?? FOREVER_SECONDS)], Env: spec.env });
    // Our own name, so a container whose id we never learn (Ctrl-C mid-request) can still be found.
    const containerName = newContainerName();
    try {
      const id = await this.createContainer(containerName, body, image, spec, signal);
      await this.start(id, image);
      if (signal?.aborted) throw interrupted(signal);
      return { id, provider: this.name, name: spec.name, state: "running", labels: { ...spec.labels }, createdAt: new Date().toISOString(), image };
    } catch (error) {
      // Nobody will learn this container's id: remove it (by name) before reporting.
      await this.destroy(containerName).catch(() => {});
      if (signal?.aborted && !(error instanceof InterruptedError)) throw interrupted(signal);
      throw error;
    }
  }

  /** POST /containers/create, pulling the image first when the engine lacks it. */
  private async createContainer(name: string, body: object, image: string, spec: CreateSpec, signal?: AbortSignal): Promise<string> {
    let created: { Id: string };
    try {
      created = await this.engine.json("POST", "/containers/create", { query: { name }, json: body });
    } catch (error) {
      if (!(error instanceof EngineError && error.httpStatus === 404 && /no such image/i.test(error.detail))) throw error;
      await pullImage(this.engine, image, signal, spec.onProgress);
      created = await this.engine.json("POST", "/containers/create", { query: { name }, json: body });
    }
    this.ours.add(created.Id);
    return created.Id;
  }

  /**
   * The command is the container's own process (under docker-init), so no keepalive and no
   * exec: create, then attach and subscribe to its exit (both before start, so neither output
   * nor exit can be missed), start, stream. The exit code comes from the engine's `die` event,
   * which arrives well before the wait endpoint (that one also waits for the network teardown).
   * AutoRemove deletes the container once it ends; like destroy(), we do not wait for that.
   */
  async runOnce(spec: CreateSpec, run: ExecSpec): Promise<ExecOutcome & { id: string }> {
    const image = spec.image || this.defaultImage();
    const withStdin = run.stdin !== undefined;
    const body = containerConfig(spec, image, {
      // argv[0] as the entrypoint: the image's ENTRYPOINT and CMD play no part, as in an exec.
      Entrypoint: run.argv.slice(0, 1),
      Cmd: run.argv.slice(1),
      Env: { ...spec.env, ...run.env },
      WorkingDir: run.cwd,
      stdin: withStdin,
    });
    const signal = run.signal;
    const containerName = newContainerName();
    const watching = new AbortController();
    let id: string | undefined;
    let stream: Hijacked | undefined;
    let running = false;
    try {
      id = await this.createContainer(containerName, body, image, spec, signal);
      if (signal?.aborted) throw interrupted(signal);
      const exit = watchExit(this.engine, id, watching.signal);
      const attach = `/containers/${id}/attach?stream=1&stdout=1&stderr=1${withStdin ? "&stdin=1" : ""}`;
      [stream] = await Promise.all([this.engine.hijack(attach), exit.ready]);
      const demux = new Demultiplexer(run.onStdout, run.onStderr);
      stream.onData((chunk) => demux.push(chunk));
      if (signal?.aborted) throw interrupted(signal);
      const startedAt = Date.now();
      await this.start(id, image);
      running = true;
      return { id, ...(await this.withOomKill(id, startedAt, await this.follow(id, stream, exit.code, run))) };
    } catch (error) {
      // Never started: AutoRemove will not apply, so remove it here (by name: the id may be unknown).
      if (!running) await this.destroy(id ?? containerName).catch(() => {});
      if (signal?.aborted && !(error instanceof InterruptedError)) throw interrupted(signal);
      throw error;
    } finally {
      watching.abort();
      stream?.destroy();
    }
  }

  /** Streams a started one-shot container to its end; a timeout or an abort kills it (its whole tree dies with it). */
  private async follow(id: string, stream: Hijacked, exitCode: Promise<number>, run: ExecSpec): Promise<ExecOutcome> {
    const stopStdin = run.stdin === undefined ? () => {} : feedStdin(stream, run.stdin);
    let timedOut = false;
    let stopping: Promise<void> | undefined;
    const stop = () => {
      stopping ??= this.engine
        .request("POST", `/containers/${id}/kill`)
        .catch(() => {}) // 404/409: it has ended already.
        .then(() => Promise.race([stream.ended, Bun.sleep(KILL_GRACE_MS)]));
    };
    const timer = run.timeoutMs ? setTimeout(() => ((timedOut = true), stop()), run.timeoutMs) : undefined;
    const onAbort = () => stop();
    if (run.signal?.aborted) stop();
    run.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await stream.ended;
      if (stopping) await stopping;
      if (timedOut) return { exitCode: 124, timedOut: true };
      if (run.signal?.aborted) return { exitCode: run.signal.reason === "SIGTERM" ? 143 : 130, timedOut: false };
      return { exitCode: await exitCode, timedOut: false };
    } finally {
      if (timer) clearTimeout(timer);
      run.signal?.removeEventListener("abort", onAbort);
      stopStdin();
    }
  }

  private async start(id: string, image: string): Promise<void> {
    try {
      await this.engine.request("POST", `/containers/${id}/start`);
    } catch (error) {
      if (!(error instanceof EngineError)) throw error;
      const hint = /executable file not found|no such file/i.test(error.detail) ? "the image needs sleep(1) and sh to serve as a sandbox" : undefined;
      throw new ProviderError("docker", `cannot start a container from ${image}: ${error.detail}`, error.httpStatus, undefined, hint);
    }
  }

  async get(id: string): Promise<SandboxRecord | null> {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(id)) return null;
    try {
      const info = await this.engine.json<ContainerInspect>("GET", `/containers/${id}/json`);
      const labels = info.Config.Labels ?? {};
      if (labels[MANAGED] !== "true" || DYING.has(info.State.Status) || info.Name.startsWith(`/${REMOVING}`)) return null;
      this.ours.add(info.Id);
      return toRecord(info.Id, info.Config.Image, info.Created, info.State.Status, labels);
    } catch (error) {
      if (error instanceof EngineError && error.httpStatus === 404) return null;
      throw error;
    }
  }

  async list(filter: { labels?: Record<string, string> }): Promise<SandboxRecord[]> {
    const wanted = [`${MANAGED}=true`, ...Object.entries(filter.labels ?? {}).map(([k, v]) => `${USER_LABEL}${k}=${v}`)];
    const containers = await this.engine.json<ContainerSummary[]>("GET", "/containers/json", {
      query: { all: true, filters: JSON.stringify({ label: wanted }) },
    });
    return containers
      .filter((c) => !DYING.has(c.State) && !c.Names?.some((name) => name.startsWith(`/${REMOVING}`)))
      .map((c) => toRecord(c.Id, c.Image, new Date(c.Created * 1000).toISOString(), c.State, c.Labels ?? {}))
      .sort((a, b) => (a.createdAt ?? "").localeCompare(b.createdAt ?? ""));
  }

  /**
   * Marks the container as going (a rename every process sees), then SIGKILL to its init,
   * which ends the container: the engine removes the container by itself (AutoRemove, set on
   * every sandbox). We skip waiting for its network and filesystem teardown (most of a
   * `docker rm -f`); the removal survives our own exit and an engine restart, and get()/list()
   * treat a marked or exited container as gone. One that is not running is removed directly.
   * SIGKILL, not SIGTERM: a namespace's PID 1 ignores every signal it has no handler for, and
   * `start` returns before docker-init has installed its handlers, so a SIGTERM sent right after
   * start (Ctrl-C during create) could be lost, leaving a running container marked as removed,
   * invisible to list() and never deleted. SIGKILL from the host always reaches it.
   */
  async destroy(id: string): Promise<void> {
    if (!this.ours.has(id) && !(await this.get(id))) return;
    // Both at once: the mark only has to beat the container's exit, which takes far longer.
    const mark = this.engine
      .request("POST", `/containers/${id}/rename`, { query: { name: `${REMOVING}${id.replace(/^sandboxes-/, "").slice(0, 12)}-${randomBytes(3).toString("hex")}` } })
      .catch((error) => {
        // Already gone or going; an engine without rename only loses the early mark.
        if (!(error instanceof EngineError)) throw error;
      });
    try {
      await Promise.all([this.engine.request("POST", `/containers/${id}/kill`, { query: { signal: "KILL" } }), mark]);
      return void this.ours.delete(id);
    } catch (error) {
      if (goneOrConflict(error) === "gone") return void this.ours.delete(id);
    }
    for (let attempt = 0; attempt < 100; attempt++) {
      try {
        await this.engine.request("DELETE", `/containers/${id}`, { query: { force: true, v: true } });
        return void this.ours.delete(id);
      } catch (error) {
        if (goneOrConflict(error) === "gone") return void this.ours.delete(id);
        // 409: the engine is already removing it (AutoRemove); wait until it is gone.
        await Bun.sleep(50);
      }
    }
    throw new ProviderError("docker", `container ${id} is still being removed`, 409, undefined, "retry `sandboxes destroy` in a moment");
  }

  /** Creates an exec; a missing or stopped container becomes one clear user error. */
  private async createExec(id: string, body: Record<string, unknown>): Promise<string> {
    try {
      const { Id } = await this.engine.json<{ Id: string }>("POST", `/containers/${id}/exec`, { json: body });
      return Id;
    } catch (error) {
      if (error instanceof EngineError && error.httpStatus === 404) {
        throw new SandboxesError("unknown_sandbox", `no docker sandbox with id ${id}`, "user", "see `sandboxes list -p docker`");
      }
      if (error instanceof EngineError && error.httpStatus === 409) {
        throw new SandboxesError("sandbox_not_running", `docker sandbox ${id} is not running (${error.detail})`, "user", "its lifetime may have run out; create a new one");
      }
      throw error;
    }
  }

  /**
   * Kills the process tree of one exec: from this machine where its processes are ours to see (a
   * local engine), else, or for what is left, through a second, detached exec of the container's
   * own `sh` (which the container may have replaced, or may not have at all).
   */
  private async killMarked(id: string, mark: string, execId: string): Promise<void> {
    if (killOnHost(mark) > 0 && !(await this.stillRunning(execId))) return;
    try {
      const killer = await this.createExec(id, { Cmd: ["sh", "-c", KILL_SCRIPT, "sh", `${EXEC_MARK}=${mark}`], AttachStdout: false, AttachStderr: false });
      await this.engine.request("POST", `/exec/${killer}/start`, { json: { Detach: true, Tty: false } });
      // A detached start returns at once; wait for the killer itself to finish.
      for (let i = 0; i < 100; i++) {
        const state = await this.engine.json<ExecInspect>("GET", `/exec/${killer}/json`);
        if (!state.Running) return;
        await Bun.sleep(20);
      }
    } catch {
      // The container is gone or has no sh: hanging up below is all that is left to do.
    }
  }

  /** Whether the engine still counts an exec as running, a moment after its process was killed. */
  private async stillRunning(execId: string): Promise<boolean> {
    for (let i = 0; i < 20; i++) {
      const state = await this.engine.json<ExecInspect>("GET", `/exec/${execId}/json`).catch(() => undefined);
      if (!state?.Running) return false;
      await Bun.sleep(10);
    }
    return true;
  }

  /** The exit code once the engine has recorded it (the stream can end a moment before). */
  private async exitCode(execId: string): Promise<number> {
    for (let i = 0; i < 200; i++) {
      const state = await this.engine.json<ExecInspect>("GET", `/exec/${execId}/json`);
      if (!state.Running && state.ExitCode !== null) return state.ExitCode;
      await Bun.sleep(10);
    }
    throw new ProviderError("docker", `exec ${execId} ended its stream but the engine never reported an exit code`);
  }

  async exec(id: string, spec: ExecSpec): Promise<ExecOutcome> {
    return this.execAs(id, spec);
  }

  private async execAs(id: string, spec: ExecSpec, user?: string): Promise<ExecOutcome> {
    const startedAt = Date.now();
    const mark = randomBytes(8).toString("hex");
    const execId = await this.createExec(id, {
      ...(user ? { User: user } : {}),
      Cmd: spec.argv,
      Env: [...Object.entries(spec.env).map(([k, v]) => `${k}=${v}`), `${EXEC_MARK}=${mark}`],
      ...(spec.cwd ? { WorkingDir: spec.cwd } : {}),
      AttachStdin: spec.stdin !== undefined,
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
    });
    const stream = await this.engine.hijack(`/exec/${execId}/start`, { Detach: false, Tty: false });
    const demux = new Demultiplexer(spec.onStdout, spec.onStderr);
    stream.onData((chunk) => demux.push(chunk));
    const stopStdin = feedStdin(stream, spec.stdin);

    let timedOut = false;
    let stopping: Promise<void> | undefined;
    const stop = () => {
      stopping ??= this.killMarked(id, mark, execId).then(async () => {
        // An escaped child can hold the stream open; do not wait on it forever.
        await Promise.race([stream.ended, Bun.sleep(KILL_GRACE_MS)]);
        stream.destroy();
      });
    };
    const timer = spec.timeoutMs ? setTimeout(() => ((timedOut = true), stop()), spec.timeoutMs) : undefined;
    // Aborted, the caller wants nothing more: hang up at once, then kill, rather than read and
    // drop the output of a command that floods it for as long as the kill takes (the hung-up
    // stream has ended, so the kill's wait for it is over at once).
    const onAbort = () => {
      stream.destroy();
      stop();
    };
    if (spec.signal?.aborted) onAbort();
    spec.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await stream.ended;
      if (stopping) await stopping;
      if (timedOut) return { exitCode: 124, timedOut: true };
      if (spec.signal?.aborted) return { exitCode: spec.signal.reason === "SIGTERM" ? 143 : 130, timedOut: false };
      return await this.withOomKill(id, startedAt, { exitCode: await this.exitCode(execId), timedOut: false });
    } finally {
      if (timer) clearTimeout(timer);
      spec.signal?.removeEventListener("abort", onAbort);
      stopStdin();
      stream.destroy();
    }
  }

  /**
   * Marks an exit of 137 (SIGKILL) as the memory limit's doing when the kernel's OOM killer
   * struck in the container meanwhile: the engine's `oom` events since `sinceMs`. Not the
   * inspected State.OOMKilled alone: the engine sets it only when the container's own process
   * dies of it (not for an exec's processes), and a one-shot container is being removed by then.
   */
  private async withOomKill(id: string, sinceMs: number, outcome: ExecOutcome): Promise<ExecOutcome> {
    if (outcome.exitCode !== 137 || outcome.timedOut) return outcome;
    try {
      const filters = JSON.stringify({ type: ["container"], container: [id], event: ["oom"] });
      const response = await this.engine.request("GET", "/events", { query: { since: (sinceMs / 1000 - 0.001).toFixed(3), until: (Date.now() / 1000).toFixed(3), filters } });
      const events = (await response.text()).split("\n").filter((line) => line.trim());
      return events.some((line) => (JSON.parse(line) as { Action?: string }).Action === "oom") ? { ...outcome, limitHit: "memory" } : outcome;
    } catch {
      return outcome; // the exit code stands on its own
    }
  }

  async putArchive(id: string, dir: string, tar: ArchiveSource): Promise<void> {
    // Not copyUIDGID: the engine resolves that user on the engine's host, not in the image.
    // The archive's top-level names, read from it as it passes (for the chown below).
    const entries = new Set<string>();
    const { Parser } = await import("tar");
    const put = () => this.engine.request("PUT", `/containers/${id}/archive`, { query: { path: dir }, body: tar.stream().pipeThrough(noteTopLevelNames(new Parser(), entries)), headers: { "content-type": "application/x-tar" } });
    try {
      await put();
    } catch (error) {
      if (!(error instanceof EngineError && error.httpStatus === 404)) throw this.fileError(error, `cannot write files into ${dir}`);
      // The archive API extracts only into an existing directory.
      await this.quietly(id, ["mkdir", "-p", "--", dir], `cannot create ${dir}`);
      await put().catch((again) => {
        throw this.fileError(again, `cannot write files into ${dir}`);
      });
    }
    const user = await this.userOf(id);
    if (user && user !== "root" && user !== "0" && !user.startsWith("0:")) {
      // Extracted files keep the uploader's uid; hand them to the image's user, as root.
      if (entries.size) await this.quietly(id, ["sh", "-c", CHOWN_SCRIPT, "sh", user, ...[...entries].map((e) => posix.join(dir, e))], `cannot hand ${dir} to user ${user}`, "0");
    }
  }

  /** The user commands run as (the image's USER), looked up once per container. */
  private async userOf(id: string): Promise<string> {
    let user = this.users.get(id);
    if (user === undefined) {
      const info = await this.engine.json<ContainerInspect>("GET", `/containers/${id}/json`);
      user = info.Config.User ?? "";
      this.users.set(id, user);
    }
    return user;
  }

  /** Runs a helper command; a failure becomes one line with the command's last error line. */
  private async quietly(id: string, argv: string[], what: string, user?: string): Promise<void> {
    const errors: Uint8Array[] = [];
    const outcome = await this.execAs(id, { argv, env: {}, onStdout: () => {}, onStderr: (c) => errors.push(c) }, user);
    if (outcome.exitCode !== 0) {
      const detail = Buffer.concat(errors).toString("utf8").trim().split("\n").pop() || `exit ${outcome.exitCode}`;
      throw new SandboxesError("file_transfer_failed", `${what}: ${detail}`, "user");
    }
  }

  async getArchive(id: string, path: string, onChunk: ArchiveChunk): Promise<void> {
    try {
      const response = await this.engine.request("GET", `/containers/${id}/archive`, { query: { path } });
      await pumpBody(streamOf(response), onChunk);
    } catch (error) {
      throw this.fileError(error, `cannot read ${path}`);
    }
  }

  private fileError(error: unknown, what: string): unknown {
    if (!(error instanceof EngineError)) return error;
    if (error.httpStatus === 404 && /no such container/i.test(error.detail)) {
      return new SandboxesError("unknown_sandbox", `no docker sandbox with that id: ${error.detail}`, "user", "see `sandboxes list -p docker`");
    }
    return new SandboxesError("file_transfer_failed", `${what}: ${error.detail}`, "user");
  }

  async openPty(id: string, spec: PtySpec): Promise<PtySession> {
    const mark = randomBytes(8).toString("hex");
    const env = { TERM: "xterm-256color", ...spec.env, [EXEC_MARK]: mark };
    const execId = await this.createExec(id, {
      Cmd: ["sh", "-c", PTY_WRAPPER, "sh", String(spec.cols), String(spec.rows), ...spec.argv],
      Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      ...(spec.cwd ? { WorkingDir: spec.cwd } : {}),
      AttachStdin: true,
      AttachStdout: true,
      AttachStderr: true,
      Tty: true,
      ConsoleSize: [spec.rows, spec.cols],
    });
    const stream = await this.engine.hijack(`/exec/${execId}/start`, { Detach: false, Tty: true, ConsoleSize: [spec.rows, spec.cols] });
    const resize = (cols: number, rows: number) =>
      this.engine.request("POST", `/exec/${execId}/resize`, { query: { h: rows, w: cols } }).then(
        () => {},
        () => {},
      );
    void resize(spec.cols, spec.rows);
    const output = new PtyOutput();
    stream.onData(output.push);
    const exited = stream.ended.then(() => this.exitCode(execId)).catch(() => 255);
    return {
      write: (data) => void stream.write(data),
      resize: (cols, rows) => void resize(cols, rows),
      output: output.endWhen(exited),
      exited,
      kill: async () => {
        await this.killMarked(id, mark, execId);
        stream.destroy();
      },
    };
  }

  async close(): Promise<void> {
    this.engineClient?.close();
  }
}

/** Copies stdin into the exec with backpressure; the returned stop() ends it when the command is over. */
function feedStdin(stream: Hijacked, stdin: ExecSpec["stdin"]): () => void {
  if (!(stdin instanceof ReadableStream)) {
    void (stdin?.length ? stream.write(stdin) : Promise.resolve()).finally(() => stream.closeWrite());
    return () => {};
  }
  const reader = stdin.getReader();
  let stopped = false;
  void (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || stopped) break;
        await stream.write(value);
      }
    } catch {
      // The local stdin failed or was cancelled: the command just sees EOF.
    } finally {
      stream.closeWrite();
    }
  })();
  return () => {
    stopped = true;
    // The command is over: stop reading our stdin so a never-ending pipe does not keep us alive.
    reader.cancel().catch(() => {});
  };
}

/** 404: the container is gone; 409: it is not running or already being removed; else rethrow. */
function goneOrConflict(error: unknown): "gone" | "conflict" {
  if (error instanceof EngineError && error.httpStatus === 404) return "gone";
  if (error instanceof EngineError && error.httpStatus === 409) return "conflict";
  throw error;
}

function toRecord(id: string, image: string, createdAt: string, status: string, labels: Record<string, string>): SandboxRecord {
  const user = dict<string>();
  for (const [key, value] of Object.entries(labels)) if (key.startsWith(USER_LABEL)) user[key.slice(USER_LABEL.length)] = value;
  return { id, provider: "docker", name: own(labels, NAME), state: stateOf(status), labels: user, createdAt, image };
}

function stateOf(status: string): SandboxState {
  switch (status) {
    case "running":
      return "running";
    case "created":
    case "restarting":
      return "creating";
    case "paused":
      return "stopped";
    case "dead":
      return "error";
    default:
      return "unknown";
  }
}

function interrupted(signal: AbortSignal): InterruptedError {
  return new InterruptedError(signal.reason === "SIGTERM" ? "SIGTERM" : "SIGINT");
}

function newContainerName(): string {
  return `sandboxes-${randomBytes(6).toString("hex")}`;
}

interface MainProcess {
  Entrypoint: string[];
  Cmd: string[];
  Env: Record<string, string>;
  WorkingDir?: string;
  /** Attach-able stdin that closes when the attached client closes its side. */
  stdin?: boolean;
}

/** The container of a sandbox: our labels, its resources and network, docker-init, AutoRemove. */
function containerConfig(spec: CreateSpec, image: string, main: MainProcess) {
  const labels = dict<string>([[MANAGED, "true"]]);
  for (const [key, value] of Object.entries(spec.labels)) labels[`${USER_LABEL}${key}`] = value;
  if (spec.name) labels[NAME] = spec.name;
  return {
    Image: image,
    Entrypoint: main.Entrypoint,
    Cmd: main.Cmd,
    Env: Object.entries(main.Env).map(([k, v]) => `${k}=${v}`),
    ...(main.WorkingDir ? { WorkingDir: main.WorkingDir } : {}),
    Labels: labels,
    Tty: false,
    OpenStdin: Boolean(main.stdin),
    StdinOnce: Boolean(main.stdin),
    HostConfig: {
      Init: true,
      AutoRemove: true,
      ...(spec.cpus ? { NanoCpus: Math.round(spec.cpus * 1e9) } : {}),
      ...(spec.memoryMb ? { Memory: Math.round(spec.memoryMb * 1024 * 1024) } : {}),
      ...(spec.pids ? { PidsLimit: spec.pids } : {}),
      ...(spec.network?.mode === "none" || spec.network?.mode === "host" ? { NetworkMode: spec.network.mode } : {}),
      ...(spec.mounts?.length ? { Mounts: spec.mounts.map((m) => ({ Type: "bind", Source: m.hostPath, Target: m.sandboxPath, ReadOnly: m.readonly })) } : {}),
    },
  };
}

/**
 * Passes a tar through unchanged, telling `parser` (node-tar's) each chunk on the way, which
 * adds the first part of each entry's path to `names`. Its entries' contents are dropped at once.
 */
function noteTopLevelNames(parser: import("tar").Parser, names: Set<string>): TransformStream<Uint8Array, Uint8Array> {
  parser.on("entry", (entry: import("tar").ReadEntry) => {
    const first = entry.path.replace(/^\.?\/+/, "").split("/")[0];
    if (first) names.add(first);
    entry.resume();
  });
  return new TransformStream({
    transform(chunk, controller) {
      parser.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      controller.enqueue(chunk);
    },
    flush() {
      parser.end();
    },
  });
}
