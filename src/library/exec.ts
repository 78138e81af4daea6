/** One command in a sandbox, for the library: its output kept (bounded) and handed back as an ExecResult. */
import { DEFAULT_MAX_OUTPUT_BYTES, MAX_OUTPUT_LIMIT, StreamCapture } from "../core/capture";
import { UsageError } from "../base/errors";
import { type ResolvedSandbox, throwIfAborted } from "../core/lifecycle";
import type { OutputSink } from "../core/run";
import { checkTimeoutMs } from "../core/timeout";
import { prepareWorkdir } from "../core/workdir";
import type { CommandOrArgv, ExecOptions, ExecResult } from "./types";

/** "create" for run() and runMany(), whose sandbox is their own: a missing `cwd` is made, as `sandboxes run -w` does (core/workdir.ts). */
type CwdMode = "create" | "require";

export const argvOf = (command: CommandOrArgv): string[] => (typeof command === "string" ? ["sh", "-c", command] : command);

export async function execIn(at: ResolvedSandbox, command: CommandOrArgv, options: ExecOptions, cwdMode: CwdMode = "require"): Promise<ExecResult> {
  const started = performance.now();
  const { out, err, sink } = capture(options);
  const stdin = stdinOf(options);
  const timeoutMs = checkTimeoutMs(options.timeoutMs);
  if (options.cwd !== undefined) await prepareWorkdir(at.provider, at.record.id, options.cwd, cwdMode, options.signal);
  const outcome = await at.provider.exec(at.record.id, {
    argv: argvOf(command),
    env: { ...options.env },
    timeoutMs,
    stdin,
    cwd: options.cwd,
    onStdout: sink.stdout,
    onStderr: sink.stderr,
    signal: options.signal,
  });
  throwIfAborted(options.signal);
  return execResult(outcome.exitCode, outcome.timedOut, out, err, started);
}

export function stdinOf(options: ExecOptions): Uint8Array | ReadableStream<Uint8Array> | undefined {
  return typeof options.stdin === "string" ? new TextEncoder().encode(options.stdin) : options.stdin;
}

/** Commands one after another; stops at the first failure unless told not to. */
export async function execEach(at: ResolvedSandbox, commands: CommandOrArgv[], options: ExecOptions & { stopOnError?: boolean }, cwdMode: CwdMode = "require"): Promise<ExecResult[]> {
  const results: ExecResult[] = [];
  for (const command of commands) {
    const result = await execIn(at, command, options, cwdMode);
    results.push(result);
    if (!result.success && options.stopOnError !== false) break;
  }
  return results;
}

/** Bounded capture of both streams (core/capture.ts), passing every chunk on to the live callbacks. */
export function capture(options: ExecOptions): { out: StreamCapture; err: StreamCapture; sink: OutputSink } {
  const limit = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  if (!Number.isInteger(limit) || limit < 0 || limit > MAX_OUTPUT_LIMIT) {
    throw new UsageError("bad_value", `maxOutputBytes must be a whole number of bytes from 0 to ${MAX_OUTPUT_LIMIT}, got ${limit}`);
  }
  const out = new StreamCapture(limit);
  const err = new StreamCapture(limit);
  const sink: OutputSink = {
    stdout: (chunk) => (out.push(chunk), options.onStdout?.(chunk)),
    stderr: (chunk) => (err.push(chunk), options.onStderr?.(chunk)),
    info: () => {},
  };
  return { out, err, sink };
}

export function execResult(exitCode: number, timedOut: boolean, out: StreamCapture, err: StreamCapture, started: number): ExecResult {
  const stdout = out.result();
  const stderr = err.result();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return {
    exitCode,
    timedOut,
    success: exitCode === 0 && !timedOut,
    stdout: text(out.bytes()),
    stderr: text(err.bytes()),
    stdoutBytes: out.bytes(),
    stderrBytes: err.bytes(),
    stdoutTotalBytes: stdout.totalBytes,
    stderrTotalBytes: stderr.totalBytes,
    stdoutTruncated: stdout.truncated,
    stderrTruncated: stderr.truncated,
    truncated: stdout.truncated || stderr.truncated,
    durationMs: Math.round(performance.now() - started),
  };
}
