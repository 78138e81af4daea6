/**
 * The library under the CLI: the same providers, selection rules, clean-up and errors, for
 * programs on Bun.
 *
 *   import { run, Sandbox } from "sandboxes";
 *   const { stdout, exitCode } = await run("python3 -c 'print(6 * 7)'");
 *   await using box = await Sandbox.create({ provider: "docker", labels: { project: "demo" } });
 *   await box.exec(["ls", "-la"]);
 *
 * Nothing here prints, prompts or exits: failures are thrown as SandboxesError (with a stable
 * `code`), and every sandbox a call creates for itself is destroyed before that call returns.
 */
import { DEFAULT_MAX_OUTPUT_BYTES, MAX_OUTPUT_LIMIT, StreamCapture } from "./core/capture";
import { loadSettings, type Settings } from "./core/config";
import { InterruptedError, SandboxesError, UsageError } from "./base/errors";
import { checkNetworkSupport } from "./core/network";
import { Registry } from "./core/registry";
import { resolveSandbox } from "./core/resolve";
import { checkPids, type OutputSink, reusable, runCode } from "./core/run";
import { chooseProvider, closeProviders, configuredProviders, loadProvider } from "./core/select";
import { downloadPath, uploadPath } from "./core/transfer";
import { checkTimeoutMs } from "./core/timeout";
import { prepareWorkdir } from "./core/workdir";
import type { ExecSpec, NetworkPolicy, Provider, SandboxRecord } from "./providers/types";

export { SandboxesError, ProviderError, UsageError, InterruptedError } from "./base/errors";
export type { Capabilities, SandboxRecord, SandboxState } from "./providers/types";
export { providerNames } from "./providers/index";

/** Where a sandbox comes from; every field is optional and follows the CLI's flags. */
export interface SandboxOptions {
  /** A provider name (`local`, `docker`, `e2b`, …); default: the CLI's choice (-p > SANDBOXES_PROVIDER > config > credentials > local). */
  provider?: string;
  /** Tried in order when creating on the previous provider fails (not for mistakes in the options). */
  fallback?: string[];
  image?: string;
  name?: string;
  labels?: Record<string, string>;
  /** Environment for every command in the sandbox. */
  env?: Record<string, string>;
  /** The provider removes the sandbox by itself after this long, where it can. */
  ttlSeconds?: number;
  cpus?: number;
  memoryMb?: number;
  /** Most processes and threads in the sandbox; refused by providers that cannot enforce it (local default: 2048). */
  pids?: number;
  /** Network policy; default: the provider's default network. */
  network?: NetworkPolicy;
  /** Where credentials and config.toml are looked up; default `process.env`. */
  environment?: Record<string, string | undefined>;
  signal?: AbortSignal;
}

export interface ExecOptions {
  /** Added to the sandbox's environment for this command. */
  env?: Record<string, string>;
  /** Must exist in the sandbox (as with `sandboxes exec -w`). */
  cwd?: string;
  /** The whole process tree is killed after this long (at most 24 days): exitCode 124, timedOut true. */
  timeoutMs?: number;
  stdin?: string | Uint8Array | ReadableStream<Uint8Array>;
  signal?: AbortSignal;
  /**
   * At most this many bytes of each stream are kept in the result (default 16 MiB, at most
   * 1 GiB); the program keeps running and the rest is only counted (`truncated`).
   */
  maxOutputBytes?: number;
  /** Live output, chunk by chunk, as well as in the result (never cut). */
  onStdout?(chunk: Uint8Array): void;
  onStderr?(chunk: Uint8Array): void;
}

export interface ExecResult {
  exitCode: number;
  timedOut: boolean;
  /** exitCode 0 and not timed out. */
  success: boolean;
  /** UTF-8 text; the exact bytes are in stdoutBytes/stderrBytes. */
  stdout: string;
  stderr: string;
  stdoutBytes: Uint8Array;
  stderrBytes: Uint8Array;
  /** Every byte the program wrote, including what maxOutputBytes left out. */
  stdoutTotalBytes: number;
  stderrTotalBytes: number;
  /** A stream wrote more than maxOutputBytes; the kept bytes are its first ones. */
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  truncated: boolean;
  durationMs: number;
}

