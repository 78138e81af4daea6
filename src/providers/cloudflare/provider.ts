/**
 * Cloudflare Sandbox through the bridge HTTP API of the user's Worker (see api.ts). What the API
 * lacks is made up here, and each piece is said where it is done:
 *   - no metadata and no list: labels, names and the sandbox env live in a local registry
 *     (registry.ts), and get()/list() read it;
 *   - exec takes no env (0.12.x): argv is wrapped with env(1), so the values are visible in the
 *     sandbox's process list for as long as the command runs;
 *   - exec takes no stdin: it is uploaded as a file under /workspace and redirected;
 *   - exec accepts a cwd inside /workspace only: our wrapper changes directory itself instead;
 *   - nothing can signal a running command: it runs in a process group of its own whose id goes
 *     to a file, and a timeout or Ctrl-C kills that group from a second exec;
 *   - the file routes accept /workspace only: archives are staged there and (un)packed by tar.
 */
import { randomBytes } from "node:crypto";
import { ProviderError, SandboxesError } from "../../base/errors";
import { shellQuote } from "../../base/quote";
import { DEFAULT_RETRY, withRetry } from "../retry";
import type { ArchiveChunk, ArchiveSource, CreateSpec, ExecOutcome, ExecSpec, Provider, PtySession, PtySpec, SandboxRecord } from "../types";
import { BridgeApi, isTransient, neverDelivered, readEvents } from "./api";
import { HttpError, pumpBody, streamOf } from "../shared/http";
import { runChecked } from "../shared/staged-archive";
import { spool, type Spooled } from "../shared/spool";
import { CLOUDFLARE_CAPABILITIES, type CloudflareSettings, NOT_CONFIGURED } from "./index";
import { openTerminal } from "./pty";
import { type CloudflareEntry, CloudflareRegistry } from "./registry";
import { hasLabels } from "../../base/keys";
import { notConfigured } from "../shared/settings";

/** The bridge refuses file bodies above 32 MiB. */
const MAX_FILE_BYTES = 32 * 1024 * 1024;
/** Archives go up in parts of this size and are joined by `cat` in the container. */
const PART_BYTES = 16 * 1024 * 1024;
/** After the kill, how long the command's own stream gets to report its end. */
const STOP_GRACE_MS = 5000;

/**
 * sh -c script: $1 the file for the process group id, $2 the working directory ("" for the
 * container's), $3 the stdin file ("" for none); the rest is argv. The command runs under
 * `setsid -w` in a session of its own, as a child of `sh` so that a signal death reads as 128+N.
 */
const EXEC_WRAPPER = [
  'f=$1; d=$2; i=$3; shift 3',
  'if [ -n "$i" ]; then exec <"$i" || exit 125; rm -f "$i"; else exec </dev/null; fi',
  'if [ -n "$d" ]; then cd "$d" || exit 125; fi',
  `if command -v setsid >/dev/null 2>&1; then exec setsid -w /bin/sh -c 'echo $$ > "$0"; "$@"; c=$?; rm -f "$0"; exit $c' "$f" "$@"; fi`,
  'echo $$ > "$f"; "$@"; c=$?; rm -f "$f"; exit $c',
].join("\n");

/**
 * Kills the process group whose id EXEC_WRAPPER wrote to $1, waiting a moment for the file when
 * the command has only just started. `kill -9 -PGID`: dash's kill refuses `--`.
 */
const KILL_SCRIPT = [
  'n=0; while [ ! -s "$1" ] && [ $n -lt 10 ]; do sleep 0.2; n=$((n+1)); done',
  'p=$(cat "$1" 2>/dev/null); if [ -n "$p" ]; then kill -9 "-$p" 2>/dev/null || kill -9 "$p" 2>/dev/null; fi; rm -f "$1"; true',
].join("\n");

/** sh -c script: join the staged parts (the rest of argv) into a tar and unpack it into "$1". */
const UNPACK_PARTS = 'd=$1; shift; mkdir -p "$d" && cat "$@" | tar -x --no-same-owner -f - -C "$d"; c=$?; rm -f "$@"; exit $c';

/** sh -c script: pack "$1" (one top-level entry, basename "$1") into "$2", leaving out "$2" itself. */
const PACK_STAGED = 'cd "$(dirname "$1")" && tar -c --exclude="$(basename "$2")" -f "$2" "$(basename "$1")"';

const hex = () => randomBytes(8).toString("hex");

