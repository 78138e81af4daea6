import { randomBytes } from "node:crypto";
import { ProviderError, SandboxesError } from "../../base/errors";
import { DEFAULT_RETRY, delayBeforeRetry, isTransientStatus, withExplainedRetry, withRetry } from "../retry";
import { type ArchiveSource, type CreateSpec, type ExecOutcome, type ExecSpec, type Provider, type PtySession, type PtySpec, type SandboxRecord } from "../types";
import { type AgentAccess, type CreateAnswer, explain, HopxApi, HopxNetworkError, isTransient, type ListPage, type SandboxInfo } from "./api";
import { type CommandAnswer, EXEC_WRAPPER, KILL_SCRIPT, parseAnswer } from "./exec";
import { HOPX_CAPABILITIES, type HopxSettings, MISSING_API_KEY } from "./index";
import { LocalLabels } from "./labels";
import { openTerminal } from "./pty";
import { feedInChunks } from "../stdin";
import { stagedArchives } from "../shared/staged-archive";
import { hasLabels } from "../../base/keys";
import { HttpError, pumpBody } from "../shared/http";
import { spool } from "../shared/spool";
import { stateMap } from "../shared/state";
import { notConfigured } from "../shared/settings";

/** The agent's own bound on a command with no --timeout: a day. */
const UNBOUNDED_AGENT_TIMEOUT_S = 86_400;
/** Our bound on top of the agent's: its answer may take this long after the command's limit. */
const ANSWER_GRACE_MS = 30_000;
const STDIN_CHUNK = 1024 * 1024;

export class HopxProvider implements Provider {
  readonly name = "hopx";
  readonly capabilities = HOPX_CAPABILITIES;
  private client?: HopxApi;
  private readonly labels: LocalLabels;
  /** Agent host and token per sandbox id: one lookup and one token per process. */
  private readonly access = new Map<string, Promise<AgentAccess>>();

  constructor(private readonly settings: HopxSettings) {
    this.labels = new LocalLabels(settings.stateDir);
  }

  private api(): HopxApi {
    if (!this.settings.apiKey) throw notConfigured("hopx", MISSING_API_KEY);
    return (this.client ??= new HopxApi(this.settings.apiUrl, this.settings.apiKey));
  }

  private retry<T>(what: string, call: () => Promise<T>, retryable: (error: unknown) => boolean = isTransient, signal?: AbortSignal): Promise<T> {
    return withExplainedRetry(this.name, what, call, (error) => (retryable(error) ? error : explain(this.name, what, error)), retryable, signal);
  }

  async create(spec: CreateSpec): Promise<SandboxRecord> {
    const api = this.api();
    const template = spec.image ?? this.settings.template;
    const body: Record<string, unknown> = /^\d+$/.test(template) ? { template_id: template } : { template_name: template };
    body.timeout_seconds = Math.max(1, Math.round(spec.ttlSeconds ?? this.settings.ttlSeconds));
    if (spec.network?.mode === "none") body.internet_access = false;
    if (Object.keys(spec.env).length) body.env_vars = spec.env;
    const what = `creating a sandbox from template "${template}"`;
    // Hopx takes no idempotency key, and a create cannot be found again by anything we send. So a
    // create is repeated only when the service cannot have acted on it: a refused connection, a
    // 429 or a 503. The caller's Ctrl-C does not cut the request short: a sandbox made meanwhile
    // comes back here, and core removes it.
    const answer = await withRetry(
      this.name,
      what,
      async () => {
        try {
          return await api.control<CreateAnswer>("POST", "/v1/sandboxes", { body });
        } catch (error) {
          throw notActedOn(error) ? error : createFailure(this.name, what, template, error);
        }
      },
      notActedOn,
    );
    const id = String(answer.sandbox_id ?? answer.id ?? "");
    if (!id) throw new ProviderError(this.name, `${what}: the answer named no sandbox id`);
    const createdAt = typeof answer.created_at === "string" ? answer.created_at : new Date().toISOString();
    this.labels.set(id, { ...(spec.name ? { name: spec.name } : {}), labels: { ...spec.labels }, createdAt });
    try {
      const access = this.agentAccess(id, answer.auth_token);
      // Like the SDK: the env also goes to the agent, which keeps it for every later command.
      if (Object.keys(spec.env).length) {
        await this.agentCall(id, "PATCH", "/env", { body: { env_vars: spec.env, merge: true } }, "setting the sandbox environment");
      } else {
        await access;
      }
    } catch (error) {
      await this.destroy(id).catch(() => {});
      throw error;
    }
    return { id, provider: this.name, name: spec.name, state: "running", labels: { ...spec.labels }, createdAt, image: template };
  }

