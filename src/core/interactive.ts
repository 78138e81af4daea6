import { shellQuote } from "../base/quote";
import type { Mount, Provider, PtySession } from "../providers/types";
import type { Settings } from "./config";
import { SandboxesError } from "../base/errors";
import { createSandbox, findNamed, hold, keptNotice, type Lease, openProvider, type ResolvedSandbox, throwIfAborted } from "./lifecycle";
import { resolveSandbox } from "./resolve";
import type { OutputSink } from "./run";
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

export interface ProgramSpec {
  argv: string[];
  env: Record<string, string>;
  cwd?: string;
}

/** A login shell: bash when the sandbox has it, sh otherwise (decided inside the sandbox). */
export const LOGIN_SHELL: string[] = ["sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash -l; fi; exec sh -l"];

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
  body: (sandbox: Lease, started: () => void) => Promise<T>,
): Promise<T> {
  const existing = await findExisting(settings, target);
  if (existing) {
    sink.info(`attaching to sandbox ${existing.record.name ? `${existing.record.name} (${existing.record.id})` : existing.record.id} on ${existing.provider.name}`);
    return body({ ...existing, created: false }, () => {});
  }
  const keepRequested = target.keep || target.name !== undefined;
  const spec = { name: target.name, image: target.image, labels: target.labels, env: {}, mounts: target.mounts };
  const lease = await createSandbox(settings, { provider: target.provider }, spec, { register: keepRequested, signal });
  let sessionStarted = false;
  const holding = { signal, notify: sink.info, keep: () => keepRequested && sessionStarted, onKept: () => sink.info(keptNotice(lease, attachAgain(target, lease))) };
  return hold(settings, lease, holding, () => body(lease, () => (sessionStarted = true)));
}

/** The command line that attaches to a kept sandbox again. */
function attachAgain(target: SandboxTarget, lease: Lease): string {
  const where = target.provider ? ` -p ${lease.provider.name}` : "";
  return target.name ? `sandboxes ${target.command} -n ${shellQuote(target.name)}${where}` : `sandboxes shell ${lease.record.id}${where}`;
}

async function findExisting(settings: Settings, target: SandboxTarget): Promise<ResolvedSandbox | undefined> {
  if (target.ref) {
    if (target.name) throw new SandboxesError("conflicting_arguments", "give either a sandbox ID|NAME or -n NAME, not both", "usage");
    return resolveSandbox(settings, target.ref, target.provider);
  }
  if (!target.name) return undefined;
  const { provider } = await openProvider(settings, target.provider);
  const record = await findNamed(provider, target.name);
  return record ? { provider, record } : undefined;
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
