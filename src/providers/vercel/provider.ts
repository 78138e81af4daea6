/**
 * Vercel Sandbox through our own client (fetch; the command stream is NDJSON over one HTTP
 * response). The wire protocol, call by call, is written down at the top of
 * test/fakes/vercel/server.ts with the lines of @vercel/sandbox 3.5.0 each call comes from; the
 * SDK itself is only a devDependency, used to prove that fake.
 *
 * The sandbox NAME is the identifier in every sandbox path, so it is our sandbox id: `--name` when
 * given, else `sandboxes-<random>`. Commands and files go to the sandbox's current session, found
 * with GET /v2/sandboxes/{name}?resume=true (a stopped persistent sandbox is started again). Labels
 * are Vercel tags; list() asks the server for one of them and checks the others here.
 */
import { randomBytes } from "node:crypto";
import { ProviderError, SandboxesError } from "../../base/errors";
import { DEFAULT_RETRY, isNetworkFailure, isTransientStatus, withRetry } from "../retry";
import { allowListParts } from "../network";
import { type CreateSpec, type ExecOutcome, type ExecSpec, type Provider, type ProviderContext, type SandboxRecord } from "../types";
import { missingVercelCredentials, VERCEL_CAPABILITIES, type VercelCredentials, vercelCredentials, vercelUrl } from "./index";
import { notConfigured, seconds } from "../shared/settings";
import { HttpError, pumpBody, streamOf } from "../shared/http";
import { spool, spoolFrom, type Spooled } from "../shared/spool";
import { createOnce } from "../shared/create-once";
import { runThroughExec, stagedArchives } from "../shared/staged-archive";
import { hasLabels } from "../../base/keys";
import { stateMap } from "../shared/state";

/** Vercel keeps at most this many tags on a sandbox. */
const MAX_TAGS = 5;
/** Memory is not chosen at Vercel: every vCPU comes with this much. */
const MB_PER_VCPU = 2048;
/** `--image` values that are Vercel runtimes (POST /v2/sandboxes); anything else is an image (POST /v3/sandboxes). */
const RUNTIMES = new Set(["node22", "node24", "node26", "python3.13"]);
const REQUEST_TIMEOUT_MS = 60_000;
/** Create waits for the VM to boot; give it longer. */
const CREATE_TIMEOUT_MS = 180_000;

/**
 * Runs argv in a session (and process group) of its own, with $1 (a file, removed at once) or
 * nothing as its stdin, and waits for it. Vercel's kill signals one process; this shell turns the
 * SIGTERM we send into a SIGKILL of argv's whole group, so a timeout or Ctrl-C leaves no orphan
 * holding the output open. `wait` gives 128+N when argv dies of signal N.
 */
const EXEC_WRAPPER = [
  // Set before argv starts, so a kill that comes at once still reaches it ($! is empty until then).
  "trap 'kill -9 -$! 2>/dev/null || kill -9 $! 2>/dev/null; exit 143' TERM INT HUP",
  'i=$1; shift',
  'if [ -n "$i" ]; then exec 3<"$i"; rm -f "$i"; else exec 3</dev/null; fi',
  'if command -v setsid >/dev/null 2>&1; then setsid "$@" <&3 3<&- & else "$@" <&3 3<&- & fi',
  'p=$!',
  'exec 3<&-',
  // Dash reports a job killed by a signal ("Killed") on the shell's stderr, which is argv's too.
  'wait $p 2>/dev/null',
].join("\n");

interface SandboxJson {
  name: string;
  status?: string;
  tags?: Record<string, string>;
  createdAt?: number;
  runtime?: string;
  image?: string;
  currentSessionId?: string;
}

interface SessionJson {
  id: string;
  status?: string;
}

interface SandboxAndSession {
  sandbox: SandboxJson;
  session: SessionJson;
}

interface CommandJson {
  id: string;
  exitCode: number | null;
}

type LogLine = { stream: "stdout" | "stderr"; data: string } | { stream: "error"; data: { code: string; message: string } };

interface RequestOptions {
  query?: Record<string, string | undefined>;
  json?: unknown;
  body?: Uint8Array | Blob;
  headers?: Record<string, string>;
  timeoutMs?: number | null;
  signal?: AbortSignal;
}