  async get(id: string): Promise<SandboxRecord | null> {
    const info = await this.info(id);
    return info ? this.record(info) : null;
  }

  private async info(id: string): Promise<SandboxInfo | null> {
    const api = this.api();
    try {
      return await this.retry(`looking up sandbox ${id}`, () => api.control<SandboxInfo>("GET", `/v1/sandboxes/${encodeURIComponent(id)}`));
    } catch (error) {
      const status = (error as { status?: number }).status;
      if (status === 404 || status === 410 || status === 400) return null;
      throw error;
    }
  }

  async list(filter: { labels?: Record<string, string> }): Promise<SandboxRecord[]> {
    const api = this.api();
    const infos: SandboxInfo[] = [];
    let cursor: string | undefined;
    do {
      const query: Record<string, string> = { limit: "100", ...(cursor ? { cursor } : {}) };
      // A failed page changes nothing, so asking for it again is safe.
      const page = await this.retry("listing sandboxes", () => api.control<ListPage>("GET", "/v1/sandboxes", { query }));
      infos.push(...(page.data ?? []).filter(Boolean));
      cursor = page.has_more && page.next_cursor ? page.next_cursor : undefined;
    } while (cursor);
    // What the service no longer has (and was not created a moment ago) is forgotten here too.
    const present = new Set(infos.map(idOf));
    const stale = Object.entries(this.labels.all()).filter(([id, facts]) => !present.has(id) && Date.now() - Date.parse(facts.createdAt) > 60_000);
    if (stale.length) this.labels.forget(stale.map(([id]) => id));
    return infos.map((info) => this.record(info)).filter((record) => hasLabels(record.labels, filter.labels));
  }

  private record(info: SandboxInfo): SandboxRecord {
    const id = idOf(info);
    const facts = this.labels.get(id);
    return {
      id,
      provider: this.name,
      name: facts?.name,
      state: stateOf(info.status),
      labels: { ...(facts?.labels ?? {}) },
      createdAt: typeof info.created_at === "string" ? info.created_at : facts?.createdAt,
      image: info.template_name ?? (info.template_id !== undefined ? String(info.template_id) : undefined),
    };
  }

  async destroy(id: string): Promise<void> {
    const api = this.api();
    this.access.delete(id);
    try {
      await this.retry(`destroying sandbox ${id}`, () => api.control("DELETE", `/v1/sandboxes/${encodeURIComponent(id)}`));
    } catch (error) {
      const status = (error as { status?: number }).status;
      if (status !== 404 && status !== 410) throw error;
    }
    this.labels.forget([id]);
  }

  /** The agent's host (public_host) and a token for it; a paused sandbox is resumed first. */
  private agentAccess(id: string, token?: string): Promise<AgentAccess> {
    let access = this.access.get(id);
    if (!access) {
      access = (async () => {
        let info = await this.info(id);
        if (!info) throw new SandboxesError("unknown_sandbox", `no hopx sandbox with id ${id} (it may have reached the end of its lifetime)`, "user", "see `sandboxes list -p hopx`");
        if (info.status === "paused") {
          await this.retry(`resuming sandbox ${id}`, () => this.api().control("POST", `/v1/sandboxes/${encodeURIComponent(id)}/resume`));
          info = (await this.info(id)) ?? info;
        }
        if (info.status && !["running", "paused", "creating", "starting"].includes(info.status)) {
          throw new SandboxesError("sandbox_not_running", `hopx sandbox ${id} is ${info.status}`, "user", "create a new one; a stopped Hopx sandbox cannot be started again");
        }
        if (!info.public_host) throw new ProviderError(this.name, `sandbox ${id} has no agent address (public_host) yet`, undefined, undefined, "retry in a moment");
        return { host: info.public_host, token: token ?? (await this.refreshToken(id)) };
      })();
      access.catch(() => this.access.delete(id));
      this.access.set(id, access);
    }
    return access;
  }