export class CloudflareProvider implements Provider {
  readonly name = "cloudflare";
  readonly capabilities = CLOUDFLARE_CAPABILITIES;
  private client?: BridgeApi;
  private readonly registry: CloudflareRegistry;

  constructor(private readonly settings: CloudflareSettings) {
    this.registry = new CloudflareRegistry(settings.stateDir);
  }

  /** withRetry on transient failures; our own errors and the bridge's refusals come out explained. */
  private async retry<T>(what: string, call: () => Promise<T>, signal?: AbortSignal, retryable: (error: unknown) => boolean = isTransient): Promise<T> {
    let own: Error | undefined;
    try {
      return await withRetry(
        this.name,
        what,
        async () => {
          try {
            return await call();
          } catch (error) {
            if (error instanceof SandboxesError) own = error;
            else if (!retryable(error)) own = explain(what, error);
            throw error;
          }
        },
        retryable,
        DEFAULT_RETRY,
        signal,
      );
    } catch (error) {
      throw own ?? error;
    }
  }

  private api(): BridgeApi {
    if (!this.settings.url) throw notConfigured("cloudflare", NOT_CONFIGURED);
    return (this.client ??= new BridgeApi(this.settings.url, this.settings.apiKey));
  }

  async create(spec: CreateSpec, signal?: AbortSignal): Promise<SandboxRecord> {
    if (spec.image !== undefined) {
      throw new SandboxesError("image_unsupported", "provider cloudflare cannot choose an image per sandbox (--image): the container image is fixed by your Worker's Dockerfile and wrangler config", "user", "drop --image, or change the Worker's container image and deploy it again");
    }
    const api = this.api();
    if (spec.name && this.registry.of(api.baseUrl).some(([, entry]) => entry.name === spec.name)) {
      throw new SandboxesError("name_taken", `a cloudflare sandbox named ${spec.name} already exists`, "user", "pick another --name, or use that sandbox by name (exec, shell)");
    }
    // POST /v1/sandbox only draws a random id: no container starts (that happens on the first
    // call that uses the id) and nothing is stored, so repeating a create whose answer was lost
    // leaves nothing behind.
    const answer = await this.retry("creating a sandbox", async () => (await (await api.request("POST", "/v1/sandbox", { signal })).json()) as { id?: unknown }, signal);
    const id = typeof answer.id === "string" ? answer.id : "";
    if (!/^[a-z2-7]{1,128}$/.test(id)) throw new ProviderError(this.name, `creating a sandbox: the Worker answered without a sandbox id (${JSON.stringify(answer).slice(0, 80)})`, undefined, undefined, "check that CLOUDFLARE_SANDBOX_URL is the Worker serving the sandbox bridge");
    const entry: CloudflareEntry = { url: api.baseUrl, ...(spec.name ? { name: spec.name } : {}), labels: { ...spec.labels }, env: { ...spec.env }, createdAt: new Date().toISOString() };
    this.registry.set(id, entry);
    return this.record(id, entry);
  }

  private record(id: string, entry: CloudflareEntry): SandboxRecord {
    // A sandbox whose container went to sleep gets a new one on its next request: for a user
    // it is always there, so "running".
    return { id, provider: this.name, name: entry.name, state: "running", labels: { ...entry.labels }, createdAt: entry.createdAt };
  }

  async get(id: string): Promise<SandboxRecord | null> {
    const entry = this.registry.get(this.api().baseUrl, id);
    return entry ? this.record(id, entry) : null;
  }

  async list(filter: { labels?: Record<string, string> }): Promise<SandboxRecord[]> {
    return this.registry
      .of(this.api().baseUrl)
      .filter(([, entry]) => hasLabels(entry.labels, filter.labels))
      .map(([id, entry]) => this.record(id, entry));
  }

  async destroy(id: string): Promise<void> {
    const api = this.api();
    // 204 also for an id the Worker never gave a container: already gone is what we want.
    await this.retry(`destroying sandbox ${id}`, () => api.request("DELETE", `/v1/sandbox/${encodeURIComponent(id)}`));
    this.registry.forget(id);
  }

  private entry(id: string): CloudflareEntry {
    const entry = this.registry.get(this.api().baseUrl, id);
    if (!entry) {
      throw new SandboxesError("unknown_sandbox", `no cloudflare sandbox ${id} was created from this machine for ${this.api().baseUrl}`, "user", "see `sandboxes list -p cloudflare`");
    }
    return entry;
  }

