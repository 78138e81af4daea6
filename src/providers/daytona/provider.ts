import { randomBytes } from "node:crypto";
import { Daytona, type CreateSandboxFromImageParams, type CreateSandboxFromSnapshotParams, type DaytonaError, type Sandbox } from "@daytonaio/sdk";
import { ProviderError, SandboxesError } from "../../base/errors";
import { withExplainedRetry, withRetry } from "../retry";
import { CREATE_TOKEN_KEY, createOnce } from "../shared/create-once";
import { allowListParts } from "../network";
import { LABEL_PREFIX, type CreateSpec, type ExecOutcome, type ExecSpec, type Provider, type PtySession, type PtySpec, type SandboxRecord } from "../types";
import { isRefused, isTransient, translate } from "./errors";
import { DAYTONA_CAPABILITIES, type DaytonaSettings } from "./index";
import { openPty } from "./pty";
import { quote } from "./shell";
import { registerDaytonaRuntimeModules } from "./runtime-shim";
import { dict, hasLabels } from "../../base/keys";
import { stateMap } from "../shared/state";
import { stagedArchives } from "../shared/staged-archive";
import { spoolFrom } from "../shared/spool";
import { notConfigured } from "../shared/settings";

registerDaytonaRuntimeModules();

const NAME = "daytona";
/** Label carrying a per-create token, so a retried create can find what the first attempt made. */
/** Added by the SDK to every sandbox; not the user's. */
const SDK_LANGUAGE_LABEL = "code-toolbox-language";

const encoder = new TextEncoder();
const randomId = (prefix: string) => `${prefix}-${randomBytes(6).toString("hex")}`;

const mapState = stateMap({
  running: ["started"],
  stopped: ["stopped", "stopping", "archived", "archiving", "paused", "pausing"],
  creating: ["creating", "starting", "restoring", "resuming", "pending_build", "building_snapshot", "pulling_snapshot"],
  error: ["error", "build_failed"],
});

function userLabels(labels: Record<string, string> | undefined): Record<string, string> {
  return dict(Object.entries(labels ?? {}).filter(([key]) => !key.startsWith(LABEL_PREFIX) && key !== SDK_LANGUAGE_LABEL));
}

function isGone(sandbox: Sandbox): boolean {
  return sandbox.state === "destroyed" || sandbox.state === "destroying";
}

/**
 * `--image` names a Daytona snapshot or a registry image. `snapshot:NAME` and `image:REF` say
 * which; otherwise a reference with a tag, digest or registry path is an image and a bare name a
 * snapshot.
 */
export function imageSource(image: string | undefined): { snapshot?: string; image?: string } {
  if (!image) return {};
  if (image.startsWith("snapshot:")) return { snapshot: image.slice("snapshot:".length) };
  if (image.startsWith("image:")) return { image: image.slice("image:".length) };
  return /[:/@]/.test(image) ? { image } : { snapshot: image };
}

export class DaytonaProvider implements Provider {
  readonly name = NAME;
  readonly capabilities = DAYTONA_CAPABILITIES;
  private clientInstance?: Daytona;
  private readonly cache = new Map<string, Sandbox>();

  constructor(private readonly settings: DaytonaSettings) {}

  private get client(): Daytona {
    if (!this.settings.apiKey) throw notConfigured("daytona", "set DAYTONA_API_KEY");
    // Every setting is explicit, so the SDK reads neither the environment nor a .env file for them.
    this.clientInstance ??= new Daytona({
      apiKey: this.settings.apiKey,
      apiUrl: this.settings.apiUrl,
      ...(this.settings.target ? { target: this.settings.target } : {}),
      // State by polling: no socket.io connection that would keep a CLI process alive.
      useDeprecatedPolling: true,
      // Bounds a control call that never answers (the SDK's default is a day); create and file
      // transfers set their own, longer deadlines.
      requestTimeoutMs: 60_000,
    });
    return this.clientInstance;
  }

  /** An idempotent call: transient failures are retried with backoff. */
  private idempotent<T>(what: string, call: (attempt: number) => Promise<T>, signal?: AbortSignal): Promise<T> {
    return withExplainedRetry(NAME, what, call, (error) => translate(error, what), isTransient, signal);
  }

  private record(sandbox: Sandbox): SandboxRecord {
    return {
      id: sandbox.id,
      provider: NAME,
      ...(sandbox.name && sandbox.name !== sandbox.id ? { name: sandbox.name } : {}),
      state: mapState(sandbox.state),
      labels: userLabels(sandbox.labels),
      createdAt: sandbox.createdAt,
      ...(sandbox.snapshot ? { image: sandbox.snapshot } : {}),
    };
  }

