/**
 * Every failure that `sandboxes` itself can report. main.ts maps these to exit codes and to the
 * `{"error": {code, message}}` JSON document; nothing below main.ts ever exits.
 */
export type ErrorKind = "usage" | "user" | "provider" | "interrupted" | "bug";

export class SandboxesError extends Error {
  constructor(
    /** Stable, machine-readable code, e.g. `unknown_provider`; part of the `--json` contract. */
    readonly code: string,
    message: string,
    readonly kind: ErrorKind = "user",
    readonly hint?: string,
  ) {
    super(withoutRuntimeAdvice(message));
    this.name = "SandboxesError";
  }
}

/**
 * Bun's fetch adds advice meant for whoever wrote the fetch call ("For more information, pass
 * `verbose: true` in the second argument to fetch()"); a user of sandboxes can do nothing with it.
 */
export function withoutRuntimeAdvice(message: string): string {
  return message.replace(/\s*For more information, pass `verbose: true` in the second argument to fetch\(\)\.?/g, "");
}

/** Bad flags or arguments: exit 2 for plain commands, 125 for run/exec. */
export class UsageError extends SandboxesError {
  constructor(code: string, message: string, hint?: string) {
    super(code, message, "usage", hint);
  }
}

/** A provider call failed; names the provider, the status and what to do. */
export class ProviderError extends SandboxesError {
  constructor(
    readonly provider: string,
    message: string,
    readonly status?: number | string,
    readonly requestId?: string,
    hint?: string,
    code = "provider_error",
  ) {
    super(code, `${provider}: ${message}${status !== undefined ? ` (status ${status})` : ""}${requestId ? ` [request ${requestId}]` : ""}`, "provider", hint);
  }
}

/** Why a run was stopped from outside: Ctrl-C, SIGTERM, a closed terminal, or the reader of our stdout went away. */
export type StopReason = "SIGINT" | "SIGTERM" | "SIGHUP" | "SIGPIPE";

/** The user pressed Ctrl-C, we received SIGTERM, or stdout's reader closed; cleanup already ran. */
export class InterruptedError extends SandboxesError {
  constructor(readonly signal: StopReason) {
    super("interrupted", `interrupted by ${signal}`, "interrupted");
  }
}

export function isSandboxesError(error: unknown): error is SandboxesError {
  return error instanceof SandboxesError;
}

/** The failed system calls on a path that the machine causes, not a bug: what each means. */
const MACHINE_CAUSES: Record<string, string> = {
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  EROFS: "read-only file system",
  ENOSPC: "no space left on the device",
  EDQUOT: "disk quota exceeded",
  ENOTDIR: "a part of the path is not a directory",
  EIO: "an input/output error (the disk or its file system)",
};
/** What a system call's error code says of this machine (a full disk, a permission), or undefined for any other error. */
export function machineCause(code: unknown): string | undefined {
  return typeof code === "string" && code in MACHINE_CAUSES ? MACHINE_CAUSES[code] : undefined;
}

const ACTIONS: Record<string, string> = { mkdir: "make", rm: "remove", rmdir: "remove", open: "open", write: "write", rename: "rename", unlink: "remove" };

/**
 * A system call's error on a path that the machine caused (permissions, a read-only or full disk,
 * a file where a directory belongs) as a SandboxesError that names the path, with `hint` for
 * paths under `stateDir`: told as "internal error … a bug", the user would look in the wrong place.
 */
export function machineError(error: unknown, stateDir?: string): SandboxesError | undefined {
  const { code, path, syscall } = (error ?? {}) as { code?: unknown; path?: unknown; syscall?: unknown };
  if (!(error instanceof Error) || typeof code !== "string" || typeof path !== "string" || !(code in MACHINE_CAUSES)) return undefined;
  const action = (typeof syscall === "string" && ACTIONS[syscall]) || "use";
  const inState = stateDir !== undefined && (path === stateDir || path.startsWith(`${stateDir}/`) || stateDir.startsWith(`${path}/`));
  const hint = inState ? `sandboxes keeps its state in ${stateDir}: make that writable, or set XDG_STATE_HOME to a directory that is` : undefined;
  return new SandboxesError("file_system", `cannot ${action} ${path}: ${MACHINE_CAUSES[code]}`, "provider", hint);
}

/**
 * A file transfer that failed because tar (here or in a sandbox) did: one line, `what` and tar's
 * own complaint, its last line but the summary ("Exiting with failure status…"), which names no
 * file; the exit code when tar said nothing.
 */
export function transferFailed(what: string, stderr: string, code: number): SandboxesError {
  const lines = stderr.trim().split("\n").filter((line) => line && !/Exiting with failure status|Error exit delayed/.test(line));
  const complaint = (lines.pop() ?? "").replace(/^(\S*\/)?b?s?d?tar: /, "");
  return new SandboxesError("file_transfer_failed", `${what}: ${complaint || `exit ${code}`}`, "user");
}

/** Levenshtein distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

export function closest(input: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(input, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(input.length / 3)) ? best : undefined;
}
