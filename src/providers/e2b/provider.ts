import { randomUUID } from "node:crypto";
import type { Sandbox, SandboxInfo } from "e2b";
import { ProviderError, SandboxesError } from "../../base/errors";
import { DEFAULT_RETRY, delayBeforeRetry, isTransientStatus, withExplainedRetry } from "../retry";
import { allowListParts } from "../network";
import { type CreateSpec, type ExecOutcome, type ExecSpec, LABEL_PREFIX, type Provider, type ProviderContext, type PtySession, type PtySpec, type SandboxRecord, type SandboxState } from "../types";
import { E2B_CAPABILITIES, e2bApiKey } from "./index";
import { notConfigured, seconds, setting } from "../shared/settings";
import { shellQuote as quote } from "../../base/quote";
import { feedInChunks } from "../stdin";
import { PtyOutput } from "../shared/pty";
import { stagedArchives } from "../shared/staged-archive";
import { CREATE_TOKEN_KEY as TOKEN_KEY, createOnce } from "../shared/create-once";
import { dict, hasLabels, own } from "../../base/keys";

type Sdk = typeof import("e2b");

/** Our own keys inside E2B sandbox metadata; user labels never start with LABEL_PREFIX. */
const NAME_KEY = `${LABEL_PREFIX}name`;

/** E2B's own default lifetime; `--ttl` or `ttl` in config.toml change it. */
const DEFAULT_TTL_SECONDS = 300;
const STDIN_CHUNK = 64 * 1024;

/**
 * Runs argv in a process group of its own, so a timeout can kill the whole tree. argv runs as a
 * child of `sh`, whose `$?` turns a signal death into 128+N.
 */
const GROUP_WRAPPER = `if command -v setsid >/dev/null 2>&1; then exec setsid /bin/sh -c '"$@"; exit $?' sandboxes "$@"; else "$@"; exit $?; fi`;


/** The `bash -l -c` line the SDK runs: our wrapper with argv as its positional parameters. */
export function commandLine(argv: string[]): string {
  return `set -- ${argv.map(quote).join(" ")}; ${GROUP_WRAPPER}`;
}

/** Go's ProcessState.String() names for the signals a command is likely to die of. */
const GO_SIGNAL_NAMES: Record<string, number> = {
  hangup: 1,
  interrupt: 2,
  quit: 3,
  "illegal instruction": 4,
  aborted: 6,
  "bus error": 7,
  "floating point exception": 8,
  killed: 9,
  "segmentation fault": 11,
  "broken pipe": 13,
  "alarm clock": 14,
  terminated: 15,
};

/** An envd end event -> our exit code: 0-255, or 128+N for a signal. */
export function exitCodeOf(end: { exitCode?: number; status?: string }): number {
  const signal = /^signal: (.+)$/.exec(end.status ?? "")?.[1];
  if (signal !== undefined) return 128 + (GO_SIGNAL_NAMES[signal] ?? 9);
  const code = end.exitCode ?? 0;
  return code < 0 ? 128 + 9 : code & 255;
}

interface ProcessEvent {
  event?: { event: { case: "start"; value: { pid: number } } | { case: "data"; value: { output: { case: string; value: Uint8Array } } } | { case: "end"; value: { exitCode: number; status: string } } | { case: "keepalive" | undefined; value?: unknown } };
}
interface ProcessRpc {
  start(request: unknown, options: { signal?: AbortSignal; headers?: Record<string, string>; timeoutMs?: number }): AsyncIterable<ProcessEvent>;
}

export class E2BProvider implements Provider {
  readonly name = "e2b";
  readonly capabilities = E2B_CAPABILITIES;
  private sdkPromise?: Promise<Sdk>;
  private readonly sandboxes = new Map<string, Promise<Sandbox>>();

  constructor(private readonly ctx: ProviderContext) {}

  private sdk(): Promise<Sdk> {
    this.sdkPromise ??= import("e2b");
    return this.sdkPromise;
  }