  async create(spec: CreateSpec, signal?: AbortSignal): Promise<SandboxRecord> {
    const allow = allowListParts(spec.network);
    const token = randomBytes(8).toString("hex");
    const source = imageSource(spec.image);
    if (!source.image && (spec.cpus || spec.memoryMb)) {
      throw new SandboxesError("unsupported", "daytona takes --cpus/--memory only with a registry image: the snapshot fixes them", "usage");
    }
    const minutes = spec.ttlSeconds ? Math.max(1, Math.ceil(spec.ttlSeconds / 60)) : undefined;
    const base = {
      ...(spec.name ? { name: spec.name } : {}),
      labels: { ...spec.labels, [CREATE_TOKEN_KEY]: token },
      envVars: spec.env,
      ...(spec.network?.mode === "none" ? { networkBlockAll: true } : {}),
      ...(allow ? { networkAllowList: allow.cidrs.join(",") } : {}),
      // The lifetime: stopped after that long idle, deleted as soon as it stops, and destroyed
      // after that long in any case.
      ...(minutes ? { autoStopInterval: minutes, autoDeleteInterval: 0, ttlMinutes: minutes } : {}),
    };
    const resources = spec.cpus || spec.memoryMb ? { resources: { ...(spec.cpus ? { cpu: Math.ceil(spec.cpus) } : {}), ...(spec.memoryMb ? { memory: Math.ceil(spec.memoryMb / 1024) } : {}) } } : {};
    const params: CreateSandboxFromImageParams | CreateSandboxFromSnapshotParams = source.image
      ? { ...base, image: source.image, ...resources }
      : { ...base, ...(source.snapshot ? { snapshot: source.snapshot } : {}) };
    // Building from a registry image takes longer than starting a snapshot.
    const timeout = source.image ? 300 : 120;
    let retried = false;
    const sandbox = await createOnce({
      retry: (attempt) => this.idempotent("create sandbox", attempt, signal),
      create: () => this.client.create(params, { timeout }),
      earlier: async () => {
        retried = true;
        return (await this.findByToken(token))[0];
      },
      settle: async (made) => {
        if (made.state !== "started") await this.idempotent("wait for the sandbox to start", () => made.waitUntilStarted(timeout));
      },
      // A sandbox that exists but never started (build failed, start timed out, retries spent
      // after a lost answer) would be nobody's to destroy: remove whatever carries the token.
      cleanUp: () => this.removeDuplicates(token, undefined),
    });
    if (retried) await this.removeDuplicates(token, sandbox.id);
    this.cache.set(sandbox.id, sandbox);
    return this.record(sandbox);
  }

  private async findByToken(token: string): Promise<Sandbox[]> {
    const found: Sandbox[] = [];
    for await (const sandbox of this.client.list({ labels: { [CREATE_TOKEN_KEY]: token } })) if (!isGone(sandbox)) found.push(sandbox);
    return found;
  }

  /** Deletes every sandbox with this create token but `keep`: a create must leave one sandbox or none. */
  private async removeDuplicates(token: string, keep: string | undefined): Promise<void> {
    const all = await this.idempotent("look up the created sandbox", () => this.findByToken(token));
    for (const extra of all.filter((s) => s.id !== keep)) await this.idempotent("delete a duplicate sandbox", () => extra.delete());
  }

  async get(id: string): Promise<SandboxRecord | null> {
    const sandbox = await this.lookup(id);
    return sandbox ? this.record(sandbox) : null;
  }

  private async lookup(id: string): Promise<Sandbox | null> {
    if (!id.trim()) return null;
    try {
      const sandbox = await this.idempotent("get sandbox", async () => {
        try {
          return await this.client.get(id);
        } catch (error) {
          if ((error as DaytonaError).statusCode === 404) return null;
          throw error;
        }
      });
      if (!sandbox || isGone(sandbox)) return null;
      this.cache.set(sandbox.id, sandbox);
      return sandbox;
    } catch (error) {
      if (error instanceof ProviderError && error.status === 404) return null;
      throw error;
    }
  }

  async list(filter: { labels?: Record<string, string> }): Promise<SandboxRecord[]> {
    const query = filter.labels && Object.keys(filter.labels).length ? { labels: filter.labels } : undefined;
    const sandboxes = await this.idempotent("list sandboxes", async () => {
      const all: Sandbox[] = [];
      for await (const sandbox of this.client.list(query)) if (!isGone(sandbox)) all.push(sandbox);
      return all;
    });
    // The filter is the server's; checked again so a server ignoring it cannot widen it.
    return sandboxes.map((s) => this.record(s)).filter((record) => hasLabels(record.labels, filter.labels)).sort((a, b) => (a.createdAt ?? "").localeCompare(b.createdAt ?? ""));
  }