export class VercelProvider implements Provider {
  readonly name = "vercel";
  readonly capabilities = VERCEL_CAPABILITIES;
  private readonly baseUrl: string;
  /** Sandbox name -> its running session, as last seen by this process. */
  private readonly sessions = new Map<string, string>();

  constructor(private readonly ctx: ProviderContext) {
    this.baseUrl = vercelUrl(ctx);
  }

  private credentials(): VercelCredentials {
    const found = vercelCredentials(this.ctx);
    if ("missing" in found) throw notConfigured("vercel", missingVercelCredentials(found.missing));
    return found;
  }

  /** One HTTP call with the team on it; a non-2xx answer becomes an HttpError (or, for a rejected token, a ProviderError). */
  private async request(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const { token, teamId } = this.credentials();
    const url = new URL(`${this.baseUrl}${path}`);
    url.searchParams.set("teamId", teamId);
    for (const [key, value] of Object.entries(options.query ?? {})) if (value !== undefined) url.searchParams.set(key, value);
    const headers: Record<string, string> = { Authorization: `Bearer ${token}`, "content-type": "application/json", ...options.headers };
    const body = options.json !== undefined ? JSON.stringify(options.json) : (options.body as Uint8Array<ArrayBuffer> | Blob | undefined);
    const signals = [options.signal, options.timeoutMs === null ? undefined : AbortSignal.timeout(options.timeoutMs ?? REQUEST_TIMEOUT_MS)].filter((s) => s !== undefined);
    const response = await fetch(url, { method, headers, body, signal: signals.length ? AbortSignal.any(signals) : undefined });
    if (response.ok) return response;
    const raw = await response.text().catch(() => "");
    let message = raw.trim().split("\n")[0] || response.statusText || "no details";
    let code: string | undefined;
    try {
      const parsed = JSON.parse(raw) as { error?: { code?: unknown; message?: unknown } };
      if (typeof parsed.error?.message === "string") message = parsed.error.message;
      if (typeof parsed.error?.code === "string") code = parsed.error.code;
    } catch {}
    if (response.status === 401 || response.status === 403) {
      throw new ProviderError(this.name, `the token was rejected: ${message}`, response.status, response.headers.get("x-vercel-id") ?? undefined, "check VERCEL_TOKEN, VERCEL_TEAM_ID and VERCEL_PROJECT_ID (or [providers.vercel] in config.toml)", "auth_failed");
    }
    throw HttpError.of(response, message, code, []);
  }

  private retry<T>(what: string, call: (attempt: number) => Promise<T>, signal?: AbortSignal, transient = isTransient): Promise<T> {
    return withRetry(this.name, what, call, transient, DEFAULT_RETRY, signal);
  }

  private sandboxPath(name: string): string {
    return `/v2/sandboxes/${encodeURIComponent(name)}`;
  }

  /** The sandbox and its session, or null when there is none by that name. */
  private async fetchSandbox(name: string, resume = false): Promise<SandboxAndSession | null> {
    try {
      const response = await this.request("GET", this.sandboxPath(name), { query: { projectId: this.credentials().projectId, resume: resume ? "true" : undefined } });
      return (await response.json()) as SandboxAndSession;
    } catch (error) {
      // A 400 (a name Vercel cannot parse) means there is no such sandbox as well.
      if (error instanceof HttpError && (error.status === 404 || error.status === 400)) return null;
      throw error;
    }
  }

