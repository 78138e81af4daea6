/** The library's public types (re-exported by src/index.ts); their names are part of the API. */
import type { NetworkPolicy } from "../providers/types";

/** Where a sandbox comes from; every field is optional and follows the CLI's flags. */
export interface SandboxOptions {
  /** A provider name (`local`, `docker`, `e2b`, …); default: the CLI's choice (-p > SANDBOXES_PROVIDER > config > credentials > local). */
  provider?: string;
  /** Tried in order when creating on the previous provider fails (not for mistakes in the options). */
  fallback?: string[];
  image?: string;
  name?: string;
  labels?: Record<string, string>;
  /** Environment for every command in the sandbox. */
  env?: Record<string, string>;
  /** The provider removes the sandbox by itself after this long, where it can. */
  ttlSeconds?: number;
  cpus?: number;
  memoryMb?: number;
  /** Most processes and threads in the sandbox; refused by providers that cannot enforce it (local default: 2048). */
  pids?: number;
  /** Network policy; default: the provider's default network. */
  network?: NetworkPolicy;
  /** Where credentials and config.toml are looked up; default `process.env`. */
  environment?: Record<string, string | undefined>;
  signal?: AbortSignal;
}

export interface ExecOptions {
  /** Added to the sandbox's environment for this command. */
  env?: Record<string, string>;
  /** Must exist in the sandbox (as with `sandboxes exec -w`). */
  cwd?: string;
  /** The whole process tree is killed after this long (at most 24 days): exitCode 124, timedOut true. */
  timeoutMs?: number;
  stdin?: string | Uint8Array | ReadableStream<Uint8Array>;
  signal?: AbortSignal;
  /**
   * At most this many bytes of each stream are kept in the result (default 16 MiB, at most
   * 1 GiB); the program keeps running and the rest is only counted (`truncated`).
   */
  maxOutputBytes?: number;
  /** Live output, chunk by chunk, as well as in the result (never cut). */
  onStdout?(chunk: Uint8Array): void;
  onStderr?(chunk: Uint8Array): void;
}

export interface ExecResult {
  exitCode: number;
  timedOut: boolean;
  /** exitCode 0 and not timed out. */
  success: boolean;
  /** UTF-8 text; the exact bytes are in stdoutBytes/stderrBytes. */
  stdout: string;
  stderr: string;
  stdoutBytes: Uint8Array;
  stderrBytes: Uint8Array;
  /** Every byte the program wrote, including what maxOutputBytes left out. */
  stdoutTotalBytes: number;
  stderrTotalBytes: number;
  /** A stream wrote more than maxOutputBytes; the kept bytes are its first ones. */
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  truncated: boolean;
  durationMs: number;
}

export interface RunResult extends ExecResult {
  sandboxId: string;
  provider: string;
}

export type StreamEvent =
  | { type: "stdout" | "stderr"; data: Uint8Array; text: string }
  | { type: "exit"; exitCode: number; timedOut: boolean };

/** A command line runs through `sh -c`; an array is argv as is. */
export type CommandOrArgv = string | string[];