  async destroy(id: string): Promise<void> {
    const sandbox = this.cache.get(id) ?? (await this.lookup(id));
    this.cache.delete(id);
    if (!sandbox) return;
    await this.idempotent("delete sandbox", async () => {
      try {
        await sandbox.delete();
      } catch (error) {
        if ((error as DaytonaError).statusCode !== 404) throw error;
      }
    });
  }

  /** The sandbox, started if Daytona stopped or archived it while idle. */
  private async running(id: string): Promise<Sandbox> {
    const sandbox = this.cache.get(id) ?? (await this.lookup(id));
    if (!sandbox) throw new SandboxesError("unknown_sandbox", `no daytona sandbox with id ${id}`, "user", "see `sandboxes list -p daytona`");
    const state = mapState(sandbox.state);
    if (state === "stopped") await this.idempotent("start sandbox", () => sandbox.start(120));
    else if (state === "creating") await this.idempotent("wait for the sandbox to start", () => sandbox.waitUntilStarted(120));
    else if (state === "error") throw new ProviderError(NAME, `sandbox ${id} is in state ${sandbox.state}${sandbox.errorReason ? `: ${sandbox.errorReason}` : ""}`, undefined, undefined, "destroy it and create another");
    return sandbox;
  }

  async exec(id: string, spec: ExecSpec): Promise<ExecOutcome> {
    const sandbox = await this.running(id);
    if (spec.signal?.aborted) return { exitCode: 130, timedOut: false };
    const stdinPath = await this.stageStdin(sandbox, spec.stdin);
    const sessionId = randomId("sandboxes");
    await this.idempotent("open a session", async () => {
      try {
        await sandbox.process.createSession(sessionId);
      } catch (error) {
        // A retry after a lost answer finds the session made by the first attempt.
        if ((error as DaytonaError).statusCode !== 409) throw error;
      }
    });
    let timedOut = false;
    let interrupted = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let wake: () => void = () => {};
    const stopped = new Promise<void>((resolve) => (wake = resolve));
    const onAbort = () => ((interrupted = true), wake());
    try {
      const command = this.commandLine(spec, stdinPath);
      const sentAt = performance.now();
      const { cmdId } = await withRetry(
        NAME,
        "run the command",
        async () => {
          try {
            return await sandbox.process.executeSessionCommand(sessionId, { command, runAsync: true });
          } catch (error) {
            throw isRefused(error) ? error : translate(error, "run the command");
          }
        },
        isRefused,
        undefined,
        spec.signal,
      );
      if (spec.timeoutMs) timer = setTimeout(() => ((timedOut = true), wake()), spec.timeoutMs);
      spec.signal?.addEventListener("abort", onAbort, { once: true });
      if (spec.signal?.aborted) onAbort();
      const output = this.follow(sandbox, sessionId, cmdId, spec);
      const exitCode = await Promise.race([this.waitForExit(sandbox, sessionId, cmdId, output, () => timedOut || interrupted), stopped.then(() => undefined)]);
      if (timedOut || interrupted) {
        // Deleting the session kills the command; give the log stream a moment to drain.
        await this.deleteSession(sandbox, sessionId);
        await Promise.race([output.done, Bun.sleep(2000)]);
        output.stop();
        return { exitCode: timedOut ? 124 : 130, timedOut };
      }
      await output.finish(() => this.idempotent("read the command's output", () => sandbox.process.getSessionCommandLogs(sessionId, cmdId)));
      // `timeout` in the sandbox may fire just before our timer does: its 124 after the deadline is a timeout too.
      if (exitCode === 124 && spec.timeoutMs && performance.now() - sentAt >= spec.timeoutMs) return { exitCode: 124, timedOut: true };
      return { exitCode: exitCode ?? 1, timedOut: false };
    } finally {
      if (timer) clearTimeout(timer);
      spec.signal?.removeEventListener("abort", onAbort);
      await this.deleteSession(sandbox, sessionId);
      if (stdinPath) await sandbox.fs.deleteFile(stdinPath).catch(() => {});
    }
  }

  /** Streams the command's output to the spec's sinks over the SDK's log WebSocket. */
  private follow(sandbox: Sandbox, sessionId: string, cmdId: string, spec: ExecSpec) {
    let open = true;
    let broken = false;
    let ended = false;
    let outSent = 0;
    let errSent = 0;
    const done = sandbox.process
      .getSessionCommandLogs(
        sessionId,
        cmdId,
        (text) => void (open && ((outSent += text.length), spec.onStdout(encoder.encode(text)))),
        (text) => void (open && ((errSent += text.length), spec.onStderr(encoder.encode(text)))),
      )
      .catch(() => void (broken = true))
      .finally(() => void (ended = true));
    return {
      done,
      get ended() {
        return ended;
      },
      stop: () => void (open = false),
      /** Stops the stream; if it broke off or is still open, the rest comes from the stored logs. */
      async finish(readStored: () => Promise<unknown>): Promise<void> {
        open = false;
        if (ended && !broken) return;
        const logs = (await readStored()) as { stdout: string; stderr: string };
        if (logs.stdout.length > outSent) spec.onStdout(encoder.encode(logs.stdout.slice(outSent)));
        if (logs.stderr.length > errSent) spec.onStderr(encoder.encode(logs.stderr.slice(errSent)));
      },
    };
  }