  /** Connection options for every SDK call: explicit, so nothing depends on process.env. */
  private options() {
    const credential = e2bApiKey(this.ctx);
    if (!credential) throw notConfigured("e2b", "set E2B_API_KEY");
    return {
      apiKey: credential.value,
      apiUrl: setting(this.ctx, ["E2B_API_URL"], "api_url"),
      sandboxUrl: setting(this.ctx, ["E2B_SANDBOX_URL"], "sandbox_url"),
      domain: setting(this.ctx, ["E2B_DOMAIN"], "domain"),
      requestTimeoutMs: 60_000,
    };
  }

  private retry<T>(what: string, call: (attempt: number) => Promise<T>, signal?: AbortSignal): Promise<T> {
    return withExplainedRetry(this.name, what, call, (error) => this.explain(error), isTransient, signal);
  }

  /** Errors a user can act on become ProviderErrors with a hint; transient ones pass through to be retried. */
  private async explain(error: unknown): Promise<unknown> {
    const sdk = await this.sdk();
    if (error instanceof sdk.AuthenticationError) {
      return new ProviderError(this.name, "the API key was rejected", 401, undefined, "check E2B_API_KEY (or api_key under [providers.e2b] in config.toml)", "auth_failed");
    }
    const code = (error as { code?: unknown })?.code;
    if (typeof code === "string" && /^E[A-Z]+$/.test(code)) {
      // Bun's own text for these adds advice about fetch options that means nothing to a user.
      const what = code === "ECONNRESET" ? "the connection was dropped" : code === "ECONNREFUSED" ? "the connection was refused" : "a network error";
      return Object.assign(new Error(`${what} (${code})`), { code, cause: error });
    }
    return error;
  }

  async create(spec: CreateSpec, signal?: AbortSignal): Promise<SandboxRecord> {
    const allow = allowListParts(spec.network);
    const { Sandbox } = await this.sdk();
    const options = this.options();
    // The token makes a retried create idempotent: a create whose answer was lost is found, not repeated.
    const token = randomUUID();
    const metadata: Record<string, string> = { ...spec.labels, [TOKEN_KEY]: token };
    if (spec.name) metadata[NAME_KEY] = spec.name;
    const template = spec.image ?? setting(this.ctx, [], "template", "base");
    const ttlSeconds = spec.ttlSeconds ?? seconds(this.ctx.config.ttl) ?? DEFAULT_TTL_SECONDS;
    const sandbox = await createOnce({
      retry: (attempt) => this.retry(`creating a sandbox from template "${template}"`, attempt, signal),
      earlier: async () => {
        const earlier = await this.findByToken(token);
        return earlier ? Sandbox.connect(earlier, options) : undefined;
      },
      create: async () => {
        try {
          return await Sandbox.create(template, {
            ...options,
            metadata,
            envs: spec.env,
            timeoutMs: Math.round(ttlSeconds * 1000),
            ...(spec.network?.mode === "none" ? { allowInternetAccess: false } : {}),
            // Allowed entries win over denied ones: everything else is denied.
            ...(allow ? { network: { allowOut: [...allow.hosts, ...allow.cidrs], denyOut: ["0.0.0.0/0"] } } : {}),
          });
        } catch (error) {
          const status = (error as { statusCode?: number }).statusCode;
          if (status !== 400 && status !== 404) throw error;
          const detail = (error as Error).message.replace(/^\d{3}: /, "");
          throw new ProviderError(this.name, `cannot create a sandbox from template "${template}": ${detail}`, status, undefined, "pass --image with the name or id of one of your E2B templates (or set template under [providers.e2b])", "bad_template");
        }
      },
      cleanUp: () => this.removeByToken(token),
    });
    this.sandboxes.set(sandbox.sandboxId, Promise.resolve(sandbox));
    return { id: sandbox.sandboxId, provider: this.name, name: spec.name, state: "running", labels: { ...spec.labels }, createdAt: new Date().toISOString(), image: template };
  }

  private async findByToken(token: string): Promise<string | undefined> {
    const { Sandbox } = await this.sdk();
    const page = await Sandbox.list({ ...this.options(), query: { metadata: { [TOKEN_KEY]: token } } }).nextItems();
    return page.find((info) => info.metadata[TOKEN_KEY] === token)?.sandboxId;
  }

  private async removeByToken(token: string): Promise<void> {
    const { Sandbox } = await this.sdk();
    const id = await this.findByToken(token);
    if (id) await Sandbox.kill(id, this.options());
  }