  async create(spec: CreateSpec, signal?: AbortSignal): Promise<SandboxRecord> {
    const allow = allowListParts(spec.network);
    const { projectId } = this.credentials();
    const labels = Object.entries(spec.labels);
    if (labels.length > MAX_TAGS) {
      throw new SandboxesError("too_many_labels", `provider vercel keeps at most ${MAX_TAGS} tags per sandbox, and ${labels.length} labels were given`, "user", `use at most ${MAX_TAGS} -l labels`);
    }
    // --memory alone picks the vCPUs that come with it; with --cpus it has to be what they come with.
    const vcpus = spec.cpus ?? (spec.memoryMb !== undefined ? spec.memoryMb / MB_PER_VCPU : undefined);
    if (spec.memoryMb !== undefined && (vcpus === undefined || !Number.isInteger(vcpus) || spec.memoryMb !== vcpus * MB_PER_VCPU)) {
      throw new SandboxesError("unsupported", `provider vercel does not set memory on its own: every vCPU comes with ${MB_PER_VCPU} MB`, "user", `drop --memory, or use --cpus N for N x ${MB_PER_VCPU} MB`);
    }
    if (vcpus !== undefined && (!Number.isInteger(vcpus) || vcpus < 1)) {
      throw new SandboxesError("unsupported", `provider vercel allocates whole vCPUs: --cpus ${vcpus} is not one`, "user", "use --cpus 1, 2, 4 or 8");
    }
    const name = spec.name ?? `sandboxes-${randomBytes(5).toString("hex")}`;
    const ttlSeconds = spec.ttlSeconds ?? seconds(this.ctx.config.ttl);
    const runtime = spec.image !== undefined && RUNTIMES.has(spec.image) ? spec.image : undefined;
    const body = {
      projectId,
      name,
      ports: [],
      ...(ttlSeconds !== undefined ? { timeout: Math.round(ttlSeconds * 1000) } : {}),
      ...(vcpus !== undefined ? { resources: { vcpus } } : {}),
      ...(runtime ? { runtime } : spec.image !== undefined ? { image: spec.image } : {}),
      ...(spec.network?.mode === "none" ? { networkPolicy: { mode: "deny-all" } } : {}),
      // Only the listed domains and subnets are reachable.
      ...(allow ? { networkPolicy: { allow: allow.hosts, subnets: { allow: allow.cidrs } } } : {}),
      env: spec.env,
      tags: spec.labels,
    };
    const made = await createOnce({
      retry: (attempt) => this.retry(`creating sandbox ${name}`, attempt, signal),
      earlier: () => this.fetchSandbox(name),
      // A name we made up is ours alone, so after a lost answer the sandbox found under it is the
      // one we asked for; under a name the user chose, only if it carries exactly our tags.
      ours: (found) => spec.name === undefined || sameTags(found.sandbox.tags, spec.labels),
      create: async () => {
        try {
          const path = runtime ? "/v2/sandboxes" : "/v3/sandboxes";
          return (await (await this.request("POST", path, { json: body, timeoutMs: CREATE_TIMEOUT_MS, signal })).json()) as SandboxAndSession;
        } catch (error) {
          if (!(error instanceof HttpError) || isTransientStatus(error.status)) throw error;
          if (error.status === 409) {
            throw new ProviderError(this.name, `a sandbox named ${name} already exists`, 409, undefined, "pick another --name, or use that sandbox by name (exec)", "name_taken");
          }
          const hint = spec.image !== undefined ? `--image is a Vercel runtime (${[...RUNTIMES].join(", ")}) or a Vercel Container Registry image` : undefined;
          throw new ProviderError(this.name, `cannot create sandbox ${name}: ${error.message}`, error.status, undefined, hint, "bad_request");
        }
      },
      // Whatever was made under a name of ours must not outlive the failure.
      cleanUp: async () => (spec.name === undefined ? this.request("DELETE", this.sandboxPath(name), { query: { projectId } }) : undefined),
    });
    this.sessions.set(made.sandbox.name, made.session.id);
    return this.record(made.sandbox);
  }

  async get(id: string): Promise<SandboxRecord | null> {
    const found = await this.retry(`looking up sandbox ${id}`, () => this.fetchSandbox(id));
    return found ? this.record(found.sandbox) : null;
  }

  async list(filter: { labels?: Record<string, string> }): Promise<SandboxRecord[]> {
    const { projectId } = this.credentials();
    const wanted = Object.entries(filter.labels ?? {});
    // The API filters by a single tag; the others are checked here.
    const [first] = wanted;
    const records: SandboxRecord[] = [];
    let cursor: string | undefined;
    do {
      // A failed page is asked again with the same cursor, so retrying it is safe.
      const page = await this.retry("listing sandboxes", async () => {
        const query = { project: projectId, limit: "50", cursor, tags: first ? `${first[0]}:${first[1]}` : undefined };
        return (await (await this.request("GET", "/v2/sandboxes", { query })).json()) as { sandboxes?: SandboxJson[]; pagination?: { next?: string | null } };
      });
      for (const sandbox of page.sandboxes ?? []) records.push(this.record(sandbox));
      cursor = page.pagination?.next ?? undefined;
    } while (cursor);
    return records.filter((record) => hasLabels(record.labels, filter.labels));
  }

