/**
 * Sprites by Fly.io through our own client: REST/JSON under /v1/sprites (fetch), exec over a
 * WebSocket with binary frames [stream][payload] (Bun's WebSocket), files through the fs
 * endpoints. The vendor SDK (@fly/sprites) is only a devDependency, used to prove the test fake.
 *
 * The sprite NAME is the identifier in every path, so it is our sandbox id: `--name` when given,
 * else `sandboxes-<random>`. Labels are a string array at Sprites: ours are stored as "key=value"
 * and list() filters them on this side (the API filters only by name prefix).
 */
import { randomBytes, randomUUID } from "node:crypto";
import { ProviderError, SandboxesError } from "../../base/errors";
import { DEFAULT_RETRY, isNetworkFailure, isTransientStatus, withRetry } from "../retry";
import { type CreateSpec, type ExecOutcome, type ExecSpec, LABEL_PREFIX, type Provider, type ProviderContext, type PtySession, type PtySpec, type SandboxRecord } from "../types";
import { MISSING_TOKEN, SPRITES_CAPABILITIES, spritesToken, spritesUrl } from "./index";
import { ExecSocket, Stream } from "./socket";
import { stagedArchives } from "../shared/staged-archive";
import { feedInChunks } from "../stdin";
import { PtyOutput } from "../shared/pty";
import { CREATE_TOKEN_KEY as TOKEN_KEY, createOnce } from "../shared/create-once";
import { HttpError, requestBody, streamOf } from "../shared/http";
import { dict, hasLabels, own } from "../../base/keys";
import { stateMap } from "../shared/state";
import { notConfigured } from "../shared/settings";

/** Our own labels; user labels never start with LABEL_PREFIX. */
const NAME_KEY = `${LABEL_PREFIX}name`;

const STDIN_CHUNK = 64 * 1024;
const REQUEST_ID_HEADERS = ["fly-request-id", "x-request-id"];
const REQUEST_TIMEOUT_MS = 60_000;
/** Create may wait for capacity at Sprites; like the SDK, give it two minutes. */
const CREATE_TIMEOUT_MS = 120_000;

/**
 * Runs argv in a session (and process group) of its own and writes that group's id to $1, so a
 * timeout or Ctrl-C can kill the whole tree from a second exec: Sprites' exec socket cannot
 * signal a process group. argv runs as a child of `sh`, whose `$?` turns a signal death into 128+N.
 */
const EXEC_WRAPPER = [
  'f=$1; shift',
  `if command -v setsid >/dev/null 2>&1; then exec setsid -w /bin/sh -c 'echo $$ > "$0"; "$@"; c=$?; rm -f "$0"; exit $c' "$f" "$@"; fi`,
  'echo $$ > "$f"; "$@"; c=$?; rm -f "$f"; exit $c',
].join("\n");

/**
 * Kills the process group whose id EXEC_WRAPPER wrote to $1 (or the one process, without
 * setsid). `kill -9 -PGID`, not `kill -9 -- -PGID`: dash's builtin kill refuses the `--`.
 */
const KILL_SCRIPT = 'p=$(cat "$1" 2>/dev/null); if [ -n "$p" ]; then kill -9 "-$p" 2>/dev/null || kill -9 "$p" 2>/dev/null; fi; rm -f "$1"; true';

/**
 * In TTY mode Sprites sends no exit frame (the SDKs read 0 from a normal close, else 1), so the
 * program's exit code is written to $1 and read back by a second exec once the terminal closes.
 * The trap keeps this shell alive through a Ctrl-C meant for the program; the program itself gets
 * the default handlers back.
 */
const PTY_WRAPPER = 'f=$1; shift; trap : INT QUIT; "$@"; c=$?; echo "$c" > "$f"; exit $c';

interface SpriteJson {
  id?: string;
  name: string;
  status?: string;
  labels?: string[] | null;
  created_at?: string;
}