export interface RunResult extends ExecResult {
  sandboxId: string;
  provider: string;
}

export type StreamEvent =
  | { type: "stdout" | "stderr"; data: Uint8Array; text: string }
  | { type: "exit"; exitCode: number; timedOut: boolean };

/**
 * Set by run() and runMany(), whose sandbox is their own: there `cwd` is created when missing,
 * as `sandboxes run -w` does (core/workdir.ts). Not part of the public options.
 */
const CREATE_CWD = Symbol("createCwd");
type InternalExecOptions = ExecOptions & { [CREATE_CWD]?: true };

/** A command line runs through `sh -c`; an array is argv as is. */
type Command = string | string[];
const argvOf = (command: Command): string[] => (typeof command === "string" ? ["sh", "-c", command] : command);

/** Creates a sandbox, runs one command, destroys the sandbox (also when the command fails). */
export async function run(command: Command, options: SandboxOptions & ExecOptions = {}): Promise<RunResult> {
  if (!options.fallback?.length && typeof command === "string") {
    // The CLI's own path: on providers that can (docker), create, run and remove in one go.
    return runThroughCore(command, options);
  }
  const box = await Sandbox.create(options);
  try {
    return { ...(await box.exec(command, { ...options, [CREATE_CWD]: true })), sandboxId: box.id, provider: box.provider };
  } finally {
    await box.destroy();
  }
}

/** Runs commands one after another in one sandbox; stops at the first failure unless told not to. */
export async function runMany(commands: Command[], options: SandboxOptions & ExecOptions & { stopOnError?: boolean } = {}): Promise<RunResult[]> {
  const box = await Sandbox.create(options);
  try {
    return (await box.execMany(commands, { ...options, [CREATE_CWD]: true })).map((result) => ({ ...result, sandboxId: box.id, provider: box.provider }));
  } finally {
    await box.destroy();
  }
}

/** Lets the process exit: closes the connections the cloud SDKs keep open. */
export async function close(): Promise<void> {
  await closeProviders();
}

export class Sandbox {
  private destroyed = false;

  private constructor(
    private readonly settings: Settings,
    private readonly backend: Provider,
    /** What the provider said when the sandbox was created or found. */
    readonly record: SandboxRecord,
  ) {}

  get id(): string {
    return this.record.id;
  }

  get provider(): string {
    return this.backend.name;
  }

  /**
   * A new sandbox. With `fallback`, each provider is tried in turn until one creates it; the
   * error then names every provider and why it failed. Destroy it (or `await using` it).
   */
  static async create(options: SandboxOptions = {}): Promise<Sandbox> {
    const settings = await loadSettings(options.environment ?? process.env);
    const first = (await chooseProvider(settings, options.provider)).name;
    const candidates = [first, ...(options.fallback ?? []).filter((name) => name !== first)];
    const failures: string[] = [];
    for (const name of candidates) {
      throwIfAborted(options.signal);
      try {
        const provider = await loadProvider(settings, name);
        checkPids(provider, options.pids);
        checkNetworkSupport(provider.name, provider.capabilities, options.network);
        const record = await provider.create(
          {
            name: options.name,
            image: options.image,
            labels: { ...options.labels },
            env: { ...options.env },
            ttlSeconds: options.ttlSeconds,
            cpus: options.cpus,
            memoryMb: options.memoryMb,
            pids: options.pids,
            network: options.network,
          },
          options.signal,
        );
        new Registry(settings.stateDir).add({ id: record.id, provider: name, name: options.name, labels: { ...options.labels }, createdAt: record.createdAt ?? new Date().toISOString() });
        return new Sandbox(settings, provider, record);
      } catch (error) {
        // A mistake in the options or a Ctrl-C is not a reason to try elsewhere.
        if (error instanceof UsageError || error instanceof InterruptedError || options.signal?.aborted || candidates.length === 1) throw error;
        failures.push(`${name}: ${(error as Error).message}`);
      }
    }
    throw new SandboxesError("create_failed", `no provider could create the sandbox: ${failures.join("; ")}`, "provider");
  }