  private record(sandbox: SandboxJson): SandboxRecord {
    return {
      id: sandbox.name,
      provider: this.name,
      name: sandbox.name,
      state: stateOf(sandbox.status),
      labels: { ...sandbox.tags },
      createdAt: typeof sandbox.createdAt === "number" ? new Date(sandbox.createdAt).toISOString() : undefined,
      image: sandbox.runtime ?? sandbox.image,
    };
  }

  async destroy(id: string): Promise<void> {
    const { projectId } = this.credentials();
    this.sessions.delete(id);
    await this.retry(`destroying sandbox ${id}`, async () => {
      try {
        await this.request("DELETE", this.sandboxPath(id), { query: { projectId } });
      } catch (error) {
        // Already gone is what we wanted.
        if (!(error instanceof HttpError && error.status === 404)) throw error;
      }
    });
  }

  /** The id of the sandbox's running session, resuming a stopped one. */
  private async session(id: string, fresh = false): Promise<string> {
    const known = this.sessions.get(id);
    if (known && !fresh) return known;
    const found = await this.retry(`looking up sandbox ${id}`, () => this.fetchSandbox(id, true));
    if (!found) throw unknownSandbox(id);
    this.sessions.set(id, found.session.id);
    return found.session.id;
  }

  /**
   * A call against the sandbox's session. When the session has stopped (its timeout passed) the
   * API refuses before doing anything, so the call is made again on a resumed session.
   */
  private async inSession<T>(id: string, call: (sessionPath: string) => Promise<T>): Promise<T> {
    const path = (session: string) => `/v2/sandboxes/sessions/${encodeURIComponent(session)}`;
    try {
      return await call(path(await this.session(id)));
    } catch (error) {
      if (!(error instanceof HttpError && (error.status === 410 || error.status === 404 || (error.status === 422 && /stopping|snapshotting/.test(error.code ?? ""))))) throw error;
      return call(path(await this.session(id, true)));
    }
  }

  /**
   * Starts argv and returns the NDJSON stream of its logs and end, with the session it runs in.
   * Retried only when nothing can have run: the API refused with 429 or 5xx (the SDK retries those
   * too) or the connection was refused. A connection dropped after sending is not retried.
   */
  private startCommand(id: string, argv: string[], options: { env: Record<string, string>; cwd?: string; signal?: AbortSignal }): Promise<{ response: Response; session: string }> {
    const [command, ...args] = argv;
    return this.retry(
      `starting ${command ?? "a command"} in sandbox ${id}`,
      () =>
        this.inSession(id, async (session) => {
          const response = await this.request("POST", `${session}/cmd`, {
            json: { command, args, cwd: options.cwd, env: options.env, sudo: false, wait: true, logs: true },
            timeoutMs: null,
            signal: options.signal,
          });
          if (response.headers.get("content-type") !== "application/x-ndjson" || !response.body) {
            throw new ProviderError(this.name, `sandbox ${id} answered a command without its stream of output`, response.status);
          }
          return { response, session };
        }),
      options.signal,
      (error) => (error instanceof HttpError ? isTransientStatus(error.status) : isRefused(error)),
    );
  }

