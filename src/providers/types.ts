/**
 * The one provider interface. A slim required core (create, get, list, exec, destroy) plus
 * optional abilities declared as data in `capabilities`; core code checks a capability before
 * using the matching optional method and tells the user plainly when a provider lacks it.
 *
 * Constructing a provider does no I/O, needs no credentials and imports no SDK: SDKs are
 * `import()`ed on first real use so `--help` and `providers` stay fast.
 */

export interface Capabilities {
  /** stdout/stderr chunks arrive while the command runs (not only at the end). */
  streaming: boolean;
  /** putArchive/getArchive: files and directories in and out. */
  files: boolean;
  /** openPty: an interactive terminal. */
  pty: boolean;
  /** PtySession.resize does something. */
  resize: boolean;
  /** labels are stored with the sandbox and can filter list(). */
  labels: boolean;
  /** ExecSpec.stdin is forwarded to the command. */
  stdin: boolean;
  /** CreateSpec.network with mode "none" cuts the sandbox off the network. */
  networkIsolation: boolean;
  /** CreateSpec.network with mode "host": the sandbox shares this machine's network. Absent: false. */
  networkHost?: boolean;
  /** Allow-list entries naming hosts (`example.com`, `*.example.com`) are enforced. Absent: false. */
  networkAllowHosts?: boolean;
  /** Allow-list entries naming IP addresses and CIDRs are enforced. Absent: false. */
  networkAllowCidrs?: boolean;
  /** Allow-list entries may carry a `:PORT` (only that port opens). Absent: false. */
  networkAllowPorts?: boolean;
  /** CreateSpec.ttlSeconds: the provider stops the sandbox by itself after that long. */
  ttl: boolean;
  /** CreateSpec.cpus / memoryMb are honoured. */
  resources: boolean;
  /** CreateSpec.pids (--pids) is enforced; core refuses --pids where it is not. Absent: false */
  pids?: boolean;
  /** CreateSpec.mounts: host directories mounted into the sandbox (local, docker). */
  mounts: boolean;
  /** runOnce: one command in a sandbox of its own, created, run and removed in one go. */
  oneShot: boolean;
  /** runOnce with CreateSpec.files: the code is in the sandbox's /tmp before the program starts (run --file in one go). Absent: false. */
  oneShotFiles?: boolean;
  /** exec on a stopped sandbox starts it again over its files (so --reuse picks it). Absent: false. */
  startsStopped?: boolean;
}

export type SandboxState = "running" | "stopped" | "creating" | "error" | "unknown";

export interface SandboxRecord {
  /** The provider's full id; never truncated anywhere. */
  id: string;
  provider: string;
  name?: string;
  state: SandboxState;
  labels: Record<string, string>;
  /** ISO 8601. */
  createdAt?: string;
  image?: string;
}

/**
 * --network: "default" is each provider's default (on local: the public internet through an
 * egress proxy, the host and private networks closed); "none" cuts the sandbox off; "host" shares
 * the host's network (local only, an explicit opt-in).
 */
export type NetworkMode = "default" | "none" | "host";

export interface NetworkPolicy {
  mode: NetworkMode;
  /**
   * --allow-net entries as the user gave them (a hostname, `*.example.com`, an IP or a CIDR, each
   * with an optional `:PORT`). When non-empty, only these destinations are reachable.
   */
  allow: string[];
}

export interface Mount {
  hostPath: string;
  sandboxPath: string;
  readonly: boolean;
}

export interface CreateSpec {
  name?: string;
  image?: string;
  labels: Record<string, string>;
  /** Environment for every command in this sandbox (exec env adds to it). */
  env: Record<string, string>;
  ttlSeconds?: number;
  cpus?: number;
  memoryMb?: number;
  /** Network policy; undefined means { mode: "default", allow: [] }. */
  network?: NetworkPolicy;
  /** Most processes (and threads) the sandbox may have at once (--pids). */
  pids?: number;
  mounts?: Mount[];
  /**
   * Files a one-shot sandbox starts with (runOnce, capabilities.oneShotFiles): absolute paths
   * under /tmp, readable by the program; other providers and create() do not take them.
   */
  files?: SandboxFile[];
  /**
   * Slow preparation (an image pull) reports progress here, a line at a time and at most a few
   * times a second; core passes it only when stderr is a terminal. Providers never print.
   */
  onProgress?(message: string): void;
}

/** A file a sandbox starts with (CreateSpec.files). */
export interface SandboxFile {
  path: string;
  content: Uint8Array;
}

export interface ExecSpec {
  /** argv, never a shell string: core wraps shell command lines as ["sh", "-c", line]. */
  argv: string[];
  env: Record<string, string>;
  cwd?: string;
  /** Bounds the command; on expiry the whole process tree is killed and timedOut is true. */
  timeoutMs?: number;
  /** Bytes for the command's stdin; absent means an empty stdin (EOF at once). */
  stdin?: ReadableStream<Uint8Array> | Uint8Array;
  /**
   * Each chunk of output, in order. A returned promise resolves once the chunk is out (our stdout
   * and a slow reader): a provider awaits it before it reads on, which passes the reader's pace
   * back to the program (backpressure) without blocking this process.
   */
  onStdout(chunk: Uint8Array): unknown;
  onStderr(chunk: Uint8Array): unknown;
  /**
   * Set when onStdout only copies to this descriptor (our own stdout, live, no --json): a
   * provider may let the program write to it directly instead, which keeps every byte exact, live
   * and under the reader's backpressure without passing through this process.
   */
  stdoutFd?: number;
  /**
   * One line for the person running the command, e.g. a destination the sandbox's network
   * policy blocked; core prints it on stderr. Providers never print.
   */
  onNotice?(message: string): void;
  /** Aborted on Ctrl-C/SIGTERM: stop the command and return promptly. */
  signal?: AbortSignal;
}

