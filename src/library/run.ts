/** The library's one-call functions: a sandbox of their own for one command, or a few, then gone. */
import { loadSettings, type Settings } from "../core/config";
import type { CreateSpec } from "../providers/types";
import { createSandbox, destroySandbox, type Lease } from "../core/lifecycle";
import { runCode } from "../core/run";
import { closeProviders } from "../core/select";
import { capture, execEach, execIn, execResult, stdinOf } from "./exec";
import type { CommandOrArgv, ExecOptions, RunResult, SandboxOptions } from "./types";

export function settingsOf(options: { environment?: Record<string, string | undefined> }): Promise<Settings> {
  return loadSettings(options.environment ?? process.env);
}

/** What the provider is asked for. */
function createSpecOf(options: SandboxOptions): CreateSpec {
  const { name, image, ttlSeconds, cpus, memoryMb, pids, network } = options;
  return { name, image, labels: { ...options.labels }, env: { ...options.env }, ttlSeconds, cpus, memoryMb, pids, network };
}

/** A new sandbox as SandboxOptions describe it (core/lifecycle.ts), registered so the CLI finds it. */
export async function createFor(options: SandboxOptions): Promise<{ settings: Settings; lease: Lease }> {
  const settings = await settingsOf(options);
  return { settings, lease: await createSandbox(settings, options, createSpecOf(options), { register: true, signal: options.signal }) };
}

/** Creates a sandbox, runs one command, destroys the sandbox (also when the command fails). */
export async function run(command: CommandOrArgv, options: SandboxOptions & ExecOptions = {}): Promise<RunResult> {
  if (!options.fallback?.length && typeof command === "string") {
    // The CLI's own path: on providers that can (docker), create, run and remove in one go.
    return runThroughCore(command, options);
  }
  return inOwnSandbox(options, async (lease) => ({ ...(await execIn(lease, command, options, "create")), sandboxId: lease.record.id, provider: lease.provider.name }));
}

/** Runs commands one after another in one sandbox; stops at the first failure unless told not to. */
export function runMany(commands: CommandOrArgv[], options: SandboxOptions & ExecOptions & { stopOnError?: boolean } = {}): Promise<RunResult[]> {
  return inOwnSandbox(options, async (lease) => (await execEach(lease, commands, options, "create")).map((result) => ({ ...result, sandboxId: lease.record.id, provider: lease.provider.name })));
}

/** Lets the process exit: closes the connections the cloud SDKs keep open. */
export async function close(): Promise<void> {
  await closeProviders();
}

async function inOwnSandbox<T>(options: SandboxOptions, body: (lease: Lease) => Promise<T>): Promise<T> {
  const { settings, lease } = await createFor(options);
  try {
    return await body(lease);
  } finally {
    await destroySandbox(settings, lease);
  }
}

async function runThroughCore(command: string, options: SandboxOptions & ExecOptions): Promise<RunResult> {
  const started = performance.now();
  const settings = await settingsOf(options);
  const { out, err, sink } = capture(options);
  const request = {
    ...createSpecOf(options),
    provider: options.provider,
    workdir: options.cwd,
    timeoutMs: options.timeoutMs,
    source: { kind: "command" as const, line: command },
    stdin: stdinOf(options),
    signal: options.signal ?? new AbortController().signal,
  };
  const report = await runCode(settings, request, sink);
  return { ...execResult(report.exitCode, report.timedOut, out, err, started), sandboxId: report.sandboxId, provider: report.provider };
}
