/**
 * Modal through its official JS SDK (`modal` 0.11.x, imported here and only here).
 *
 * Labels are Modal sandbox tags, so `list --label` and `run --reuse` filter on the server and
 * work across processes; our own facts (name, image, creation token) are tags under
 * LABEL_PREFIX. Sandboxes live in one Modal app (`sandboxes` unless configured).
 */
import { randomUUID } from "node:crypto";
import type { App, ModalClient, Sandbox } from "modal";
import { ProviderError, SandboxesError } from "../../base/errors";
import { archivesThroughExec } from "../shared/exec-archive";
import { withRetry } from "../retry";
import { allowListParts } from "../network";
import { type CreateSpec, type ExecOutcome, type ExecSpec, LABEL_PREFIX, type Provider, type ProviderContext, type PtySession, type PtySpec, type SandboxRecord } from "../types";
import { releaseChannels, trackChannels } from "./channels";
import { findModalCredentials, MISSING_CREDENTIALS } from "./credentials";
import { MODAL_CAPABILITIES } from "./index";
import { PtyOutput } from "../shared/pty";
import { shellQuote } from "../../base/quote";
import { dict, hasLabels } from "../../base/keys";
import { notConfigured } from "../shared/settings";

type ContainerProcess = import("modal").ContainerProcess<Uint8Array>;