/**
 * An archive to send: each stream() reads it whole from its start, so a copy of a large directory
 * is packed as it is sent, never held (core packs it with the host's tar), and a retry can begin
 * again. A Blob is one.
 */
export interface ArchiveSource {
  stream(): ReadableStream<Uint8Array>;
}

/** An archive source read to its end, in memory (the tests' fakes; providers spool big bodies: shared/spool.ts). */
export async function wholeArchive(source: ArchiveSource): Promise<Uint8Array> {
  return new Uint8Array(await new Response(source.stream()).arrayBuffer());
}

/** Takes the next chunk of an archive; a returned promise holds the transfer until it resolves. */
export type ArchiveChunk = (chunk: Uint8Array) => unknown;

export interface ExecOutcome {
  /** 0-255, or 128+N when killed by signal N. */
  exitCode: number;
  timedOut: boolean;
  /** The program was killed for exceeding a limit of the sandbox (local: counted by its cgroup). */
  limitHit?: "memory";
}

export interface PtySpec {
  argv: string[];
  env: Record<string, string>;
  cwd?: string;
  cols: number;
  rows: number;
}

export interface PtySession {
  write(data: Uint8Array | string): void;
  resize(cols: number, rows: number): void;
  /**
   * The terminal's output from its first byte, in order, whenever it is read; it ends once the
   * session is over and everything it printed has been delivered (PtyOutput builds it).
   */
  readonly output: ReadableStream<Uint8Array>;
  /** Resolves with the remote process's exit code once it ends or the connection drops. */
  readonly exited: Promise<number>;
  kill(): Promise<void>;
}

export interface Provider {
  readonly name: string;
  readonly capabilities: Capabilities;
  create(spec: CreateSpec, signal?: AbortSignal): Promise<SandboxRecord>;
  /** null when no sandbox with that id exists (not an error). */
  get(id: string): Promise<SandboxRecord | null>;
  /** Every page; filtered by all given labels (server-side where the provider can). */
  list(filter: { labels?: Record<string, string> }): Promise<SandboxRecord[]>;
  exec(id: string, spec: ExecSpec): Promise<ExecOutcome>;
  /** Idempotent: destroying a sandbox that is already gone resolves. */
  destroy(id: string): Promise<void>;
  /**
   * Extract a tar archive into `dir` (created if missing), read from `tar` as it is sent (a
   * retried upload reads it again from its start). Requires capabilities.files.
   */
  putArchive?(id: string, dir: string, tar: ArchiveSource): Promise<void>;
  /**
   * Streams a tar of `path`, whose single top-level entry is basename(path), to `onChunk` in
   * order. A returned promise is awaited before more is read (as ExecSpec.onStdout's), so an
   * archive of any size passes through in bounded memory. Rejects when `path` cannot be read, or
   * with onChunk's own error, having stopped the transfer. Requires capabilities.files.
   */
  getArchive?(id: string, path: string, onChunk: ArchiveChunk): Promise<void>;
  /**
   * Creates a sandbox whose only job is `exec`, streams it, and lets the sandbox go (its removal
   * may finish after this resolves): the outcome of create + exec + destroy in fewer round trips.
   * Core uses it only where that sequence would do nothing else (a plain command, no files, not
   * kept or reused). Aborting `exec.signal` stops the command and removes the sandbox. Requires
   * capabilities.oneShot.
   */
  runOnce?(create: CreateSpec, exec: ExecSpec): Promise<ExecOutcome & { id: string }>;
  /** Requires capabilities.pty. */
  openPty?(id: string, spec: PtySpec): Promise<PtySession>;
  /** Release sockets and channels so the process can exit. */
  close?(): Promise<void>;
}

/** What `providers` reports about credentials, without any network call. */
export type DetectionScope = "full" | "configured";

export interface Detection {
  configured: boolean;
  /** Where the credentials came from: "E2B_API_KEY", "config.toml", "built in"… */
  source?: string;
  /** When not configured: what to set, e.g. "set E2B_API_KEY". */
  missing?: string;
  /** Extra facts for `providers` (isolation mode, engine version…). */
  details?: string;
}

export interface ProviderContext {
  env: Record<string, string | undefined>;
  /** The provider's table from config.toml ([providers.NAME]). */
  config: Record<string, unknown>;
  /** $XDG_STATE_HOME/sandboxes */
  stateDir: string;
}

export interface ProviderDescriptor {
  name: string;
  description: string;
  /** Static copy of the capabilities so `providers` needs no import. */
  capabilities: Capabilities;
  /**
   * Cheap: local files and the environment only, no network, no SDK import. Asynchronous so it
   * can use Bun's file API: node:fs alone costs ~1 ms of `sandboxes providers` (bench/startup.ts).
   * With scope "configured" only `configured` and `missing` are asked for: source and details
   * may be left out where they cost more (what loading a provider asks).
   */
  detect(ctx: ProviderContext, scope?: DetectionScope): Promise<Detection>;
  /** Lazily imports the implementation (and through it the SDK). */
  load(ctx: ProviderContext): Promise<Provider>;
}

export const NO_CAPABILITIES: Capabilities = {
  streaming: false,
  files: false,
  pty: false,
  resize: false,
  labels: false,
  stdin: false,
  networkIsolation: false,
  ttl: false,
  resources: false,
  mounts: false,
  oneShot: false,
};

/** Label keys of ours stored with every sandbox; user labels never start with this. */
export const LABEL_PREFIX = "sandboxes.";
