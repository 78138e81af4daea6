/**
 * The one sandbox lifecycle. `run`, `shell`, `claude`, `test`, the library and the MCP server
 * get and give back their sandboxes here: choose and load the provider, refuse what it cannot
 * enforce, find a sandbox by name or labels, create one (trying fallbacks in turn), record what
 * is kept in the registry, release what a call created, and stop between steps on an abort.
 * Nothing here prints: people hear of it through `notify` (OutputSink.info on the CLI).
 */
import type { CreateSpec, NetworkPolicy, Provider, SandboxRecord } from "../providers/types";
import type { Settings } from "./config";
import { InterruptedError, SandboxesError, type StopReason, UsageError } from "../base/errors";
import { checkNetworkSupport, HOST_NETWORK_WARNING } from "./network";
import { Registry } from "./registry";
import type { ResolvedSandbox } from "./resolve";
import { chooseProvider, configuredProviders, loadProvider, type ProviderChoice } from "./select";

export type { ResolvedSandbox } from "./resolve";

/** A sandbox a call holds. */
export interface Lease extends ResolvedSandbox {
  /** This call created it, so it is this call's to release; otherwise it was found and is never destroyed here. */
  created: boolean;
}

export interface CreateOptions {
  /** Record it in the registry, so `exec`, `cp` and `destroy` find it by id or name without -p. */
  register: boolean;
  signal?: AbortSignal;
}

/** Where a new sandbox goes and what it gets, as `run` and `mcp` take them from flags. */
export interface SandboxSpec {
  /** A provider name; default: the CLI's choice (select.ts). */
  provider?: string;
  image?: string;
  labels: Record<string, string>;
  network?: NetworkPolicy;
  cpus?: number;
  memoryMb?: number;
  pids?: number;
  ttlSeconds?: number;
}

/** Where a new sandbox may go: a provider (default: the CLI's choice), then each fallback in turn. */
export interface Placement {
  provider?: string;
  fallback?: string[];
}

type Notify = (message: string) => void;

const STOP_REASONS: readonly unknown[] = ["SIGINT", "SIGTERM", "SIGHUP", "SIGPIPE"] satisfies StopReason[];

/** Between steps: an aborted signal ends the call as an interruption (an unknown reason counts as Ctrl-C). */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new InterruptedError(STOP_REASONS.includes(signal.reason) ? (signal.reason as StopReason) : "SIGINT");
}

/** The provider named (or the default choice, see select.ts), loaded with its credentials checked. */
export async function openProvider(settings: Settings, name?: string): Promise<{ provider: Provider; choice: ProviderChoice }> {
  const choice = await chooseProvider(settings, name);
  return { provider: await loadProvider(settings, choice.name), choice };
}

/**
 * Says plainly what a provider cannot do before anything is created: refuses what would weaken
 * isolation (the network policy, --pids, mounts); `notify` hears what is only ignored.
 */
export function checkSupport(provider: Provider, spec: Partial<CreateSpec>, notify?: Notify): void {
  const { name, capabilities } = provider;
  checkNetworkSupport(name, capabilities, spec.network);
  if (spec.network?.mode === "host") notify?.(HOST_NETWORK_WARNING);
  if (spec.pids !== undefined && !capabilities.pids) {
    throw new SandboxesError("unsupported", `provider ${name} cannot limit the number of processes (--pids)`, "user", "use -p local or -p docker, or run without --pids");
  }
  if (spec.mounts?.length && !capabilities.mounts) throw new SandboxesError("unsupported", `provider ${name} cannot mount local directories`, "user");
  if ((spec.cpus !== undefined || spec.memoryMb !== undefined) && !capabilities.resources) notify?.(`provider ${name} does not support --cpus/--memory; ignored`);
  if (spec.ttlSeconds !== undefined && !capabilities.ttl) notify?.(`provider ${name} has no sandbox lifetime (--ttl); ignored`);
}

const SANDBOX_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/**
 * A new sandbox's name, as Docker's container names: letters, digits, `_`, `.` and `-`, starting
 * with a letter or digit. A name is printed in tables and messages and passed to every provider:
 * one with a newline or a terminal's escape sequence would break `list`'s rows (and a terminal's
 * screen), one with a space most providers' names. Only new names: any name finds its sandbox.
 */
export function checkSandboxName(name: string | undefined): void {
  if (name === undefined || SANDBOX_NAME.test(name)) return;
  throw new UsageError("bad_name", `sandbox name ${JSON.stringify(name)} is not valid: use letters, digits, "_", "." and "-", starting with a letter or digit (at most 128 characters)`);
}

/** Names find one sandbox: a name already taken on the provider is refused before creating. */
export async function refuseTakenName(provider: Provider, name: string | undefined, hint: string): Promise<void> {
  if (name === undefined) return;
  const clash = (await provider.list({})).find((r) => r.name === name);
  if (clash) throw new SandboxesError("name_in_use", `a sandbox named "${name}" already exists (${clash.id})`, "user", hint);
}

/** The sandbox named `name` on the provider (failed ones aside), if there is one; two are an error. */
export async function findNamed(provider: Provider, name: string): Promise<SandboxRecord | undefined> {
  const matches = (await provider.list({})).filter((r) => r.name === name && r.state !== "error");
  if (matches.length > 1) {
    throw new SandboxesError("ambiguous_sandbox", `more than one sandbox on ${provider.name} is named "${name}": ${matches.map((m) => m.id).join(", ")}`, "user", "attach by id instead");
  }
  return matches[0];
}

