import type { Mount, Provider, PtySession, SandboxRecord } from "../providers/types";
import type { Settings } from "./config";
import { InterruptedError, SandboxesError } from "../base/errors";
import { Registry } from "./registry";
import { resolveSandbox } from "./resolve";
import type { OutputSink } from "./run";
import { chooseProvider, loadProvider } from "./select";
import { prepareWorkdir } from "./workdir";

/**
 * Orchestration shared by `shell` and `claude`: find or create the sandbox, run one program in
 * it (in a PTY when we have a terminal, with stdin piped otherwise), and leave nothing behind
 * that the user did not ask to keep.
 */

/** What the command hands in: the local terminal, so core never touches process.stdin itself. */
export interface InteractiveIO {
  /** stdin is a terminal: attach a PTY. Otherwise the program reads our stdin (a pipe or file). */
  interactive: boolean;
  size(): { cols: number; rows: number };
  /** TERM (and COLORTERM) of the local terminal, so remote programs draw for it. */
  terminalEnv(): Record<string, string>;
  attach(session: PtySession, options: { resize: boolean; signal: AbortSignal }): Promise<number>;
  stdin(): ReadableStream<Uint8Array>;
  sink: OutputSink;
}

export interface SandboxTarget {
  /** The command that attaches again ("shell", "claude"), for the "kept" hint. */
  command: string;
  /** An existing sandbox (id or name); it must exist and is never destroyed by us. */
  ref?: string;
  /** Attach to the sandbox with this name, creating it when missing; named sandboxes are kept. */
  name?: string;
  provider?: string;
  keep: boolean;
  image?: string;
  labels: Record<string, string>;
  mounts?: Mount[];
}

export interface AcquiredSandbox {
  provider: Provider;
  record: SandboxRecord;
  /** Created by this invocation (as opposed to attached to). */
  created: boolean;
}

export interface ProgramSpec {
  argv: string[];
  env: Record<string, string>;
  cwd?: string;
}

/** A login shell: bash when the sandbox has it, sh otherwise (decided inside the sandbox). */
export const LOGIN_SHELL: string[] = ["sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash -l; fi; exec sh -l"];

export function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted && (signal.reason === "SIGINT" || signal.reason === "SIGTERM")) throw new InterruptedError(signal.reason);
}

/**
 * Runs `body` with the target sandbox. A sandbox created here is destroyed afterwards unless it
 * was named or --keep was given *and* the session got going; on any error before that (or on
 * Ctrl-C/SIGTERM while creating) it is destroyed as well, so nothing leaks.
 */
export async function withSandbox<T>(
  settings: Settings,
  target: SandboxTarget,
  sink: OutputSink,
  signal: AbortSignal,
  body: (sandbox: AcquiredSandbox, started: () => void) => Promise<T>,
): Promise<T> {
  const existing = await findExisting(settings, target);
  if (existing) {
    sink.info(`attaching to sandbox ${existing.record.name ? `${existing.record.name} (${existing.record.id})` : existing.record.id} on ${existing.provider.name}`);
    return body({ ...existing, created: false }, () => {});
  }
  const provider = await loadProvider(settings, (await chooseProvider(settings, target.provider)).name);
  throwIfAborted(signal);
  if (target.mounts?.length && !provider.capabilities.mounts) {
    throw new SandboxesError("unsupported", `provider ${provider.name} cannot mount local directories`, "user");
  }
  const record = await provider.create(
    { name: target.name, image: target.image, labels: target.labels, env: {}, mounts: target.mounts },
    signal,
  );
  const keepRequested = target.keep || target.name !== undefined;
  let sessionStarted = false;
  const registry = new Registry(settings.stateDir);
  try {
    throwIfAborted(signal);
    if (keepRequested) {
      registry.add({ id: record.id, provider: provider.name, name: target.name, labels: target.labels, createdAt: record.createdAt ?? new Date().toISOString() });
    }
    return await body({ provider, record, created: true }, () => (sessionStarted = true));
  } finally {
    if (keepRequested && sessionStarted) {
      const where = target.provider ? ` -p ${provider.name}` : "";
      const again = target.name ? `sandboxes ${target.command} -n ${target.name}${where}` : `sandboxes shell ${record.id}${where}`;
      sink.info(`kept sandbox ${record.id} on ${provider.name}; attach again with \`${again}\`, remove it with \`sandboxes destroy ${record.id}\``);
    } else {
      await provider.destroy(record.id).catch((error) => sink.info(`warning: could not destroy sandbox ${record.id}: ${(error as Error).message}`));
      registry.remove(provider.name, record.id);
    }
  }
}