  async get(id: string): Promise<SandboxRecord | null> {
    const sdk = await this.sdk();
    const info = await this.retry(`looking up sandbox ${id}`, async () => {
      try {
        return await sdk.Sandbox.getInfo(id, this.options());
      } catch (error) {
        // A 400 (an id E2B cannot parse) means there is no such sandbox as well.
        if (isNotFound(sdk, error) || (error as { statusCode?: number }).statusCode === 400) return null;
        throw error;
      }
    });
    return info ? this.record(info) : null;
  }

  async list(filter: { labels?: Record<string, string> }): Promise<SandboxRecord[]> {
    const { Sandbox } = await this.sdk();
    const wanted = filter.labels && Object.keys(filter.labels).length ? filter.labels : undefined;
    const paginator = Sandbox.list({ ...this.options(), query: wanted ? { metadata: wanted } : undefined });
    const records: SandboxRecord[] = [];
    while (paginator.hasNext) {
      // A failed page leaves the paginator where it was, so retrying it is safe.
      const page = await this.retry("listing sandboxes", () => paginator.nextItems());
      for (const info of page) records.push(this.record(info));
    }
    return records.filter((record) => hasLabels(record.labels, wanted));
  }

  private record(info: Pick<SandboxInfo, "sandboxId" | "templateId" | "metadata" | "startedAt" | "state"> & { name?: string }): SandboxRecord {
    const labels = dict<string>();
    for (const [key, value] of Object.entries(info.metadata ?? {})) if (!key.startsWith(LABEL_PREFIX)) labels[key] = value;
    const state: SandboxState = info.state === "running" ? "running" : info.state === "paused" ? "stopped" : "unknown";
    const startedAt = info.startedAt instanceof Date && !Number.isNaN(info.startedAt.getTime()) ? info.startedAt.toISOString() : undefined;
    return { id: info.sandboxId, provider: this.name, name: own(info.metadata, NAME_KEY), state, labels, createdAt: startedAt, image: info.name ?? info.templateId };
  }

  async destroy(id: string): Promise<void> {
    const { Sandbox } = await this.sdk();
    this.sandboxes.delete(id);
    // kill() answers false for an unknown id: destroying twice is fine.
    await this.retry(`destroying sandbox ${id}`, () => Sandbox.kill(id, this.options()));
  }

  /** A handle on a sandbox created anywhere (another process, another machine), by id. */
  private connect(id: string): Promise<Sandbox> {
    let sandbox = this.sandboxes.get(id);
    if (!sandbox) {
      sandbox = (async () => {
        const sdk = await this.sdk();
        const connected = await this.retry(`connecting to sandbox ${id}`, async () => {
          try {
            return await sdk.Sandbox.connect(id, this.options());
          } catch (error) {
            if (isNotFound(sdk, error)) return null;
            throw error;
          }
        });
        if (!connected) throw new SandboxesError("unknown_sandbox", `no e2b sandbox with id ${id} (it may have reached the end of its lifetime)`, "user", "see `sandboxes list -p e2b`");
        return connected;
      })();
      sandbox.catch(() => this.sandboxes.delete(id));
      this.sandboxes.set(id, sandbox);
    }
    return sandbox;
  }

  /**
   * Starts a process through the SDK's own envd Process client (the one behind commands.run and
   * pty.create). Its events carry output as raw bytes and the exit as envd reports it, where
   * commands.run would decode output as UTF-8 (mangling binary output) and drop the signal.
   */
  private async startProcess(sandbox: Sandbox, request: Record<string, unknown>, argv: string[]) {
    const rpc = (sandbox.commands as unknown as { rpc?: ProcessRpc }).rpc;
    if (!rpc) throw new ProviderError(this.name, "this version of the e2b SDK has no process client: use the e2b version sandboxes was built with");
    let controller!: AbortController;
    let events!: AsyncIterator<ProcessEvent>;
    let first: IteratorResult<ProcessEvent>;
    for (let attempt = 1; ; attempt++) {
      controller = new AbortController();
      events = rpc.start(request, { signal: controller.signal, headers: { "Keepalive-Ping-Interval": "50" } })[Symbol.asyncIterator]();
      try {
        first = await events.next();
        break;
      } catch (error) {
        controller.abort();
        // envd answered 429 or 503 instead of the stream: nothing started, so it may be asked again.
        if (!refusedBeforeStart(error) || attempt >= DEFAULT_RETRY.attempts) throw this.commandError(error, argv);
        await Bun.sleep(delayBeforeRetry(this.name, `starting ${argv[0] ?? "a command"}`, error, attempt));
      }
    }
    const start = first.value?.event?.event;
    if (start?.case !== "start") {
      controller.abort();
      throw new ProviderError(this.name, `${argv[0] ?? "the command"} did not start (the sandbox sent no start event)`);
    }
    return { pid: (start.value as { pid: number }).pid, events, controller };
  }