export interface RunningKey {
  name?: string;
  labels: Record<string, string>;
}

/** The first running (or restartable: reusable) sandbox on the provider with all these labels and, when given, this name. */
export async function findRunning(provider: Provider, key: RunningKey): Promise<SandboxRecord | undefined> {
  const candidates = await provider.list(Object.keys(key.labels).length ? { labels: key.labels } : {});
  return candidates.find((r) => reusable(provider, r) && (!key.name || r.name === key.name));
}

/** Whether --reuse and the library's find may pick this sandbox: running, or one exec starts again. */
function reusable(provider: Provider, record: SandboxRecord): boolean {
  return record.state === "running" || (record.state === "stopped" && provider.capabilities.startsStopped === true);
}

/** findRunning on the provider named, or on every configured one in turn; one that cannot be asked is an error, not a "none". */
export async function findRunningOn(settings: Settings, providerName: string | undefined, key: RunningKey): Promise<ResolvedSandbox | undefined> {
  const names = providerName ? [providerName] : (await configuredProviders(settings)).map((d) => d.name);
  for (const name of names) {
    const provider = await loadProvider(settings, name);
    const record = await findRunning(provider, key);
    if (record) return { provider, record };
  }
  return undefined;
}

/** Creates a sandbox on a provider already loaded and checked. */
export async function createOn(settings: Settings, provider: Provider, spec: CreateSpec, options: CreateOptions): Promise<Lease> {
  const record = await provider.create(spec, options.signal);
  if (options.register) {
    new Registry(settings.stateDir).add({ id: record.id, provider: provider.name, name: spec.name, labels: { ...spec.labels }, createdAt: record.createdAt ?? new Date().toISOString() });
  }
  return { provider, record, created: true };
}

/**
 * Creates a sandbox where `placement` says: on each provider in turn until one creates it. A
 * mistake in the request or an abort is not tried elsewhere; when every provider failed, the
 * error names each and why. `prepare` runs on each provider before its create (checks of the
 * caller's own, such as a name that must be free).
 */
export async function createSandbox(
  settings: Settings,
  placement: Placement,
  spec: CreateSpec,
  options: CreateOptions & { prepare?: (provider: Provider) => Promise<void> },
): Promise<Lease> {
  checkSandboxName(spec.name);
  const first = (await chooseProvider(settings, placement.provider)).name;
  const candidates = [first, ...(placement.fallback ?? []).filter((name) => name !== first)];
  const failures: string[] = [];
  for (const name of candidates) {
    throwIfAborted(options.signal);
    try {
      const provider = await loadProvider(settings, name);
      checkSupport(provider, spec);
      await options.prepare?.(provider);
      return await createOn(settings, provider, spec, options);
    } catch (error) {
      if (error instanceof UsageError || error instanceof InterruptedError || options.signal?.aborted || candidates.length === 1) throw error;
      failures.push(`${name}: ${(error as Error).message}`);
    }
  }
  throw new SandboxesError("create_failed", `no provider could create the sandbox: ${failures.join("; ")}`, "provider");
}

export interface HoldOptions {
  signal?: AbortSignal;
  notify: Notify;
  /** Asked when the body ends: keep a sandbox this call created (it stays registered) instead of destroying it. */
  keep(): boolean;
  /** Called when a sandbox this call created is kept. */
  onKept?(): void;
}

/**
 * Runs `body` with the sandbox, then releases it: one this call created is destroyed on errors,
 * aborts and success alike, unless `keep()` says otherwise; one that was found is left as it is.
 */
export async function hold<T>(settings: Settings, lease: Lease, options: HoldOptions, body: () => Promise<T>): Promise<T> {
  try {
    throwIfAborted(options.signal);
    return await body();
  } finally {
    if (lease.created && options.keep()) options.onKept?.();
    else if (lease.created) await release(settings, lease, options.notify);
  }
}

/** Destroys a sandbox and forgets it; fails when the provider could not destroy it. */
export async function destroySandbox(settings: Settings, at: ResolvedSandbox): Promise<void> {
  await at.provider.destroy(at.record.id);
  new Registry(settings.stateDir).remove(at.provider.name, at.record.id);
}

/** Destroys a sandbox and forgets it; a provider that fails is a warning, since what failed is already being reported. */
export async function release(settings: Settings, at: ResolvedSandbox, notify: Notify): Promise<void> {
  await at.provider.destroy(at.record.id).catch((error) => notify(`warning: ${destroyFailure(at, error)}`));
  new Registry(settings.stateDir).remove(at.provider.name, at.record.id);
}

export function destroyFailure(at: ResolvedSandbox, error: unknown): string {
  return `could not destroy sandbox ${at.record.id} on ${at.provider.name}: ${(error as Error).message}`;
}

/** The line that says a sandbox outlives the command, and how to get back to it (`again`, a command line) and remove it. */
export function keptNotice(at: ResolvedSandbox, again?: string): string {
  return `kept sandbox ${at.record.id} on ${at.provider.name}; ${again ? `attach again with \`${again}\`, ` : ""}remove it with \`sandboxes destroy ${at.record.id}\``;
}