  private async refreshToken(id: string): Promise<string> {
    const answer = await this.retry(`getting an agent token for sandbox ${id}`, () =>
      this.api().control<{ auth_token?: string }>("POST", `/v1/sandboxes/${encodeURIComponent(id)}/token/refresh`),
    );
    if (!answer.auth_token) throw new ProviderError(this.name, `the token refresh for sandbox ${id} returned no token`);
    return answer.auth_token;
  }

  /** One agent request; a 401 means the token expired: it is refreshed once and the request made again. */
  private async agentRequest<T>(id: string, method: string, path: string, options: Parameters<HopxApi["agent"]>[3]): Promise<T> {
    const api = this.api();
    const access = await this.agentAccess(id);
    try {
      return await api.agent<T>(access, method, path, options);
    } catch (error) {
      if (!(error instanceof HttpError) || error.status !== 401) throw error;
      const fresh = { host: access.host, token: await this.refreshToken(id) };
      this.access.set(id, Promise.resolve(fresh));
      return api.agent<T>(fresh, method, path, options);
    }
  }

  /** An agent request that may be repeated when `retryable` says so (never a command that may have run). */
  private agentCall<T>(id: string, method: string, path: string, options: Parameters<HopxApi["agent"]>[3], what: string, retryable: (error: unknown) => boolean = isTransient): Promise<T> {
    return this.retry(what, () => this.agentRequest<T>(id, method, path, options), retryable, options?.signal);
  }

  async exec(id: string, spec: ExecSpec): Promise<ExecOutcome> {
    const label = spec.argv[0] ?? "the command";
    const prefix = `/tmp/.sandboxes-${randomBytes(8).toString("hex")}`;
    const stdin = spec.stdin instanceof Uint8Array && spec.stdin.length === 0 ? undefined : spec.stdin;
    const limit = spec.timeoutMs ? (spec.timeoutMs / 1000).toFixed(3) : "0";
    const agentTimeout = spec.timeoutMs ? Math.ceil(spec.timeoutMs / 1000) + ANSWER_GRACE_MS / 1000 : UNBOUNDED_AGENT_TIMEOUT_S;
    const body: Record<string, unknown> = {
      command: "/bin/sh",
      args: ["-c", EXEC_WRAPPER, "sandboxes", prefix, limit, stdin ? "1" : "0", ...spec.argv],
      timeout: agentTimeout,
      env: spec.env,
      ...(spec.cwd ? { workdir: spec.cwd } : {}),
    };
    await this.agentAccess(id);
    if (spec.signal?.aborted) return { exitCode: 130, timedOut: false };

    const request = new AbortController();
    const finished = new AbortController();
    let interrupted = false;
    let stopping: Promise<void> | undefined;
    const stop = () => (stopping ??= this.killCommand(id, prefix));
    const onAbort = () => {
      interrupted = true;
      // Kill the command in the sandbox first (bounded), then stop waiting for its answer.
      void Promise.race([stop(), Bun.sleep(5000)]).finally(() => request.abort());
    };
    spec.signal?.addEventListener("abort", onAbort, { once: true });
    const feeding = stdin ? this.feedStdin(id, prefix, stdin, finished.signal).catch(() => {}) : undefined;
    try {
      let answer: CommandAnswer;
      try {
        answer = await this.runCommand(id, body, request.signal, agentTimeout * 1000 + ANSWER_GRACE_MS);
      } catch (error) {
        if (interrupted) return { exitCode: 130, timedOut: false };
        if (spec.timeoutMs && error instanceof HopxNetworkError && error.code === "ETIMEDOUT") {
          // Our own bound passed with no answer: the command is killed all the same.
          await Promise.race([stop(), Bun.sleep(10_000)]);
          return { exitCode: 124, timedOut: true };
        }
        if (error instanceof SandboxesError) throw error;
        if (error instanceof HttpError && !isTransientStatus(error.status)) throw explain(this.name, `cannot run ${label} in sandbox ${id}`, error);
        const { status, requestId } = error as { status?: number; requestId?: string };
        throw new ProviderError(this.name, `cannot run ${label} in sandbox ${id}: ${(error as Error).message}`, status, requestId, "the command may still be running in the sandbox");
      }
      if (interrupted) return { exitCode: 130, timedOut: false };
      const result = parseAnswer(answer, this.name, label);
      if (result.stdout.length) spec.onStdout(result.stdout);
      if (result.stderr.length) spec.onStderr(result.stderr);
      if (result.wrapperStderr) spec.onStderr(new TextEncoder().encode(result.wrapperStderr));
      return result.timedOut ? { exitCode: 124, timedOut: true } : { exitCode: result.exitCode, timedOut: false };
    } finally {
      spec.signal?.removeEventListener("abort", onAbort);
      finished.abort();
      // A read of our stdin that cancel() cannot interrupt must not hold up the result.
      await Promise.race([feeding, Bun.sleep(1000)]);
    }
  }

