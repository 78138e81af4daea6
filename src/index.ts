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
 * Sandboxes come and go through core's one lifecycle (core/lifecycle.ts), as the CLI's do.
 */
import type { Settings } from "./core/config";
import { UsageError } from "./base/errors";
import { destroySandbox, findRunningOn, type ResolvedSandbox } from "./core/lifecycle";
import { resolveSandbox } from "./core/resolve";
import { downloadPath, uploadPath } from "./core/transfer";
import { execEach, execIn } from "./library/exec";
import { createFor, settingsOf } from "./library/run";
import { streamEvents } from "./library/stream";
import type { CommandOrArgv, ExecOptions, ExecResult, SandboxOptions, StreamEvent } from "./library/types";
import type { SandboxRecord } from "./providers/types";

export { SandboxesError, ProviderError, UsageError, InterruptedError } from "./base/errors";
export type { Capabilities, SandboxRecord, SandboxState } from "./providers/types";
export { providerNames } from "./providers/catalog";
export { close, run, runMany } from "./library/run";
export type { ExecOptions, ExecResult, RunResult, SandboxOptions, StreamEvent } from "./library/types";

export class Sandbox {
  private destroyed = false;

  private constructor(
    private readonly settings: Settings,
    private readonly at: ResolvedSandbox,
  ) {}

  /** What the provider said when the sandbox was created or found. */
  get record(): SandboxRecord {
    return this.at.record;
  }

  get id(): string {
    return this.at.record.id;
  }

  get provider(): string {
    return this.at.provider.name;
  }

  /**
   * A new sandbox. With `fallback`, each provider is tried in turn until one creates it; the
   * error then names every provider and why it failed. Destroy it (or `await using` it).
   */
  static async create(options: SandboxOptions = {}): Promise<Sandbox> {
    const { settings, lease } = await createFor(options);
    return new Sandbox(settings, lease);
  }

  /**
   * The first running sandbox with all these labels (and this name, if given), on `provider` or
   * on every configured one; null when there is none. A provider that cannot be asked is an
   * error, not a "none".
   */
  static async find(options: { labels?: Record<string, string>; name?: string; provider?: string; environment?: Record<string, string | undefined> }): Promise<Sandbox | null> {
    const labels = options.labels ?? {};
    if (!options.name && Object.keys(labels).length === 0) throw new UsageError("find_without_key", "Sandbox.find needs labels or a name");
    const settings = await settingsOf(options);
    const found = await findRunningOn(settings, options.provider, { name: options.name, labels });
    return found ? new Sandbox(settings, found) : null;
  }

  /** find() with the same labels and name, else create(). */
  static async getOrCreate(options: SandboxOptions): Promise<Sandbox> {
    return (await Sandbox.find(options)) ?? Sandbox.create(options);
  }

  /** An existing sandbox by id or name, found as `sandboxes exec` finds it. */
  static async connect(ref: string, options: { provider?: string; environment?: Record<string, string | undefined> } = {}): Promise<Sandbox> {
    const settings = await settingsOf(options);
    return new Sandbox(settings, await resolveSandbox(settings, ref, options.provider));
  }

  exec(command: CommandOrArgv, options: ExecOptions = {}): Promise<ExecResult> {
    return execIn(this.at, command, options);
  }

  /** Runs commands one after another; stops at the first failure unless told not to. */
  execMany(commands: CommandOrArgv[], options: ExecOptions & { stopOnError?: boolean } = {}): Promise<ExecResult[]> {
    return execEach(this.at, commands, options);
  }

  /**
   * Output as it happens, then one `exit` event. Leaving the loop early stops the command.
   *
   *   for await (const event of box.stream("make test")) if (event.type !== "exit") process.stdout.write(event.data);
   */
  stream(command: CommandOrArgv, options: Omit<ExecOptions, "onStdout" | "onStderr"> = {}): AsyncGenerator<StreamEvent> {
    return streamEvents((withCallbacks) => this.exec(command, withCallbacks), options);
  }

  /** `cp -r` semantics: a directory as remotePath receives localPath inside it. */
  async upload(localPath: string, remotePath: string): Promise<void> {
    await uploadPath(this.at.provider, this.id, localPath, remotePath);
  }

  /**
   * `cp -r` semantics, streamed (memory stays small whatever the size). Resolves with where it
   * wrote and the entries it would not write: devices, FIFOs, and anything a hostile archive
   * aims outside `localPath`.
   */
  async download(remotePath: string, localPath: string): Promise<{ path: string; skipped: { count: number; first: string[] } }> {
    return downloadPath(this.at.provider, this.id, remotePath, localPath);
  }

  /** Idempotent. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    await destroySandbox(this.settings, this.at);
    this.destroyed = true;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.destroy();
  }
}