  async exec(id: string, spec: ExecSpec): Promise<ExecOutcome> {
    const sandbox = await this.connect(id);
    const request = { process: { cmd: "/bin/bash", args: ["-l", "-c", commandLine(spec.argv)], envs: spec.env, cwd: spec.cwd }, stdin: spec.stdin !== undefined };
    const { pid, events, controller } = await this.startProcess(sandbox, request, spec.argv);
    let timedOut = false;
    const stop = () => void this.killTree(sandbox, pid);
    const timer = spec.timeoutMs ? setTimeout(() => ((timedOut = true), stop()), spec.timeoutMs) : undefined;
    spec.signal?.addEventListener("abort", stop, { once: true });
    if (spec.signal?.aborted) stop();
    const finished = new AbortController();
    const feeding = spec.stdin !== undefined ? this.feedStdin(sandbox, pid, spec.stdin, finished.signal).catch(() => {}) : undefined;
    let end: { exitCode: number; status: string } | undefined;
    try {
      for (let next = await events.next(); !next.done; next = await events.next()) {
        const event = next.value.event?.event;
        if (event?.case === "data") {
          const output = event.value.output;
          if (output.case === "stdout") await spec.onStdout(output.value);
          else if (output.case === "stderr") await spec.onStderr(output.value);
        } else if (event?.case === "end") {
          end = event.value;
        }
      }
    } catch (error) {
      if (!timedOut && !spec.signal?.aborted) throw this.commandError(error, spec.argv);
    } finally {
      if (timer) clearTimeout(timer);
      spec.signal?.removeEventListener("abort", stop);
      controller.abort();
      finished.abort();
    }
    // A read of our stdin that cancel() cannot interrupt must not hold up the result.
    await Promise.race([feeding, Bun.sleep(1000)]);
    if (timedOut) return { exitCode: 124, timedOut: true };
    if (!end) {
      if (spec.signal?.aborted) return { exitCode: 130, timedOut: false };
      throw new ProviderError(this.name, `the connection to sandbox ${id} ended before ${spec.argv[0] ?? "the command"} finished`, undefined, undefined, "the command may still be running in the sandbox");
    }
    return { exitCode: exitCodeOf(end), timedOut: false };
  }

  private commandError(error: unknown, argv: string[]): unknown {
    if (error instanceof SandboxesError) return error;
    // A ConnectError's message starts with "[code] "; rawMessage is envd's own sentence.
    const message = (error as { rawMessage?: string }).rawMessage || ((error as Error)?.message ?? String(error));
    return new ProviderError(this.name, `cannot run ${argv[0] ?? "the command"} in the sandbox: ${message}`, (error as { statusCode?: number }).statusCode);
  }

  /**
   * Stdin goes over as SendInput calls in order, then CloseStdin gives the command its EOF.
   * `finished` stops the feeding once the command is over, even if our stdin never ends.
   */
  private async feedStdin(sandbox: Sandbox, pid: number, stdin: NonNullable<ExecSpec["stdin"]>, finished: AbortSignal): Promise<void> {
    await feedInChunks(stdin, STDIN_CHUNK, finished, (chunk) => sandbox.commands.sendStdin(pid, chunk));
    if (!finished.aborted) await sandbox.commands.closeStdin(pid);
  }

  /** Kills the command's process group (see GROUP_WRAPPER), then the command itself. */
  private async killTree(sandbox: Sandbox, pid: number): Promise<void> {
    await sandbox.commands.run(`kill -9 -- -${pid} 2>/dev/null; true`, { timeoutMs: 15_000 }).catch(() => {});
    await sandbox.commands.kill(pid).catch(() => false);
  }