async function findExisting(settings: Settings, target: SandboxTarget): Promise<{ provider: Provider; record: SandboxRecord } | undefined> {
  if (target.ref) {
    if (target.name) throw new SandboxesError("conflicting_arguments", "give either a sandbox ID|NAME or -n NAME, not both", "usage");
    return resolveSandbox(settings, target.ref, target.provider);
  }
  if (!target.name) return undefined;
  const provider = await loadProvider(settings, (await chooseProvider(settings, target.provider)).name);
  const matches = (await provider.list({})).filter((r) => r.name === target.name && r.state !== "error");
  if (matches.length > 1) {
    throw new SandboxesError("ambiguous_sandbox", `more than one sandbox on ${provider.name} is named "${target.name}": ${matches.map((m) => m.id).join(", ")}`, "user", "attach by id instead");
  }
  return matches[0] ? { provider, record: matches[0] } : undefined;
}

/**
 * Runs the program: attached to the local terminal through the provider's PTY, or, without a
 * terminal on stdin, as a plain exec that reads our stdin. Returns the program's exit code.
 */
export async function runProgram(provider: Provider, id: string, program: ProgramSpec, io: InteractiveIO, signal: AbortSignal, started: () => void = () => {}): Promise<number> {
  if (!io.interactive) {
    started();
    const outcome = await provider.exec(id, {
      argv: program.argv,
      env: program.env,
      cwd: program.cwd,
      stdin: provider.capabilities.stdin ? io.stdin() : undefined,
      onStdout: io.sink.stdout,
      onStderr: io.sink.stderr,
      signal,
    });
    throwIfAborted(signal);
    return outcome.exitCode;
  }
  if (!provider.capabilities.pty || !provider.openPty) {
    throw new SandboxesError(
      "unsupported",
      `provider ${provider.name} has no interactive terminal`,
      "user",
      "pipe the commands instead (echo 'ls -la' | sandboxes shell …), or use `sandboxes exec`",
    );
  }
  const { cols, rows } = io.size();
  if (!provider.capabilities.resize) io.sink.info(`provider ${provider.name} cannot resize the remote terminal: it stays ${cols}x${rows}`);
  const env = { ...io.terminalEnv(), ...program.env };
  const session = await provider.openPty(id, { argv: program.argv, env, cwd: program.cwd, cols, rows });
  started();
  const code = await io.attach(session, { resize: provider.capabilities.resize, signal });
  throwIfAborted(signal);
  return code;
}

export interface ShellOptions {
  target: SandboxTarget;
  env: Record<string, string>;
  workdir?: string;
  signal: AbortSignal;
}

/** `sandboxes shell`: a login shell in the target sandbox; its exit code becomes ours. */
export async function openShell(settings: Settings, options: ShellOptions, io: InteractiveIO): Promise<number> {
  return withSandbox(settings, options.target, io.sink, options.signal, async ({ provider, record, created }, started) => {
    if (options.workdir !== undefined) {
      await prepareWorkdir(provider, record.id, options.workdir, created ? "create" : "require", options.signal);
      throwIfAborted(options.signal);
    }
    return runProgram(provider, record.id, { argv: LOGIN_SHELL, env: options.env, cwd: options.workdir }, io, options.signal, started);
  });
}