  async exec(id: string, spec: ExecSpec): Promise<ExecOutcome> {
    const api = this.api();
    const entry = this.entry(id);
    const pidFile = `/tmp/.sandboxes-exec-${hex()}.pid`;
    const stdinFile = await this.uploadStdin(id, spec.stdin, spec.signal);
    if (spec.signal?.aborted) return { exitCode: 130, timedOut: false };
    const argv = ["sh", "-c", EXEC_WRAPPER, "sandboxes", pidFile, spec.cwd ?? "", stdinFile ?? "", ...withEnv({ ...entry.env, ...spec.env }, spec.argv)];
    const label = spec.argv[0] ?? "the command";

    const request = new AbortController();
    let timedOut = false;
    let stopping: Promise<void> | undefined;
    const stop = () => {
      stopping ??= this.run(id, ["sh", "-c", KILL_SCRIPT, "sh", pidFile], 30_000)
        .then(() => {})
        .catch(() => {})
        .finally(() => setTimeout(() => request.abort(), STOP_GRACE_MS).unref?.());
    };
    const timer = spec.timeoutMs ? setTimeout(() => ((timedOut = true), stop()), spec.timeoutMs) : undefined;
    spec.signal?.addEventListener("abort", stop, { once: true });
    let exitCode: number | undefined;
    try {
      const body = await this.startExec(id, argv, request.signal, label);
      exitCode = await this.pump(body, spec, id, label);
    } catch (error) {
      if (timedOut || spec.signal?.aborted) {
        // Stopped by us: the outcome below says why.
      } else if (error instanceof SandboxesError) {
        throw error;
      } else {
        throw new ProviderError(this.name, `the connection to sandbox ${id} failed while running ${label}: ${(error as Error).message}`, undefined, undefined, "the command may still be running in the sandbox");
      }
    } finally {
      if (timer) clearTimeout(timer);
      spec.signal?.removeEventListener("abort", stop);
    }
    if (stopping) await Promise.race([stopping, Bun.sleep(STOP_GRACE_MS)]);
    if (timedOut) return { exitCode: 124, timedOut: true };
    // Stopped by Ctrl-C: whatever exit the kill caused, the command was interrupted.
    if (spec.signal?.aborted) return { exitCode: 130, timedOut: false };
    if (exitCode === undefined) {
      throw new ProviderError(this.name, `the connection to sandbox ${id} ended before ${label} finished`, undefined, undefined, "the command may still be running in the sandbox");
    }
    return { exitCode, timedOut: false };
  }

  /**
   * POST …/exec. The bridge answers 200 and streams as soon as it accepted the command, so any
   * other status means nothing ran, and it is retried like any call; a request that failed in
   * flight may have started the command and is not sent again.
   */
  private startExec(id: string, argv: string[], signal: AbortSignal, label: string): Promise<ReadableStream<Uint8Array>> {
    const api = this.api();
    const startable = (error: unknown) => (error instanceof HttpError ? isTransient(error) : neverDelivered(error));
    return this.retry(
      `running ${label} in sandbox ${id}`,
      async () => {
        const response = await api.request("POST", `/v1/sandbox/${encodeURIComponent(id)}/exec`, { json: { argv }, timeoutMs: 0, signal });
        if (!response.body) throw new ProviderError(this.name, `running ${label} in sandbox ${id}: the Worker sent no event stream`);
        return response.body;
      },
      signal,
      startable,
    );
  }

  /** Reads the exec events: output to the callbacks, then the exit code (undefined if the stream just ended). */
  private async pump(body: ReadableStream<Uint8Array>, spec: Pick<ExecSpec, "onStdout" | "onStderr">, id: string, label: string): Promise<number | undefined> {
    for await (const { event, data } of readEvents(body)) {
      if (event === "stdout") await spec.onStdout(Buffer.from(data, "base64"));
      else if (event === "stderr") await spec.onStderr(Buffer.from(data, "base64"));
      else if (event === "exit") {
        const code = (JSON.parse(data) as { exit_code?: unknown }).exit_code;
        return typeof code === "number" ? code & 255 : 255;
      } else if (event === "error") {
        let detail: { error?: string; code?: string } = {};
        try {
          detail = JSON.parse(data);
        } catch {}
        throw new ProviderError(this.name, `running ${label} in sandbox ${id} failed: ${detail.error ?? data}`, detail.code, undefined, "the command may not have run; retry, or check the Worker's logs");
      }
    }
    return undefined;
  }