  /**
   * The log stream normally ends with the command, and the exit code lands a moment later. The
   * exit code is checked now and then while the stream runs too, so a stream that outlives its
   * command cannot hang us.
   */
  private async waitForExit(sandbox: Sandbox, sessionId: string, cmdId: string, output: { done: Promise<void>; ended: boolean }, stop: () => boolean): Promise<number | undefined> {
    let delay = 25;
    while (!stop()) {
      await Promise.race([output.done, Bun.sleep(output.ended ? delay : 1000)]);
      if (stop()) break;
      const command = await this.idempotent("read the exit code", () => sandbox.process.getSessionCommand(sessionId, cmdId));
      if (command.exitCode !== undefined && command.exitCode !== null) {
        if (!output.ended) await Promise.race([output.done, Bun.sleep(2000)]);
        return command.exitCode;
      }
      if (output.ended) delay = Math.min(500, delay * 2);
    }
    return undefined;
  }

  /**
   * One line for the session's shell. `sh -c` keeps the session's own shell untouched; `timeout`
   * (when the image has it) ends the command's whole process group at the deadline even if this
   * process is gone by then, or a daemon's session delete spares the session's children.
   * stdin is the staged file, or nothing.
   */
  private commandLine(spec: ExecSpec, stdinPath: string | undefined): string {
    const program = ["env", ...Object.entries(spec.env).map(([k, v]) => quote(`${k}=${v}`)), ...spec.argv.map(quote)].join(" ");
    const cd = spec.cwd ? `cd ${quote(spec.cwd)} || exit; ` : "";
    const seconds = spec.timeoutMs ? (spec.timeoutMs / 1000).toFixed(3) : undefined;
    // TERM to the whole process group, KILL 2 s later if something survives; exit 124 either way.
    const bounded = seconds ? `if command -v timeout >/dev/null 2>&1; then exec timeout -k 2 ${seconds} ${program}; fi; ` : "";
    const script = `${cd}${bounded}exec ${program}`;
    return `sh -c ${quote(script)} < ${stdinPath ? quote(stdinPath) : "/dev/null"}`;
  }

  /**
   * Daytona sessions take no stdin stream: the bytes go to a file of ours first (spool: read once,
   * sent again by a retry, never held in memory), then up, and are redirected from there.
   */
  private async stageStdin(sandbox: Sandbox, stdin: ExecSpec["stdin"]): Promise<string | undefined> {
    if (!stdin) return undefined;
    const read = await spoolFrom(stdin);
    try {
      if (read.size === 0) return undefined;
      const path = `/tmp/${randomId(".sandboxes-stdin")}`;
      await this.idempotent("upload stdin", () => sandbox.fs.uploadFileStream(read.file().stream(), path));
      return path;
    } finally {
      read.remove();
    }
  }

  private async deleteSession(sandbox: Sandbox, sessionId: string): Promise<void> {
    await sandbox.process.deleteSession(sessionId).catch(() => {});
  }

  /**
   * The tar goes up and comes down as one file (binary safe, through the SDK's multipart upload and
   * download); tar(1) in the sandbox packs or unpacks it.
   */
  private readonly archives = stagedArchives(this, async (id) => {
    const sandbox = await this.running(id);
    return {
      // Streamed (the SDK's chunked multipart upload, read at the pace the connection takes it):
      // memory stays at a few chunks whatever the archive's size. Each attempt reads the source
      // again (stdin cannot be: it says so).
      upload: (path, source, what) => this.idempotent(what, () => sandbox.fs.uploadFileStream(source.stream(), path)),
      download: (path, what) => this.idempotent(what, () => sandbox.fs.downloadFileStream(path)),
    };
  });
  readonly putArchive = this.archives.putArchive;
  readonly getArchive = this.archives.getArchive;

  async openPty(id: string, spec: PtySpec): Promise<PtySession> {
    const sandbox = await this.running(id);
    return openPty(sandbox, spec, (create) => this.idempotent("open a terminal", create));
  }

  async close(): Promise<void> {
    this.cache.clear();
    await this.clientInstance?.[Symbol.asyncDispose]().catch(() => {});
  }
}