  /**
   * POST /commands/run, sent again only when it cannot have run: a refused connection, or a 429 or
   * 503 (after the Retry-After it names). A command that may have started never starts twice.
   */
  private async runCommand(id: string, body: Record<string, unknown>, signal: AbortSignal | undefined, timeoutMs: number): Promise<CommandAnswer> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.agentRequest<CommandAnswer>(id, "POST", "/commands/run", { body, signal, timeoutMs });
      } catch (error) {
        if (!notActedOn(error) || attempt >= DEFAULT_RETRY.attempts || signal?.aborted) throw error;
        await Bun.sleep(delayBeforeRetry(this.name, `running a command in sandbox ${id}`, error, attempt));
      }
    }
  }

  /** Kills the command's process group in the sandbox and ends its stdin (a second request). */
  private async killCommand(id: string, prefix: string): Promise<void> {
    const body = { command: "/bin/sh", args: ["-c", KILL_SCRIPT, "sandboxes", prefix], timeout: 30 };
    await this.runCommand(id, body, undefined, 30_000).catch(() => {});
  }

  /**
   * Stdin goes over as files PREFIX.in.N.SIZE, one at a time and in order, then PREFIX.eof; the
   * wrapper's feeder copies them into the command's stdin (exec.ts). `finished` stops the feeding
   * once the command is over, even if our stdin never ends.
   */
  private async feedStdin(id: string, prefix: string, stdin: NonNullable<ExecSpec["stdin"]>, finished: AbortSignal): Promise<void> {
    let index = 0;
    const write = (path: string, bytes: Uint8Array) =>
      this.agentCall(id, "POST", "/files/write", { body: { path, content: Buffer.from(bytes).toString("base64"), encoding: "base64", overwrite: true, mode: "0600" }, signal: finished }, "sending stdin");
    await feedInChunks(stdin, STDIN_CHUNK, finished, (chunk) => write(`${prefix}.in.${index++}.${chunk.length}`, chunk));
    if (!finished.aborted) await write(`${prefix}.eof`, new Uint8Array());
  }

  private readonly archives = stagedArchives(this, (id) => {
    return {
      // files/write takes the file as base64 in JSON: that body is written to disk as the archive
      // is read, and sent from there (spool), not held in memory.
      upload: async (path, source, what) => {
        const body = await spool((write) => writeFileRequest(path, source, write));
        try {
          return await this.agentCall(id, "POST", "/files/write", { raw: body.file(), timeoutMs: 300_000 }, what);
        } finally {
          body.remove();
        }
      },
      download: (path, what) => this.agentCall<AsyncIterable<Uint8Array>>(id, "GET", "/files/download", { query: { path }, stream: true, timeoutMs: 300_000 }, what),
    };
  });
  readonly putArchive = this.archives.putArchive;
  readonly getArchive = this.archives.getArchive;

  async openPty(id: string, spec: PtySpec): Promise<PtySession> {
    const access = await this.agentAccess(id);
    try {
      return await openTerminal(access, spec);
    } catch (error) {
      throw new ProviderError(this.name, `cannot open a terminal in sandbox ${id}: ${(error as Error).message}`);
    }
  }

  async close(): Promise<void> {
    this.access.clear();
  }
}

