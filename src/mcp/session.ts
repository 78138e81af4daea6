import { randomBytes } from "node:crypto";
import type { Settings } from "../core/config";
import { destroyFailure, destroySandbox, type ResolvedSandbox } from "../core/lifecycle";
import { SandboxesError } from "../base/errors";
import { createSandbox, findSandbox, type NewSandbox, type SessionDefaults } from "./core";

/** How long the end of a session waits for stopped calls to clean up after themselves. */
const CALL_STOP_LIMIT_MS = 30_000;

/**
 * One MCP session: the sandboxes it created, the calls in flight, and the clean-up when it ends.
 * A call's own sandboxes (run without sandbox_id) are core's to remove; this keeps the ones that
 * outlive a call (create_sandbox) and removes those not kept when the session ends.
 */
export class Session {
  readonly id = randomBytes(4).toString("hex");
  private readonly created = new Map<string, ResolvedSandbox & { keep: boolean }>();
  private readonly calls = new Set<{ stop: AbortController; done: Promise<unknown> }>();
  private ending = false;

  constructor(
    readonly settings: Settings,
    readonly defaults: SessionDefaults,
  ) {}

  /** The session's labels plus the one that says which MCP session made it. */
  labels(extra: Record<string, string> = {}): Record<string, string> {
    return { ...this.defaults.labels, ...extra, "mcp-session": this.id };
  }

  /**
   * Runs one tool call with a signal that stops on the client's cancellation or the session's
   * end; the reason is "SIGINT" so core reports it as it reports Ctrl-C.
   */
  async call<T>(clientSignal: AbortSignal, body: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const stop = new AbortController();
    if (this.ending) stop.abort("SIGTERM");
    const onAbort = () => stop.abort("SIGINT");
    if (clientSignal.aborted) onAbort();
    clientSignal.addEventListener("abort", onAbort, { once: true });
    const done = body(stop.signal);
    const entry = { stop, done: done.catch(() => {}) };
    this.calls.add(entry);
    try {
      return await done;
    } finally {
      this.calls.delete(entry);
      clientSignal.removeEventListener("abort", onAbort);
    }
  }

  /** Creates a sandbox the session keeps track of; one whose call was cancelled while the provider made it goes again. */
  async create(spec: NewSandbox, keep: boolean, signal: AbortSignal, onProgress?: (message: string) => void): Promise<ResolvedSandbox> {
    const created = await createSandbox(this.settings, this.defaults, spec, signal, onProgress);
    this.created.set(created.record.id, { ...created, keep });
    if (signal.aborted) {
      await this.destroy(created).catch(() => {});
      throw new SandboxesError("interrupted", "cancelled", "interrupted");
    }
    return created;
  }

  /** A sandbox of this session first (no provider round trip), else any the CLI would find. */
  async find(ref: string): Promise<ResolvedSandbox> {
    const mine = this.created.get(ref) ?? [...this.created.values()].find((c) => c.record.name === ref);
    return mine ?? findSandbox(this.settings, ref);
  }

  async destroy(at: ResolvedSandbox): Promise<void> {
    await destroySandbox(this.settings, at);
    this.created.delete(at.record.id);
  }

  /** Stops every call, waits for their clean-up, destroys what was not kept; returns the kept ones. */
  async end(warn: (message: string) => void): Promise<ResolvedSandbox[]> {
    this.ending = true;
    for (const call of this.calls) call.stop.abort("SIGTERM");
    // Each call removes what it created once stopped; a provider that hangs does not hold the exit forever.
    const settled = Promise.all([...this.calls].map((call) => call.done));
    let bound: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([settled, new Promise((resolve) => (bound = setTimeout(resolve, CALL_STOP_LIMIT_MS)))]);
    clearTimeout(bound);
    const kept: ResolvedSandbox[] = [];
    await Promise.all(
      [...this.created.values()].map(async (sandbox) => {
        if (sandbox.keep) return void kept.push(sandbox);
        await this.destroy(sandbox).catch((error) => warn(destroyFailure(sandbox, error)));
      }),
    );
    return kept;
  }
}