  private readonly archives = stagedArchives(this, async (id) => {
    const sandbox = await this.connect(id);
    return {
      upload: (path, source, what) => this.retry(what, () => sandbox.files.write(path, source.stream())),
      download: (path, what) => this.retry(what, () => sandbox.files.read(path, { format: "stream" })),
    };
  });
  readonly putArchive = this.archives.putArchive;
  readonly getArchive = this.archives.getArchive;

  /** pty.create always starts `bash -i -l`: the asked argv starts like exec's, then the public pty API drives it by pid. */
  async openPty(id: string, spec: PtySpec): Promise<PtySession> {
    const sandbox = await this.connect(id);
    const request = {
      process: { cmd: spec.argv[0] ?? "/bin/bash", args: spec.argv.slice(1), envs: { TERM: "xterm-256color", LANG: "C.UTF-8", LC_ALL: "C.UTF-8", ...spec.env }, cwd: spec.cwd },
      pty: { size: { cols: spec.cols, rows: spec.rows } },
    };
    const { pid, events, controller } = await this.startProcess(sandbox, request, spec.argv);
    const output = new PtyOutput();
    const exited = (async () => {
      let code = 255;
      try {
        for (let next = await events.next(); !next.done; next = await events.next()) {
          const event = next.value.event?.event;
          if (event?.case === "data" && event.value.output.case === "pty") {
            output.push(event.value.output.value);
          } else if (event?.case === "end") {
            code = exitCodeOf(event.value);
          }
        }
      } catch {
        // A dropped connection ends the session; the code stays 255 unless an end event came.
      }
      controller.abort();
      return code;
    })();
    return {
      write: inOrder((bytes) => sandbox.pty.sendInput(pid, bytes)),
      resize: (cols, rows) => void sandbox.pty.resize(pid, { cols, rows }).catch(() => {}),
      output: output.endWhen(exited),
      exited,
      kill: async () => {
        await sandbox.pty.kill(pid).catch(() => false);
        await Promise.race([exited, Bun.sleep(5000)]);
        controller.abort();
      },
    };
  }

  async close(): Promise<void> {
    this.sandboxes.clear();
  }
}

/**
 * Keystrokes for a PTY, in the order typed: each SendInput is a request of its own, and two in
 * flight can reach envd in either order. One at a time; what is typed meanwhile goes in the next.
 */
function inOrder(send: (bytes: Uint8Array) => Promise<unknown>): (data: Uint8Array | string) => void {
  let queued: Uint8Array[] = [];
  let sending = false;
  const drain = async () => {
    sending = true;
    while (queued.length > 0) {
      const batch = Buffer.concat(queued);
      queued = [];
      await send(batch).catch(() => {});
    }
    sending = false;
  };
  return (data) => {
    queued.push(typeof data === "string" ? new TextEncoder().encode(data) : data);
    if (!sending) void drain();
  };
}

function isNotFound(sdk: Sdk, error: unknown): boolean {
  if (error instanceof sdk.NotFoundError) return true;
  const status = (error as { statusCode?: number; status?: number })?.statusCode ?? (error as { status?: number })?.status;
  return status === 404;
}

/** Connect's error for a stream that got an HTTP error status instead (its headers are in `metadata`). */
function refusedBeforeStart(error: unknown): boolean {
  return /^HTTP (?:429|503)$/.test((error as { rawMessage?: string })?.rawMessage ?? "");
}

/** 429/5xx answers, a busy service, and dropped or refused connections are worth another try. */
export function isTransient(error: unknown): boolean {
  if (error instanceof ProviderError || error instanceof SandboxesError) return false;
  const name = (error as Error)?.name;
  if (name === "RateLimitError" || name === "ServiceBusyError") return true;
  const status = (error as { statusCode?: number })?.statusCode;
  if (status !== undefined) return isTransientStatus(status);
  const code = (error as { code?: string })?.code;
  if (code && ["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "UND_ERR_SOCKET", "ConnectionRefused", "ConnectionClosed"].includes(code)) return true;
  const message = (error as Error)?.message ?? "";
  return /socket connection was closed|fetch failed|network|ECONNRESET|connection (?:reset|refused|closed)|^5\d\d: |^429: /i.test(message);
}