  /**
   * The first running (or restartable, see core/run.ts reusable) sandbox with all these labels (and this name, if given), on `provider` or
   * on every configured one; null when there is none. A provider that cannot be asked is an
   * error, not a "none".
   */
  static async find(options: { labels?: Record<string, string>; name?: string; provider?: string; environment?: Record<string, string | undefined> }): Promise<Sandbox | null> {
    const labels = options.labels ?? {};
    if (!options.name && Object.keys(labels).length === 0) throw new UsageError("find_without_key", "Sandbox.find needs labels or a name");
    const settings = await loadSettings(options.environment ?? process.env);
    const names = options.provider ? [options.provider] : (await configuredProviders(settings)).map((d) => d.name);
    for (const name of names) {
      const provider = await loadProvider(settings, name);
      const record = (await provider.list({ labels })).find((r) => reusable(provider, r) && (!options.name || r.name === options.name));
      if (record) return new Sandbox(settings, provider, record);
    }
    return null;
  }

  /** find() with the same labels and name, else create(). */
  static async getOrCreate(options: SandboxOptions): Promise<Sandbox> {
    return (await Sandbox.find(options)) ?? Sandbox.create(options);
  }

  /** An existing sandbox by id or name, found as `sandboxes exec` finds it. */
  static async connect(ref: string, options: { provider?: string; environment?: Record<string, string | undefined> } = {}): Promise<Sandbox> {
    const settings = await loadSettings(options.environment ?? process.env);
    const { provider, record } = await resolveSandbox(settings, ref, options.provider);
    return new Sandbox(settings, provider, record);
  }

  async exec(command: Command, options: InternalExecOptions = {}): Promise<ExecResult> {
    const started = performance.now();
    const { out, err, sink } = capture(options);
    const spec = this.spec(command, options, sink);
    if (options.cwd !== undefined) await prepareWorkdir(this.backend, this.id, options.cwd, options[CREATE_CWD] ? "create" : "require", options.signal);
    const outcome = await this.backend.exec(this.id, spec);
    throwIfAborted(options.signal);
    return result(outcome.exitCode, outcome.timedOut, out, err, started);
  }

  async execMany(commands: Command[], options: InternalExecOptions & { stopOnError?: boolean } = {}): Promise<ExecResult[]> {
    const results: ExecResult[] = [];
    for (const command of commands) {
      const outcome = await this.exec(command, options);
      results.push(outcome);
      if (!outcome.success && options.stopOnError !== false) break;
    }
    return results;
  }

  /**
   * Output as it happens, then one `exit` event. Leaving the loop early stops the command.
   *
   *   for await (const event of box.stream("make test")) if (event.type !== "exit") process.stdout.write(event.data);
   */
  async *stream(command: Command, options: Omit<ExecOptions, "onStdout" | "onStderr"> = {}): AsyncGenerator<StreamEvent> {
    const stop = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
    const queue: StreamEvent[] = [];
    let wake: (() => void) | undefined;
    const push = (event: StreamEvent) => {
      queue.push(event);
      wake?.();
    };
    const decoder = { stdout: new TextDecoder(), stderr: new TextDecoder() };
    const chunk = (type: "stdout" | "stderr") => (data: Uint8Array) => push({ type, data, text: decoder[type].decode(data, { stream: true }) });
    let settled = false;
    // Events carry the output; nothing is kept for a result nobody reads.
    const done = this.exec(command, { ...options, maxOutputBytes: 0, signal, onStdout: chunk("stdout"), onStderr: chunk("stderr") })
      .then(
        (outcome) => push({ type: "exit", exitCode: outcome.exitCode, timedOut: outcome.timedOut }),
        (error: unknown) => ({ error }),
      )
      .finally(() => (settled = true));
    try {
      while (true) {
        while (queue.length === 0) {
          const failed = await Promise.race([done, new Promise<void>((resolve) => (wake = resolve))]);
          if (failed && queue.length === 0) throw failed.error;
        }
        const event = queue.shift()!;
        yield event;
        if (event.type === "exit") return;
      }
    } finally {
      // The loop was left before the exit event: stop the command rather than leave it running.
      if (!settled) {
        stop.abort("SIGINT");
        await done;
      }
    }
  }