interface RequestOptions {
  query?: Record<string, string | undefined>;
  json?: unknown;
  body?: Uint8Array | ReadableStream<Uint8Array>;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export class SpritesProvider implements Provider {
  readonly name = "sprites";
  readonly capabilities = SPRITES_CAPABILITIES;
  private readonly baseUrl: string;

  constructor(private readonly ctx: ProviderContext) {
    this.baseUrl = spritesUrl(ctx);
  }

  private token(): string {
    const credential = spritesToken(this.ctx);
    if (!credential) throw notConfigured("sprites", MISSING_TOKEN);
    return credential.value;
  }

  private url(path: string, query: Record<string, string | undefined> = {}): URL {
    const url = new URL(`${this.baseUrl}${path}`);
    for (const [key, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(key, value);
    return url;
  }

  /** One HTTP call; a non-2xx answer becomes an HttpError (or, for a rejected token, a ProviderError). */
  private async request(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.token()}` };
    const body = requestBody(options, headers);
    const timeout = AbortSignal.timeout(options.timeoutMs ?? REQUEST_TIMEOUT_MS);
    const response = await fetch(this.url(path, options.query), { method, headers, body, signal: options.signal ? AbortSignal.any([timeout, options.signal]) : timeout });
    if (response.ok) return response;
    const text = await response.text().catch(() => "");
    let message = text.trim() || response.statusText || "no details";
    let code: string | undefined;
    try {
      const parsed = JSON.parse(text) as { error?: unknown; message?: unknown; code?: unknown };
      const said = typeof parsed.error === "string" ? parsed.error : typeof parsed.message === "string" ? parsed.message : undefined;
      if (said) message = said;
      if (typeof parsed.code === "string") code = parsed.code;
    } catch {}
    const requestId = HttpError.of(response, message, code, REQUEST_ID_HEADERS).requestId;
    // A 403 that names a file error (EACCES…) is about a path, not the token.
    if (response.status === 401 || (response.status === 403 && !code?.startsWith("E"))) {
      throw new ProviderError(this.name, `the token was rejected: ${message}`, response.status, requestId, "check SPRITES_TOKEN (or token under [providers.sprites] in config.toml)", "auth_failed");
    }
    throw HttpError.of(response, message.split("\n")[0]!, code, REQUEST_ID_HEADERS);
  }

  private retry<T>(what: string, call: (attempt: number) => Promise<T>, signal?: AbortSignal): Promise<T> {
    return withRetry(this.name, what, call, isTransient, DEFAULT_RETRY, signal);
  }

  /** The sprite, or null when there is none by that name. */
  private async fetchSprite(name: string): Promise<SpriteJson | null> {
    try {
      return (await (await this.request("GET", `/v1/sprites/${encodeURIComponent(name)}`)).json()) as SpriteJson;
    } catch (error) {
      // A 400 (a name Sprites cannot parse) means there is no such sprite as well.
      if (error instanceof HttpError && (error.status === 404 || error.status === 400)) return null;
      throw error;
    }
  }

  async create(spec: CreateSpec, signal?: AbortSignal): Promise<SandboxRecord> {
    if (spec.image !== undefined) {
      throw new SandboxesError("image_unsupported", "provider sprites has no images or templates: every sprite starts from the same base system, so --image cannot be used", "user", "drop --image; install what you need in a kept sprite (run -p sprites --keep …), then exec in it");
    }
    this.token(); // a missing token is the first thing to say
    const name = spec.name ?? `sandboxes-${randomBytes(5).toString("hex")}`;
    // The token in the labels makes a retried create safe: a create whose answer was lost is
    // found under the name and recognised as ours, not made twice (nor confused with a sprite
    // someone else already had under that name).
    const createToken = randomUUID();
    const labels = [...Object.entries(spec.labels).map(([key, value]) => `${key}=${value}`), `${TOKEN_KEY}=${createToken}`];
    if (spec.name) labels.push(`${NAME_KEY}=${spec.name}`);
    const config: Record<string, number> = {};
    if (spec.cpus !== undefined) config.cpus = spec.cpus;
    if (spec.memoryMb !== undefined) config.ram_mb = spec.memoryMb;
    const body = { name, environment: spec.env, labels, ...(Object.keys(config).length ? { config } : {}) };
    const ours = (sprite: SpriteJson) => own(parseLabels(sprite.labels), TOKEN_KEY) === createToken;
    const sprite = await createOnce({
      retry: (attempt) => this.retry(`creating sprite ${name}`, attempt, signal),
      earlier: () => this.fetchSprite(name),
      ours,
      create: async () => {
        try {
          return (await (await this.request("POST", "/v1/sprites", { json: body, timeoutMs: CREATE_TIMEOUT_MS, signal })).json()) as SpriteJson;
        } catch (error) {
          if (!(error instanceof HttpError) || (error.status !== 409 && error.status !== 400 && error.status !== 422)) throw error;
          if (error.status === 409) {
            throw new ProviderError(this.name, `a sprite named ${name} already exists`, 409, error.requestId, "pick another --name, or use that sprite by name (exec, shell)", "name_taken");
          }
          throw new ProviderError(this.name, `cannot create sprite ${name}: ${error.message}`, error.status, error.requestId, spec.name ? "sprite names are lowercase letters, digits and dashes" : undefined, "bad_request");
        }
      },
      // Whatever was made under this token must not outlive the failure.
      cleanUp: () => this.fetchSprite(name).then((found) => (found && ours(found) ? this.request("DELETE", `/v1/sprites/${encodeURIComponent(name)}`) : undefined)),
    });
    return this.record(sprite);
  }

  async get(id: string): Promise<SandboxRecord | null> {
    const sprite = await this.retry(`looking up sprite ${id}`, () => this.fetchSprite(id));
    return sprite ? this.record(sprite) : null;
  }

  async list(filter: { labels?: Record<string, string> }): Promise<SandboxRecord[]> {
    const records: SandboxRecord[] = [];
    let continuation: string | undefined;
    do {
      // A failed page is asked again with the same token, so retrying it is safe.
      const page = await this.retry("listing sprites", async () => {
        const response = await this.request("GET", "/v1/sprites", { query: { max_results: "50", continuation_token: continuation } });
        return (await response.json()) as { sprites?: SpriteJson[]; has_more?: boolean; next_continuation_token?: string };
      });
      for (const sprite of page.sprites ?? []) records.push(this.record(sprite));
      continuation = page.has_more && page.next_continuation_token ? page.next_continuation_token : undefined;
    } while (continuation);
    return records.filter((record) => hasLabels(record.labels, filter.labels));
  }

  private record(sprite: SpriteJson): SandboxRecord {
    const all = parseLabels(sprite.labels);
    const labels = dict<string>();
    for (const [key, value] of Object.entries(all)) if (!key.startsWith(LABEL_PREFIX)) labels[key] = value;
    return { id: sprite.name, provider: this.name, name: own(all, NAME_KEY), state: stateOf(sprite.status), labels, createdAt: isoDate(sprite.created_at) };
  }

  async destroy(id: string): Promise<void> {
    await this.retry(`destroying sprite ${id}`, async () => {
      try {
        await this.request("DELETE", `/v1/sprites/${encodeURIComponent(id)}`);
      } catch (error) {
        // Already gone is what we wanted.
        if (!(error instanceof HttpError && error.status === 404)) throw error;
      }
    });
  }

  /**
   * Opens an exec socket. Until the upgrade succeeds nothing has run, so a failed open is
   * retried; one that fails because the sprite is gone says so.
   */
  private openExec(id: string, argv: string[], options: { env: Record<string, string>; cwd?: string; tty?: { cols: number; rows: number } }, signal?: AbortSignal): Promise<ExecSocket> {
    const token = this.token();
    const url = this.url(`/v1/sprites/${encodeURIComponent(id)}/exec`);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    for (const word of argv) url.searchParams.append("cmd", word);
    url.searchParams.set("path", argv[0]!);
    url.searchParams.set("stdin", "true");
    for (const [key, value] of Object.entries(options.env)) url.searchParams.append("env", `${key}=${value}`);
    if (options.cwd) url.searchParams.set("dir", options.cwd);
    if (options.tty) {
      url.searchParams.set("tty", "true");
      url.searchParams.set("rows", String(options.tty.rows));
      url.searchParams.set("cols", String(options.tty.cols));
    }
    return this.retry(
      `starting ${argv[0] ?? "a command"} in sprite ${id}`,
      async () => {
        try {
          return await ExecSocket.open(url.toString(), token);
        } catch (error) {
          // A WebSocket does not show why the upgrade was refused: ask the REST API.
          if ((await this.fetchSprite(id)) === null) throw unknownSprite(id);
          throw error;
        }
      },
      signal,
    );
  }

  async exec(id: string, spec: ExecSpec): Promise<ExecOutcome> {
    const pidFile = `/tmp/.sandboxes-exec-${randomBytes(8).toString("hex")}.pid`;
    const argv = ["sh", "-c", EXEC_WRAPPER, "sandboxes", pidFile, ...spec.argv];
    const socket = await this.openExec(id, argv, { env: spec.env, cwd: spec.cwd }, spec.signal);
    let exitCode: number | undefined;
    let timedOut = false;
    let stopping: Promise<void> | undefined;
    const stop = () => {
      stopping ??= this.runQuiet(id, ["sh", "-c", KILL_SCRIPT, "sh", pidFile]).finally(() => socket.close());
    };
    const timer = spec.timeoutMs ? setTimeout(() => ((timedOut = true), stop()), spec.timeoutMs) : undefined;
    spec.signal?.addEventListener("abort", stop, { once: true });
    if (spec.signal?.aborted) stop();
    socket.onMessage((data) => {
      if (typeof data === "string" || data.length === 0) return; // port notices and the like
      const payload = data.subarray(1);
      if (data[0] === Stream.Stdout) spec.onStdout(payload);
      else if (data[0] === Stream.Stderr) spec.onStderr(payload);
      else if (data[0] === Stream.Exit) {
        exitCode = payload[0] ?? 0;
        // Sprites holds the socket open a while after the exit frame; the SDKs close it at once.
        socket.close();
      }
    });
    const finished = new AbortController();
    const feeding = this.feedStdin(socket, spec.stdin, finished.signal).catch(() => {});
    try {
      await socket.closed();
    } finally {
      if (timer) clearTimeout(timer);
      spec.signal?.removeEventListener("abort", stop);
      finished.abort();
    }
    // A read of our stdin that cancel() cannot interrupt must not hold up the result.
    await Promise.race([feeding, Bun.sleep(1000)]);
    if (stopping) await Promise.race([stopping, Bun.sleep(5000)]);
    if (timedOut) return { exitCode: 124, timedOut: true };
    // Stopped by Ctrl-C: whatever exit the kill caused, the command was interrupted.
    if (spec.signal?.aborted) return { exitCode: 130, timedOut: false };
    if (exitCode === undefined) {
      throw new ProviderError(this.name, `the connection to sprite ${id} ended before ${spec.argv[0] ?? "the command"} finished`, undefined, undefined, "the command may still be running in the sprite");
    }
    return { exitCode, timedOut: false };
  }

  /** Stdin as [0][bytes] frames in order, then [4] for EOF; at once when there is none. */
  private async feedStdin(socket: ExecSocket, stdin: ExecSpec["stdin"], finished: AbortSignal): Promise<void> {
    if (stdin) {
      await feedInChunks(stdin, STDIN_CHUNK, finished, async (chunk) => {
        // Let the socket drain rather than queueing all of a large stdin in memory.
        while (socket.buffered > 4 * STDIN_CHUNK && socket.open && !finished.aborted) await Bun.sleep(5);
        if (!finished.aborted) socket.sendStream(Stream.Stdin, chunk);
      });
    }
    if (!finished.aborted) socket.sendStream(Stream.StdinEof);
  }

  /** A helper command of ours whose outcome does not matter (cleanup, kill). */
  private async runQuiet(id: string, argv: string[], timeoutMs = 15_000): Promise<void> {
    await this.capture(id, argv, timeoutMs).catch(() => {});
  }

  /** A helper command of ours (no wrapper, no stdin): its exit code and output, bounded in time. */
  private async capture(id: string, argv: string[], timeoutMs = 15_000): Promise<{ code: number; stdout: string; stderr: string }> {
    const socket = await this.openExec(id, argv, { env: {} });
    const out: Uint8Array[] = [];
    const err: Uint8Array[] = [];
    let code: number | undefined;
    socket.onMessage((data) => {
      if (typeof data === "string" || data.length === 0) return;
      if (data[0] === Stream.Stdout) out.push(data.subarray(1));
      else if (data[0] === Stream.Stderr) err.push(data.subarray(1));
      else if (data[0] === Stream.Exit) {
        code = data[1] ?? 0;
        socket.close();
      }
    });
    socket.sendStream(Stream.StdinEof);
    const timer = setTimeout(() => socket.close(), timeoutMs);
    await socket.closed();
    clearTimeout(timer);
    if (code === undefined) throw new ProviderError(this.name, `the connection to sprite ${id} ended before ${argv[0]} finished`);
    return { code, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") };
  }

  /**
   * Files go as a tar through the fs endpoints (one raw HTTP body each way, byte for byte, and
   * safe to retry), and are packed or unpacked by `tar` in the sprite. Streaming the tar through
   * an exec's stdin or stdout would save a round trip, but a dropped exec cannot be retried.
   */
  private readonly archives = stagedArchives(this, (id) => {
    const sprite = `/v1/sprites/${encodeURIComponent(id)}`;
    return {
      upload: (path, source, what) => this.retry(what, () => this.fsCall(id, () => this.request("PUT", `${sprite}/fs/write`, { query: { path, workingDir: "/", mkdirParents: "true" }, body: source.stream() }))),
      download: (path, what) => this.retry(what, () => this.fsCall(id, async () => streamOf(await this.request("GET", `${sprite}/fs/read`, { query: { path, workingDir: "/" } })))),
      run: (argv) => this.capture(id, argv, 10 * 60_000),
    };
  });
  readonly putArchive = this.archives.putArchive;
  readonly getArchive = this.archives.getArchive;

  /** A 404 from an fs endpoint is a missing sprite unless the body names a file error. */
  private async fsCall<T>(id: string, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (error instanceof HttpError && error.status === 404 && !error.code?.startsWith("E")) throw unknownSprite(id);
      throw error;
    }
  }

  async openPty(id: string, spec: PtySpec): Promise<PtySession> {
    const exitFile = `/tmp/.sandboxes-pty-${randomBytes(8).toString("hex")}.exit`;
    const argv = ["sh", "-c", PTY_WRAPPER, "sandboxes", exitFile, ...spec.argv];
    const env = { TERM: "xterm-256color", LANG: "C.UTF-8", ...spec.env };
    const socket = await this.openExec(id, argv, { env, cwd: spec.cwd, tty: { cols: spec.cols, rows: spec.rows } });
    const output = new PtyOutput();
    socket.onMessage((data) => {
      if (typeof data !== "string") output.push(data); // text frames are port notices and session info
    });
    const exited = socket.closed().then(async (closeCode) => {
      const read = await this.capture(id, ["sh", "-c", 'cat "$1" 2>/dev/null; rm -f "$1"', "sh", exitFile], 10_000).catch(() => undefined);
      const code = Number.parseInt(read?.stdout.trim() ?? "", 10);
      // Without the file (the sprite is gone, the connection dropped), the SDKs' reading of the close.
      return Number.isInteger(code) ? code : closeCode === 1000 ? 0 : 1;
    });
    const encoder = new TextEncoder();
    return {
      write: (data) => socket.sendRaw(typeof data === "string" ? encoder.encode(data) : data),
      resize: (cols, rows) => socket.sendControl({ type: "resize", cols, rows }),
      output: output.endWhen(exited),
      exited,
      kill: async () => {
        socket.sendControl({ type: "signal", signal: "SIGKILL" });
        socket.close();
        await Promise.race([exited, Bun.sleep(5000)]);
      },
    };
  }
}

function unknownSprite(id: string): SandboxesError {
  return new SandboxesError("unknown_sandbox", `no sprite named ${id}`, "user", "see `sandboxes list -p sprites`");
}

/** ["k=v", …] -> {k: v}; a label without "=" is a key with an empty value. */
export function parseLabels(labels: string[] | null | undefined): Record<string, string> {
  const parsed = dict<string>();
  for (const label of labels ?? []) {
    const at = label.indexOf("=");
    if (at < 0) parsed[label] = "";
    else parsed[label.slice(0, at)] = label.slice(at + 1);
  }
  return parsed;
}

/** A sprite that is cold or warm wakes on the next exec, so for us it is running. */
const stateOf = stateMap({ running: ["running", "warm", "cold"], creating: ["creating", "starting"], error: ["error", "failed"] });

function isoDate(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/** 408/429/5xx answers, timeouts, failed upgrades and dropped or refused connections are worth another try. */
export function isTransient(error: unknown): boolean {
  if (error instanceof SandboxesError) return false;
  if (error instanceof HttpError) return isTransientStatus(error.status);
  return isNetworkFailure(error);
}