const PROVIDER = "modal";
const DEFAULT_IMAGE = "python:3.12-slim";
const DEFAULT_APP = "sandboxes";
/** Modal's own default is 5 minutes: too short for a kept sandbox that `exec` comes back to. */
const DEFAULT_TTL_SECONDS = 3600;
const TAG = { name: `${LABEL_PREFIX}name`, image: `${LABEL_PREFIX}image`, token: `${LABEL_PREFIX}token`, created: `${LABEL_PREFIX}created` };
/** gRPC status codes worth another try on an idempotent call. */
const TRANSIENT = new Set(["UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "ABORTED", "INTERNAL", "UNKNOWN", "CANCELLED"]);
const STATUS_NAMES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"];
const STDIN_CHUNK = 1 << 20;

/** nice-grpc's ClientError, recognised by shape so this file needs no nice-grpc import. */
function grpcStatus(error: unknown): string | undefined {
  const e = error as { name?: string; code?: unknown; details?: unknown };
  if (e && typeof e.code === "number" && (e.name === "ClientError" || typeof e.details === "string")) return STATUS_NAMES[e.code];
  return undefined;
}

function grpcPath(error: unknown): string {
  return String((error as { path?: unknown })?.path ?? "");
}

function hintFor(status: string | undefined): string {
  if (status === "UNAUTHENTICATED" || status === "PERMISSION_DENIED") return `check your Modal token: ${MISSING_CREDENTIALS}`;
  if (status === "UNAVAILABLE") return "Modal is unavailable right now (HTTP 503); check https://status.modal.com and retry";
  if (status === "RESOURCE_EXHAUSTED") return "Modal is rate-limiting this account or out of capacity (HTTP 429); wait a little and retry";
  if (status === "DEADLINE_EXCEEDED") return "Modal did not answer in time; check https://status.modal.com and retry";
  if (status && TRANSIENT.has(status)) return "Modal failed on its side; retry, and check https://status.modal.com if it persists";
  return "rerun with SANDBOXES_DEBUG=1 for details";
}

/** One line naming Modal, what failed and the gRPC status; SandboxesErrors pass through. */
function toProviderError(error: unknown, what: string): SandboxesError {
  if (error instanceof SandboxesError) return error;
  // The SDK's own argument checks (absolute workdir, env names, sizes): the user's to fix.
  if ((error as Error)?.name === "InvalidError") return new SandboxesError("invalid_request", `modal: ${what} failed: ${(error as Error).message}`, "user");
  const status = grpcStatus(error) ?? ((error as Error)?.name === "NotFoundError" ? "NOT_FOUND" : undefined);
  const detail = (error as { details?: string }).details || (error as Error)?.message || String(error);
  // A first line that ends in a colon ("… failed with the exception:") goes on with the reason.
  return new ProviderError(PROVIDER, `${what} failed: ${detail.replace(/:\s*\n\s*/, ": ").split("\n")[0]}`, status, undefined, hintFor(status));
}

const isTransient = (error: unknown) => error instanceof ProviderError && TRANSIENT.has(String(error.status));
const isNotFound = (error: unknown) => {
  const status = grpcStatus(error) ?? (error instanceof ProviderError ? String(error.status) : undefined);
  return status === "NOT_FOUND" || status === "INVALID_ARGUMENT" || (error as Error)?.name === "NotFoundError";
};

function splitTags(tags: Record<string, string>): { labels: Record<string, string>; own: Record<string, string> } {
  const labels = dict<string>();
  const own = dict<string>();
  for (const [key, value] of Object.entries(tags)) (key.startsWith(LABEL_PREFIX) ? own : labels)[key] = value;
  return { labels, own };
}


export class ModalProvider implements Provider {
  readonly name = PROVIDER;
  readonly capabilities = MODAL_CAPABILITIES;
  private client?: Promise<ModalClient>;
  private app?: Promise<App | undefined>;
  private readonly handles = new Map<string, Sandbox>();

  constructor(private readonly ctx: ProviderContext) {}

  private setting(key: string): string | undefined {
    const value = this.ctx.config[key];
    return typeof value === "string" && value ? value : undefined;
  }

  private sdk(): Promise<ModalClient> {
    this.client ??= this.connect();
    this.client.catch(() => (this.client = undefined));
    return this.client;
  }

  private async connect(): Promise<ModalClient> {
    const credentials = await findModalCredentials(this.ctx.env, this.ctx.config);
    if (!credentials) throw notConfigured("modal", MISSING_CREDENTIALS);
    const { ModalClient } = await import("modal");
    await trackChannels();
    const debug = this.ctx.env.SANDBOXES_DEBUG ? (message: string, ...args: unknown[]) => process.stderr.write(`modal: ${message} ${args.map(String).join(" ")}\n`) : () => {};
    return new ModalClient({
      tokenId: credentials.tokenId,
      tokenSecret: credentials.tokenSecret,
      environment: this.setting("environment"),
      // Providers never print: the SDK's warnings go to the debug log only.
      logger: { debug, info: debug, warn: debug, error: debug },
      grpcMiddleware: [
        // Creates are retried by create() itself, which looks for the sandbox a lost reply made
        // before trying again; the SDK's blind resend could make a second one.
        async function* noBlindCreateRetry(call: { method: { path: string }; next: Function; request: unknown }, options: object) {
          const own = call.method.path.endsWith("/SandboxCreateV2") ? { ...options, retries: 0 } : options;
          return yield* call.next(call.request, own);
        } as never,
      ],
    });
  }

  /**
   * An idempotent SDK call with our retry budget on top of the SDK's own. Errors become one
   * line naming Modal; a SandboxesError thrown inside (a user error) comes out unchanged.
   */
  private async call<T>(what: string, fn: () => Promise<T>, signal?: AbortSignal, retryable: (error: unknown, cause: unknown) => boolean = isTransient): Promise<T> {
    let final: SandboxesError | undefined;
    const worthRetrying = new WeakSet<object>();
    try {
      return await withRetry(
        PROVIDER,
        what,
        async () => {
          try {
            return await fn();
          } catch (error) {
            const mapped = toProviderError(error, what);
            if (!(mapped instanceof ProviderError)) final = mapped;
            else if (retryable(mapped, error)) worthRetrying.add(mapped);
            throw mapped;
          }
        },
        (error) => worthRetrying.has(error as object),
        undefined,
        signal,
      );
    } catch (error) {
      throw final ?? error;
    }
  }

  /** The app our sandboxes live in; only create() makes it, so list on a fresh account makes nothing. */
  private appHandle(create = true): Promise<App | undefined> {
    if (this.app) return this.app;
    const lookup = (async () => {
      const client = await this.sdk();
      const name = this.setting("app") ?? DEFAULT_APP;
      try {
        return await this.call(`look up app ${name}`, () => client.apps.fromName(name, { createIfMissing: create }));
      } catch (error) {
        if (!create && isNotFound(error)) return undefined;
        throw error;
      }
    })();
    lookup.then((app) => app && (this.app = Promise.resolve(app)), () => {});
    return lookup;
  }

  private async requireApp(): Promise<App> {
    return (await this.appHandle(true))!;
  }

  private async handle(id: string): Promise<Sandbox> {
    let sandbox = this.handles.get(id);
    if (!sandbox) {
      sandbox = await (await this.sdk()).sandboxes.fromId(id);
      this.handles.set(id, sandbox);
    }
    return sandbox;
  }

  private record(id: string, tags: Record<string, string>, createdAt?: number): SandboxRecord {
    const { labels, own } = splitTags(tags);
    const created = createdAt ? new Date(createdAt * 1000).toISOString() : own[TAG.created];
    return {
      id,
      provider: PROVIDER,
      ...(own[TAG.name] ? { name: own[TAG.name] } : {}),
      state: "running",
      labels,
      ...(created ? { createdAt: created } : {}),
      ...(own[TAG.image] ? { image: own[TAG.image] } : {}),
    };
  }

  async create(spec: CreateSpec, signal?: AbortSignal): Promise<SandboxRecord> {
    const allow = allowListParts(spec.network);
    const client = await this.sdk();
    const app = await this.requireApp();
    const imageName = spec.image ?? this.setting("image") ?? DEFAULT_IMAGE;
    const image = client.images.fromRegistry(imageName);
    await this.call(`pull image ${imageName}`, () => image.build(app), signal).catch((error) => {
      throw error instanceof ProviderError && !isTransient(error)
        ? new SandboxesError("image_failed", `modal: cannot use image ${imageName}: ${error.message.replace(/^modal: .*? failed: /, "").split("\n")[0]}`, "user", "pass --image with a public registry image, e.g. python:3.12-slim")
        : error;
    });
    // A token of ours, so a create whose reply was lost can be found instead of made twice.
    const token = randomUUID();
    const createdAt = new Date().toISOString();
    const tags = { ...spec.labels, [TAG.token]: token, [TAG.image]: imageName, [TAG.created]: createdAt, ...(spec.name ? { [TAG.name]: spec.name } : {}) };
    const ttlSeconds = Math.ceil(spec.ttlSeconds ?? Number(this.ctx.config.ttl ?? DEFAULT_TTL_SECONDS));
    if (!Number.isFinite(ttlSeconds) || ttlSeconds <= 0) {
      throw new SandboxesError("bad_config", `ttl for modal must be a positive number of seconds, got ${String(this.ctx.config.ttl)}`, "user", "fix ttl under [providers.modal] in config.toml");
    }
    let attempts = 0;
    const sandbox = await this.call(
      "create sandbox",
      async (): Promise<Sandbox> => {
        if (attempts++ > 0) {
          const made = await this.byToken(token);
          if (made[0]) return made[0];
        }
        return client.sandboxes.create(app, image, {
          tags,
          env: spec.env,
          timeoutMs: ttlSeconds * 1000,
          ...(spec.cpus ? { cpu: spec.cpus } : {}),
          ...(spec.memoryMb ? { memoryMiB: spec.memoryMb } : {}),
          ...(spec.network?.mode === "none" ? { blockNetwork: true } : {}),
          ...(allow ? { outboundCidrAllowlist: allow.cidrs, outboundDomainAllowlist: allow.hosts } : {}),
        });
      },
      signal,
    );
    // Listing may lag behind a create: after any retry, make sure only one sandbox carries the token.
    if (attempts > 1) await this.dropDuplicates(token, sandbox.sandboxId);
    this.handles.set(sandbox.sandboxId, sandbox);
    return this.record(sandbox.sandboxId, tags);
  }

  private async byToken(token: string): Promise<Sandbox[]> {
    const client = await this.sdk();
    const app = await this.requireApp();
    const found: Sandbox[] = [];
    for await (const sandbox of client.sandboxes.list({ appId: app.appId, tags: { [TAG.token]: token } })) found.push(sandbox);
    return found;
  }

  /** A retried create whose first reply was lost may have made two: keep one. */
  private async dropDuplicates(token: string, keep: string): Promise<void> {
    const all = await this.call("check for a duplicate sandbox", () => this.byToken(token));
    for (const extra of all.filter((s) => s.sandboxId !== keep)) {
      await this.call(`terminate duplicate sandbox ${extra.sandboxId}`, () => extra.terminate());
      extra.detach();
    }
  }

  async get(id: string): Promise<SandboxRecord | null> {
    if (!id.trim()) return null;
    const sandbox = await this.handle(id);
    try {
      // poll() answers null while the sandbox runs; a finished sandbox is of no more use.
      const exit = await this.call(`look up sandbox ${id}`, () => sandbox.poll());
      if (exit !== null) return this.forget(id);
      const tags = await this.call(`read tags of sandbox ${id}`, () => sandbox.getTags());
      return this.record(id, tags);
    } catch (error) {
      if (isNotFound(error)) return this.forget(id);
      throw error;
    }
  }

  private forget(id: string): null {
    this.handles.get(id)?.detach();
    this.handles.delete(id);
    return null;
  }

  async list(filter: { labels?: Record<string, string> }): Promise<SandboxRecord[]> {
    const client = await this.sdk();
    const app = await this.appHandle(false);
    if (!app) return [];
    const tags = (filter.labels ?? {}) as Record<string, string>;
    const tagList = Object.entries(tags).map(([tagName, tagValue]) => ({ tagName, tagValue }));
    const records: SandboxRecord[] = [];
    // The SDK's list yields bare ids; the same RPC's replies carry tags and creation times.
    let before: number | undefined;
    while (true) {
      const page = await this.call("list sandboxes", () =>
        client.cpClient.sandboxListV2({ appId: app.appId, tags: tagList, includeFinished: false, ...(before ? { beforeTimestamp: before } : {}) }),
      );
      if (page.sandboxes.length === 0) break;
      for (const info of page.sandboxes) {
        // Every sandbox of ours has tags; a reply without them (the proto calls the field "not
        // yet exposed") is completed with one SandboxTagsGetV2 call.
        const own = info.tags.length
          ? Object.fromEntries(info.tags.map((t) => [t.tagName, t.tagValue]))
          : await this.call(`read tags of sandbox ${info.id}`, async () => (await this.handle(info.id)).getTags());
        // The filter is the server's; checked again so a server ignoring it cannot widen it.
        if (hasLabels(own, tags)) records.push(this.record(info.id, own, info.createdAt));
      }
      before = page.sandboxes[page.sandboxes.length - 1]!.createdAt;
    }
    return records.sort((a, b) => (a.createdAt ?? "").localeCompare(b.createdAt ?? ""));
  }

  async destroy(id: string): Promise<void> {
    if (!id.trim()) return;
    const sandbox = await this.handle(id);
    try {
      await this.call(`destroy sandbox ${id}`, () => sandbox.terminate());
    } catch (error) {
      if (!isNotFound(error)) throw error;
    } finally {
      sandbox.detach();
      this.handles.delete(id);
    }
  }

  /**
   * Starts a command. Only the lookups before TaskExecStart (task id, router access) are ours to
   * retry: the SDK already retries the start itself with the same exec id, and a second start
   * with a fresh id could run the command twice.
   */
  private async start(id: string, argv: string[], params: Record<string, unknown>): Promise<ContainerProcess> {
    const sandbox = await this.handle(id);
    return this.call(
      `run a command in sandbox ${id}`,
      async () => {
        try {
          return (await sandbox.exec(argv, { mode: "binary", ...params } as never)) as unknown as ContainerProcess;
        } catch (error) {
          if (isNotFound(error) || (error as Error)?.name === "ConflictError") {
            throw new SandboxesError("unknown_sandbox", `no running modal sandbox ${id}`, "user", "see `sandboxes list -p modal`");
          }
          throw error;
        }
      },
      undefined,
      // Retried only when it cannot have started: it failed on the control plane, or the router
      // refused it as over a limit (RESOURCE_EXHAUSTED, gRPC's 429).
      (mapped, cause) => isTransient(mapped) && (grpcPath(cause).includes("/modal.client.ModalClient/") || grpcStatus(cause) === "RESOURCE_EXHAUSTED"),
    );
  }

  async exec(id: string, spec: ExecSpec): Promise<ExecOutcome> {
    // Modal takes whole seconds and kills the command itself when they run out.
    const serverTimeoutMs = spec.timeoutMs ? Math.max(1000, Math.ceil(spec.timeoutMs / 1000) * 1000) : undefined;
    // No RPC signals a running command, so an abortable one records its pid for stopTree().
    const pidFile = spec.signal ? `/tmp/.sandboxes-exec-${randomUUID()}` : undefined;
    const argv = pidFile ? ["sh", "-c", RECORD_PID, pidFile, ...spec.argv] : spec.argv;
    // Modal's own clock starts somewhere in this call, before ours below.
    const requested = Date.now();
    const command = await this.start(id, argv, {
      env: spec.env,
      ...(spec.cwd ? { workdir: spec.cwd } : {}),
      ...(serverTimeoutMs ? { timeoutMs: serverTimeoutMs } : {}),
    });
    // --timeout bounds the command's own run, as on every provider: a slow start does not count.
    const started = Date.now();
    let timedOut = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<void>((resolve) => {
      if (spec.timeoutMs) timer = setTimeout(() => ((timedOut = true), resolve()), Math.max(0, started + spec.timeoutMs - Date.now()));
    });
    const aborted = new Promise<void>((resolve) => {
      if (spec.signal?.aborted) resolve();
      spec.signal?.addEventListener("abort", () => resolve(), { once: true });
    });
    const pump = async (stream: ReadableStream<Uint8Array>, sink: (chunk: Uint8Array) => unknown) => {
      for await (const chunk of stream) if (chunk.length) await sink(chunk);
    };
    // Past the (rounded-up) deadline that Modal itself enforces, counted from our request: its
    // clock started after that, so a kill it made at its deadline lands after this point.
    const pastModalsDeadline = () => serverTimeoutMs !== undefined && Date.now() - requested >= serverTimeoutMs;
    const work = Promise.all([
      this.feedStdin(command, spec.stdin),
      pump(command.stdout as ReadableStream<Uint8Array>, spec.onStdout),
      pump(command.stderr as ReadableStream<Uint8Array>, spec.onStderr),
      command.wait(),
    ]);
    try {
      const first = await Promise.race([work.then((r) => ({ done: r[3] })), expired.then(() => ({ expired: true })), aborted.then(() => ({ aborted: true }))]);
      if ("done" in first) {
        // Modal's own kill at the (rounded-up) deadline can win the race with our timer: a command
        // that died of a signal once its time was up timed out.
        if (spec.timeoutMs && first.done > 128 && (Date.now() - started >= spec.timeoutMs || pastModalsDeadline())) return { exitCode: 124, timedOut: true };
        return { exitCode: first.done, timedOut: false };
      }
      if ("aborted" in first) {
        command.stdout.cancel().catch(() => {});
        command.stderr.cancel().catch(() => {});
        work.catch(() => {});
        if (pidFile) await this.stopTree(id, pidFile);
        return { exitCode: 130, timedOut: false };
      }
      // Timed out: Modal kills the command when its whole-second timeout ends; wait for that.
      await Promise.race([work.catch(() => {}), Bun.sleep(5000)]);
      return { exitCode: 124, timedOut: true };
    } catch (error) {
      // The SDK's own deadline (the same instant, rounded up) may fail a read just before ours fires.
      if (timedOut || (spec.timeoutMs && (Date.now() - started >= spec.timeoutMs || pastModalsDeadline()))) return { exitCode: 124, timedOut: true };
      throw toProviderError(error, `run a command in sandbox ${id}`);
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  /**
   * Ctrl-C for a command on Modal, which has no call to signal one: a second command sends
   * SIGTERM to the recorded process and all its descendants (then SIGKILL to what is left a
   * moment later), found through /proc. Best effort, bounded: the caller is already on its way out.
   */
  private async stopTree(id: string, pidFile: string): Promise<void> {
    const stop = this.exec(id, { argv: ["sh", "-c", STOP_TREE, "sh", pidFile], env: {}, onStdout() {}, onStderr() {} }).catch(() => {});
    await Promise.race([stop, Bun.sleep(5000)]);
  }

  private async feedStdin(command: ContainerProcess, stdin: ExecSpec["stdin"]): Promise<void> {
    const writer = (command.stdin as WritableStream<Uint8Array>).getWriter();
    try {
      if (stdin instanceof Uint8Array) {
        for (let offset = 0; offset < stdin.length; offset += STDIN_CHUNK) await writer.write(stdin.subarray(offset, offset + STDIN_CHUNK));
      } else if (stdin) {
        for await (const chunk of stdin) for (let offset = 0; offset < chunk.length; offset += STDIN_CHUNK) await writer.write(chunk.subarray(offset, offset + STDIN_CHUNK));
      }
      await writer.close();
    } finally {
      writer.releaseLock();
    }
  }

  /** tar through exec: binary safe, one round trip, and directories keep their modes. */
  private readonly archives = archivesThroughExec((id, spec) => this.exec(id, spec));
  readonly putArchive = this.archives.putArchive;
  readonly getArchive = this.archives.getArchive;

  /**
   * The SDK opens every PTY at 80x24 and cannot resize it, so the command first sets the size
   * asked for with stty; it records its pid so kill() can end it (no RPC signals a command).
   */
  async openPty(id: string, spec: PtySpec): Promise<PtySession> {
    const pidFile = `/tmp/.sandboxes-pty-${randomUUID()}`;
    const wrapper = `echo $$ > ${shellQuote(pidFile)}; stty cols ${spec.cols} rows ${spec.rows} 2>/dev/null; exec "$@"`;
    const command = await this.start(id, ["sh", "-c", wrapper, "sh", ...spec.argv], { pty: true, env: spec.env, ...(spec.cwd ? { workdir: spec.cwd } : {}) });
    const output = new PtyOutput();
    const writer = (command.stdin as WritableStream<Uint8Array>).getWriter();
    let writes = Promise.resolve();
    const reading = (async () => {
      for await (const chunk of command.stdout as ReadableStream<Uint8Array>) output.push(chunk);
    })().catch(() => {});
    const exited = command
      .wait()
      .then(async (code) => {
        await Promise.race([reading, Bun.sleep(1000)]);
        return code;
      })
      .catch(() => 255);
    // exec replaced the shell, so nobody else is left to remove the pid file.
    exited.then(() => this.exec(id, { argv: ["rm", "-f", pidFile], env: {}, onStdout() {}, onStderr() {} })).catch(() => {});
    return {
      write: (data) => {
        const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
        writes = writes.then(() => writer.write(bytes)).catch(() => {});
      },
      resize: () => {},
      output: output.endWhen(exited),
      exited,
      kill: async () => {
        await this.exec(id, { argv: ["sh", "-c", 'kill -KILL "$(cat "$1")" 2>/dev/null; true', "sh", pidFile], env: {}, onStdout() {}, onStderr() {} }).catch(() => {});
        await Promise.race([exited, Bun.sleep(5000)]);
      },
    };
  }

  /** Releases every gRPC channel, so nothing of ours keeps the process alive. */
  async close(): Promise<void> {
    for (const sandbox of this.handles.values()) sandbox.detach();
    this.handles.clear();
    const client = await this.client?.catch(() => undefined);
    this.client = undefined;
    this.app = undefined;
    if (!client) return;
    client.close();
    releaseChannels();
  }
}

/**
 * Runs "$@" as a child of a shell whose pid is written to the file $0, and passes its exit code
 * on; the file goes when the command ends. Not `exec`: the shell stays the root of the tree.
 */
const RECORD_PID = 'echo $$ > "$0" 2>/dev/null; "$@"; status=$?; rm -f "$0"; exit $status';

/**
 * Signals the tree under the pid in $1: children from /proc/PID/task/TID/children where the
 * kernel has them, else from the ppid field of /proc/PID/stat. Stopped first, so nothing forks
 * away between listing and killing.
 */
const STOP_TREE = [
  'root=$(cat "$1" 2>/dev/null) || exit 0',
  "children() {",
  '  if [ -e "/proc/$1/task/$1/children" ]; then cat /proc/"$1"/task/*/children 2>/dev/null',
  "  else for s in /proc/[0-9]*/stat; do",
  '    line=$(cat "$s" 2>/dev/null) || continue; rest=${line##*) }; set -- "$1" $rest',
  '    [ "$3" = "$1" ] && { p=${s#/proc/}; echo "${p%/stat}"; }',
  "  done; fi",
  "}",
  'tree() { kill -STOP "$1" 2>/dev/null; echo "$1"; for c in $(children "$1"); do tree "$c"; done; }',
  'pids=$(tree "$root")',
  "kill -TERM $pids 2>/dev/null; kill -CONT $pids 2>/dev/null",
  "sleep 1; kill -KILL $pids 2>/dev/null",
  'rm -f "$1"; exit 0',
].join("\n");