function idOf(info: SandboxInfo): string {
  return String(info.id ?? info.sandbox_id ?? "");
}

const stateOf = stateMap({ running: ["running"], stopped: ["paused", "stopped"], creating: ["creating", "starting"], error: ["error", "failed"] });

/** Failures that prove the request never reached the service: safe to send again. */
function neverDelivered(error: unknown): boolean {
  return error instanceof HopxNetworkError && (error.code === "ECONNREFUSED" || error.code === "ConnectionRefused");
}

/** Hopx refused the request before acting on it (429, 503) or never received it: safe to send again. */
function notActedOn(error: unknown): boolean {
  if (error instanceof HttpError) return error.status === 429 || error.status === 503;
  return neverDelivered(error);
}

/** A create that failed for good -> one line: an unknown template says so; an ambiguous failure says to look. */
function createFailure(provider: string, what: string, template: string, error: unknown): unknown {
  if (error instanceof HttpError && (error.status === 400 || error.status === 404) && /template/i.test(error.message)) {
    return new ProviderError(provider, `cannot create a sandbox from template "${template}": ${error.message}`, error.status, error.requestId, "pass --image with the name or id of one of your Hopx templates (or set template under [providers.hopx])", "bad_template");
  }
  const ambiguous = (error instanceof HttpError && isTransientStatus(error.status) && !notActedOn(error)) || (error instanceof HopxNetworkError && !neverDelivered(error));
  if (ambiguous) {
    const status = error instanceof HttpError ? error.status : undefined;
    return new ProviderError(provider, `${what} failed: ${(error as Error).message}`, status, (error as HttpError).requestId, "the service may have created it anyway: check `sandboxes list -p hopx` and destroy what you do not need");
  }
  return explain(provider, what, error);
}

/**
 * files/write's body for a file of any size, written out as `source` is read: the same bytes as
 * JSON.stringify({ path, content (the file in base64), encoding, overwrite, mode }), in pieces.
 */
export async function writeFileRequest(path: string, source: ArchiveSource, write: (chunk: Uint8Array) => void): Promise<void> {
  const text = (value: string) => write(Buffer.from(value));
  text(`{"path":${JSON.stringify(path)},"content":"`);
  // base64 takes 3 bytes at a time: what is left of a chunk (0-2 bytes) waits for the next one,
  // and only those are copied.
  let left = new Uint8Array(0);
  const encode = (bytes: Uint8Array) => text(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("base64"));
  await pumpBody(source.stream(), (chunk) => {
    let rest = chunk;
    if (left.length) {
      const joined = new Uint8Array(Math.min(3, left.length + chunk.length));
      joined.set(left);
      joined.set(chunk.subarray(0, joined.length - left.length), left.length);
      rest = chunk.subarray(joined.length - left.length);
      left = joined;
      if (left.length < 3) return;
      encode(left);
    }
    const whole = rest.length - (rest.length % 3);
    encode(rest.subarray(0, whole));
    left = rest.slice(whole);
  });
  encode(left);
  text(`","encoding":"base64","overwrite":true,"mode":"0600"}`);
}