  async exec(id: string, spec: ExecSpec): Promise<ExecOutcome> {
    const stdinPath = spec.stdin ? await this.uploadStdin(id, spec.stdin, spec.signal) : "";
    if (spec.signal?.aborted) return { exitCode: 130, timedOut: false };
    const argv = ["sh", "-c", EXEC_WRAPPER, "sandboxes", stdinPath, ...spec.argv];
    const reading = new AbortController();
    const signal = spec.signal ? AbortSignal.any([reading.signal, spec.signal]) : reading.signal;
    const started = await this.startCommand(id, argv, { env: spec.env, cwd: spec.cwd, signal }).catch((error) => {
      if (spec.signal?.aborted) return undefined;
      throw error;
    });
    if (!started) return { exitCode: 130, timedOut: false };
    let commandPath: string | undefined;
    let exitCode: number | undefined;
    let timedOut = false;
    let stopWanted = false;
    let killing: Promise<unknown> | undefined;
    /** SIGTERM to the wrapper, which kills argv's group; then the stream ends by itself. */
    const stop = () => {
      if (!stopWanted) {
        stopWanted = true;
        // A command that will not die, or a stream that never names its command, must not hold us.
        setTimeout(() => reading.abort(), 5000).unref?.();
      }
      if (commandPath && !killing) killing = this.request("POST", `${commandPath}/kill`, { json: { signal: 15 }, timeoutMs: 15_000 }).catch(() => {});
    };
    const timer = spec.timeoutMs ? setTimeout(() => ((timedOut = true), stop()), spec.timeoutMs) : undefined;
    spec.signal?.addEventListener("abort", stop, { once: true });
    const encoder = new TextEncoder();
    try {
      for await (const line of ndjson(started.response.body!)) {
        const value = line as { command?: CommandJson } & Partial<LogLine>;
        if (value.command && commandPath === undefined) {
          commandPath = `${started.session}/cmd/${encodeURIComponent(value.command.id)}`;
          if (stopWanted) stop();
        } else if (value.command && typeof value.command.exitCode === "number") exitCode = value.command.exitCode;
        else if (value.stream === "stdout") await spec.onStdout(encoder.encode(value.data as string));
        else if (value.stream === "stderr") await spec.onStderr(encoder.encode(value.data as string));
        else if (value.stream === "error" && !stopWanted) {
          const problem = value.data as { code: string; message: string };
          throw new ProviderError(this.name, `sandbox ${id}: ${problem.message}`, problem.code, undefined, "the sandbox may have stopped (its --ttl ran out); check `sandboxes list -p vercel`");
        }
      }
    } catch (error) {
      // Reading is cut short on purpose once a stop did not end the stream in time.
      if (!stopWanted) throw error;
    } finally {
      if (timer) clearTimeout(timer);
      spec.signal?.removeEventListener("abort", stop);
    }
    if (killing) await killing;
    if (timedOut) return { exitCode: 124, timedOut: true };
    // Stopped by Ctrl-C: whatever exit the kill caused, the command was interrupted.
    if (spec.signal?.aborted) return { exitCode: 130, timedOut: false };
    if (exitCode === undefined) {
      throw new ProviderError(this.name, `the connection to sandbox ${id} ended before ${spec.argv[0] ?? "the command"} finished`, undefined, undefined, "the command may still be running in the sandbox");
    }
    return { exitCode: exitCode & 255, timedOut: false };
  }

  /**
   * The API that the SDK speaks has no stdin for commands, so stdin is read to its end (or until
   * `signal`) and written to a file in the sandbox's /tmp, which the wrapper opens as the command's
   * stdin and removes.
   */
  private async uploadStdin(id: string, stdin: Uint8Array | ReadableStream<Uint8Array>, signal?: AbortSignal): Promise<string> {
    const read = await spoolFrom(stdin, signal);
    try {
      if (signal?.aborted) return "";
      const path = `/tmp/.sandboxes-stdin-${randomBytes(8).toString("hex")}`;
      await this.writeFile(id, path, read);
      return path;
    } finally {
      read.remove();
    }
  }

  /**
   * One file into the sandbox, from a spooled file of ours (its size goes first in the tar): a
   * gzipped tar of it, extracted at / (POST fs/write), safe to repeat. The API takes that tar as
   * one body of known length: it is written to disk too (spool) and sent from there, so that a
   * copy of gigabytes is never held in memory.
   */
  private async writeFile(id: string, path: string, file: Spooled): Promise<void> {
    // (TypeScript's lib types the writable side as BufferSource, of which Uint8Array is one.)
    const gzip = new CompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>;
    const body = await spool(async (write) => pumpBody((await tarOfOne(path.replace(/^\/+/, ""), file)).pipeThrough(gzip), write));
    try {
      await this.retry(`uploading ${path}`, () =>
        this.inSession(id, (session) => this.request("POST", `${session}/fs/write`, { body: body.file(), headers: { "content-type": "application/gzip", "x-cwd": "/" }, timeoutMs: 10 * 60_000 })),
      );
    } finally {
      body.remove();
    }
  }