  /** `cp -r` semantics: a directory as remotePath receives localPath inside it. */
  async upload(localPath: string, remotePath: string): Promise<void> {
    await uploadPath(this.backend, this.id, localPath, remotePath);
  }

  async download(remotePath: string, localPath: string): Promise<void> {
    await downloadPath(this.backend, this.id, remotePath, localPath);
  }

  /** Idempotent. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    await this.backend.destroy(this.id);
    this.destroyed = true;
    new Registry(this.settings.stateDir).remove(this.provider, this.id);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.destroy();
  }

  private spec(command: Command, options: ExecOptions, sink: Pick<OutputSink, "stdout" | "stderr">): ExecSpec {
    const stdin = typeof options.stdin === "string" ? new TextEncoder().encode(options.stdin) : options.stdin;
    return { argv: argvOf(command), env: { ...options.env }, timeoutMs: checkTimeoutMs(options.timeoutMs), stdin, cwd: options.cwd, onStdout: sink.stdout, onStderr: sink.stderr, signal: options.signal };
  }
}

async function runThroughCore(command: string, options: SandboxOptions & ExecOptions): Promise<RunResult> {
  const started = performance.now();
  const settings = await loadSettings(options.environment ?? process.env);
  const { out, err, sink } = capture(options);
  const stdin = typeof options.stdin === "string" ? new TextEncoder().encode(options.stdin) : options.stdin;
  const outcome = await runCode(
    settings,
    {
      provider: options.provider,
      image: options.image,
      env: { ...options.env },
      labels: { ...options.labels },
      name: options.name,
      workdir: options.cwd,
      reuse: false,
      keep: false,
      timeoutMs: options.timeoutMs,
      deps: false,
      uploads: [],
      downloads: [],
      source: { kind: "command", line: command },
      args: [],
      stdin,
      network: options.network,
      cpus: options.cpus,
      memoryMb: options.memoryMb,
      pids: options.pids,
      ttlSeconds: options.ttlSeconds,
      signal: options.signal ?? new AbortController().signal,
    },
    sink,
  );
  return { ...result(outcome.exitCode, outcome.timedOut, out, err, started), sandboxId: outcome.sandboxId, provider: outcome.provider };
}

/** Bounded capture of both streams (core/capture.ts), passing every chunk on to the live callbacks. */
function capture(options: ExecOptions): { out: StreamCapture; err: StreamCapture; sink: OutputSink } {
  const limit = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  if (!Number.isInteger(limit) || limit < 0 || limit > MAX_OUTPUT_LIMIT) {
    throw new UsageError("bad_value", `maxOutputBytes must be a whole number of bytes from 0 to ${MAX_OUTPUT_LIMIT}, got ${limit}`);
  }
  const out = new StreamCapture(limit);
  const err = new StreamCapture(limit);
  const sink: OutputSink = {
    stdout: (chunk) => (out.push(chunk), options.onStdout?.(chunk)),
    stderr: (chunk) => (err.push(chunk), options.onStderr?.(chunk)),
    info: () => {},
  };
  return { out, err, sink };
}

function result(exitCode: number, timedOut: boolean, out: StreamCapture, err: StreamCapture, started: number): ExecResult {
  const stdout = out.result();
  const stderr = err.result();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return {
    exitCode,
    timedOut,
    success: exitCode === 0 && !timedOut,
    stdout: text(out.bytes()),
    stderr: text(err.bytes()),
    stdoutBytes: out.bytes(),
    stderrBytes: err.bytes(),
    stdoutTotalBytes: stdout.totalBytes,
    stderrTotalBytes: stderr.totalBytes,
    stdoutTruncated: stdout.truncated,
    stderrTruncated: stderr.truncated,
    truncated: stdout.truncated || stderr.truncated,
    durationMs: Math.round(performance.now() - started),
  };
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new InterruptedError(signal.reason === "SIGTERM" ? "SIGTERM" : "SIGINT");
}