  /** A helper command of ours: its exit code and output. */
  private async run(id: string, argv: string[], timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
    const out: Uint8Array[] = [];
    const err: Uint8Array[] = [];
    const request = new AbortController();
    const timer = setTimeout(() => request.abort(), timeoutMs);
    try {
      const body = await this.startExec(id, argv, request.signal, argv[0] ?? "a command");
      const code = await this.pump(body, { onStdout: (c) => out.push(c), onStderr: (c) => err.push(c) }, id, argv[0] ?? "a command");
      if (code === undefined) throw new ProviderError(this.name, `the connection to sandbox ${id} ended before ${argv[0]} finished`);
      return { code, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") };
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Stdin, read to its end and uploaded as one file (the API has no way to stream it); refused
   * as soon as it is past what one file can hold, not once it has all been read.
   */
  private async uploadStdin(id: string, stdin: ExecSpec["stdin"], signal?: AbortSignal): Promise<string | undefined> {
    if (!stdin) return undefined;
    const bytes = stdin instanceof Uint8Array ? stdin : await readUpTo(stdin, MAX_FILE_BYTES + 1);
    if (bytes.length === 0) return undefined;
    if (bytes.length > MAX_FILE_BYTES) {
      throw new SandboxesError("stdin_too_large", `stdin is more than the ${MAX_FILE_BYTES} bytes a cloudflare sandbox can take (32 MiB: it is uploaded as one file)`, "user", "copy the data in with `sandboxes cp` and read it from the file");
    }
    const path = `/workspace/.sandboxes-stdin-${hex()}`;
    await this.putFile(id, path, bytes, signal);
    return path;
  }

  private putFile(id: string, path: string, bytes: Uint8Array | Blob, signal?: AbortSignal): Promise<unknown> {
    const api = this.api();
    return this.retry(`uploading ${path}`, () => api.request("PUT", `/v1/sandbox/${encodeURIComponent(id)}/file${encodePath(path)}`, { body: bytes, timeoutMs: 300_000, signal }), signal);
  }

  async putArchive(id: string, dir: string, tar: ArchiveSource): Promise<void> {
    this.entry(id);
    const parts: string[] = [];
    try {
      const base = `/workspace/.sandboxes-in-${hex()}`;
      // Read as it is sent: one part at a time, on disk (partsOf).
      for await (const spooled of partsOf(tar.stream(), PART_BYTES)) {
        const part = `${base}.${parts.length}`;
        parts.push(part);
        await this.putFile(id, part, spooled.file());
      }
      await runChecked((argv) => this.run(id, argv, 10 * 60_000), ["sh", "-c", UNPACK_PARTS, "sh", dir, ...parts], `cannot write files into ${dir}`);
      parts.length = 0;
    } finally {
      if (parts.length) await this.run(id, ["rm", "-f", ...parts]).catch(() => {});
    }
  }

  async getArchive(id: string, path: string, onChunk: ArchiveChunk): Promise<void> {
    this.entry(id);
    const api = this.api();
    const staged = `/workspace/.sandboxes-out-${hex()}.tar`;
    try {
      await runChecked((argv) => this.run(id, argv, 10 * 60_000), ["sh", "-c", PACK_STAGED, "sh", path, staged], `cannot read ${path}`);
      const response = await this.retry(`downloading ${path}`, () => api.request("GET", `/v1/sandbox/${encodeURIComponent(id)}/file${encodePath(staged)}`, { timeoutMs: 300_000 }));
      await pumpBody(streamOf(response), onChunk);
    } finally {
      await this.run(id, ["rm", "-f", staged]).catch(() => {});
    }
  }

  /**
   * The bridge's terminal starts the program named by `shell` with no arguments. So a small
   * script of ours, written and made executable by an exec first, is that program: it records its
   * pid (for kill), removes itself, changes directory and execs env(1) with argv.
   */
  async openPty(id: string, spec: PtySpec): Promise<PtySession> {
    const api = this.api();
    const entry = this.entry(id);
    const base = `/tmp/.sandboxes-pty-${hex()}`;
    const env = { TERM: "xterm-256color", ...entry.env, ...spec.env };
    const script = [
      "#!/bin/sh",
      `echo $$ > ${base}.pid`,
      'rm -f "$0"',
      ...(spec.cwd ? [`cd ${shellQuote(spec.cwd)} || exit 125`] : []),
      `exec ${withEnv(env, spec.argv).map(shellQuote).join(" ")}`,
      "",
    ].join("\n");
    const written = await this.run(id, ["sh", "-c", 'umask 077 && printf "%s" "$2" > "$1" && chmod 700 "$1"', "sh", `${base}.sh`, script]);
    if (written.code !== 0) throw new ProviderError(this.name, `cannot prepare a terminal in sandbox ${id}: ${written.stderr.trim() || `exit ${written.code}`}`);
    try {
      const url = new URL(api.url(`/v1/sandbox/${encodeURIComponent(id)}/pty`));
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      url.searchParams.set("cols", String(spec.cols));
      url.searchParams.set("rows", String(spec.rows));
      url.searchParams.set("shell", `${base}.sh`);
      return await openTerminal(url.toString(), api.headers(), async () => {
        // The bridge keeps a terminal alive when its client goes: kill the program itself.
        await this.run(id, ["sh", "-c", KILL_SCRIPT, "sh", `${base}.pid`], 15_000).catch(() => {});
      });
    } catch (error) {
      await this.run(id, ["rm", "-f", `${base}.sh`, `${base}.pid`]).catch(() => {});
      if (error instanceof SandboxesError) throw error;
      throw new ProviderError(this.name, `cannot open a terminal in sandbox ${id}: ${(error as Error).message}`);
    }
  }
}

/**
 * argv with the environment in front through env(1), the bridge's exec having no env field. A
 * program name containing "=" would be read by env as one more variable, so it goes through sh.
 */
export function withEnv(env: Record<string, string>, argv: string[]): string[] {
  const pairs = Object.entries(env).map(([key, value]) => `${key}=${value}`);
  if (pairs.length === 0) return argv;
  return ["env", ...pairs, ...(argv[0]?.includes("=") ? ["sh", "-c", 'exec "$@"', "sh"] : []), ...argv];
}

/** A sandbox path as the file route wants it: each segment percent-encoded, the slashes kept. */
function encodePath(path: string): string {
  return path.split("/").map(encodeURIComponent).join("/");
}

/** A failed call that will not be retried, as one line. */
function explain(what: string, error: unknown): Error {
  if (error instanceof HttpError) {
    const hint =
      error.status === 403 ? "the bridge accepts files under /workspace only" : error.status === 404 ? "check that CLOUDFLARE_SANDBOX_URL is the Worker serving the sandbox bridge (its routes are under /v1)" : undefined;
    return new ProviderError("cloudflare", `${what} failed: ${error.message}`, error.status, error.requestId, hint, error.code ?? "provider_error");
  }
  if (error instanceof SandboxesError || (error as Error)?.name === "AbortError") return error as Error;
  return new ProviderError("cloudflare", `${what} failed: ${(error as Error)?.message ?? String(error)}`);
}

/** A stream read to its end, or to `limit` bytes (then cancelled): never more than that in memory. */
async function readUpTo(stream: ReadableStream<Uint8Array>, limit: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = stream.getReader();
  try {
    while (total < limit) {
      const next = await reader.read();
      if (next.done) break;
      chunks.push(next.value);
      total += next.value.length;
    }
    if (total >= limit) await reader.cancel().catch(() => {});
  } finally {
    reader.releaseLock();
  }
  return Buffer.concat(chunks, Math.min(total, limit));
}

/**
 * A stream cut into parts of `size` bytes (the last shorter; one empty part for an empty stream),
 * each written to a file of ours (spool) and removed once the consumer asks for the next: one
 * part is on disk at a time and none is held in memory (parts held in memory, each a new 16 MiB
 * buffer that fetch copied again, took ~180 MB for 96 MiB before the collector caught up).
 */
export async function* partsOf(stream: ReadableStream<Uint8Array>, size: number): AsyncGenerator<Spooled> {
  const reader = stream.getReader();
  // What the last part had no room for, and whether the stream has ended.
  let left: Uint8Array | undefined;
  let ended = false;
  let given = 0;
  try {
    while (!ended || left) {
      const part = await spool(async (write) => {
        for (let filled = 0; filled < size; ) {
          let chunk = left;
          left = undefined;
          if (!chunk) {
            const next = await reader.read();
            if (next.done) {
              ended = true;
              return;
            }
            chunk = next.value;
          }
          if (chunk.length > size - filled) {
            left = chunk.subarray(size - filled);
            chunk = chunk.subarray(0, size - filled);
          }
          write(chunk);
          filled += chunk.length;
        }
      });
      if (part.size === 0 && given > 0) {
        part.remove();
        return;
      }
      given++;
      try {
        yield part;
      } finally {
        part.remove();
      }
    }
  } finally {
    // A consumer that stopped early (a part it could not send) stops the archive's reading too.
    if (!ended) await reader.cancel().catch(() => {});
    reader.releaseLock();
  }
}