  /**
   * Files go as a tar staged in the sandbox's /tmp: fs/write and fs/read move whole files byte for
   * byte, and `tar` in the sandbox packs or unpacks the tree (fs/write would extract a tree itself,
   * but not into a directory that does not exist yet).
   */
  private readonly archives = stagedArchives(this, (id) => {
    return {
      // fs/write takes a gzipped tar of the file, made here (writeFile) from the archive on disk.
      upload: async (path, source) => {
        const file = await spoolFrom(source.stream());
        try {
          await this.writeFile(id, path, file);
        } finally {
          file.remove();
        }
      },
      download: (path, what) =>
        this.retry(what, () => this.inSession(id, async (session) => streamOf(await this.request("POST", `${session}/fs/read`, { json: { path, cwd: "/" }, timeoutMs: 10 * 60_000 })))),
      run: runThroughExec((spec) => this.exec(id, spec), 10 * 60_000),
    };
  });
  readonly putArchive = this.archives.putArchive;
  readonly getArchive = this.archives.getArchive;
}

/** tar(1)'s record: an archive's length is a multiple of it. */
const TAR_RECORD = 10240;

/**
 * A tar of one regular file (`name`, mode 0644, owned by root, as tar would pack it) whose
 * contents are a spooled file's: its header, the file as it is read, then the padding and the two
 * empty blocks that end an archive, up to a whole record.
 */
async function tarOfOne(name: string, file: Spooled): Promise<ReadableStream<Uint8Array>> {
  const { Header } = await import("tar");
  const header = new Header({ path: name, mode: 0o644, uid: 0, gid: 0, size: file.size, mtime: new Date(), type: "File", uname: "", gname: "" });
  // Our staged paths are short: a name that needs a pax header is a bug of ours.
  if (header.encode()) throw new Error(`bug: ${name} does not fit a tar header`);
  const used = 512 + Math.ceil(file.size / 512) * 512 + 1024;
  const tail = new Uint8Array(Math.ceil(used / TAR_RECORD) * TAR_RECORD - 512 - file.size);
  const parts = (async function* () {
    yield new Uint8Array(header.block!);
    yield* file.file().stream();
    yield tail;
  })();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await parts.next();
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
  });
}

/** Parsed lines of an NDJSON body, as they arrive. */
async function* ndjson(body: ReadableStream<Uint8Array>): AsyncGenerator<unknown> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of body) {
    pending += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, newline).trim();
      pending = pending.slice(newline + 1);
      if (line) yield JSON.parse(line);
    }
  }
  if (pending.trim()) yield JSON.parse(pending);
}

function unknownSandbox(id: string): SandboxesError {
  return new SandboxesError("unknown_sandbox", `no Vercel sandbox named ${id}`, "user", "see `sandboxes list -p vercel`");
}

function sameTags(found: Record<string, string> | undefined, wanted: Record<string, string>): boolean {
  const a = Object.entries(found ?? {}).sort();
  const b = Object.entries(wanted).sort();
  return a.length === b.length && a.every(([key, value], i) => b[i]![0] === key && b[i]![1] === value);
}

/** A stopped sandbox keeps its files (when persistent) and starts again on the next command. */
const stateOf = stateMap({ running: ["running"], creating: ["pending"], stopped: ["stopping", "stopped", "snapshotting"], error: ["failed", "aborted"] });

/** The connection was refused: the request cannot have arrived. */
function isRefused(error: unknown): boolean {
  const code = (error as { code?: string })?.code;
  return code === "ECONNREFUSED" || code === "ConnectionRefused";
}

/** 408/429/5xx answers, timeouts and refused or dropped connections are worth another try. */
export function isTransient(error: unknown): boolean {
  if (error instanceof SandboxesError) return false;
  if (error instanceof HttpError) return isTransientStatus(error.status);
  return isNetworkFailure(error);
}
