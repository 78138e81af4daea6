import { existsSync, mkdtempSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const BINARY = resolve(import.meta.dir, "..", "dist", "sandboxes");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  stdoutBytes: Uint8Array;
}

export interface CliEnv {
  home: string;
  env: Record<string, string>;
}

/** A fresh HOME and XDG dirs, NO_COLOR, and the caller's PATH; nothing else leaks in. */
export function freshEnv(extra: Record<string, string> = {}): CliEnv {
  const home = mkdtempSync(join(tmpdir(), "sandboxes-home-"));
  for (const dir of [".config", ".local/state"]) mkdirSync(join(home, dir), { recursive: true });
  const env: Record<string, string> = {
    HOME: home,
    XDG_CONFIG_HOME: join(home, ".config"),
    XDG_STATE_HOME: join(home, ".local/state"),
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    NO_COLOR: "1",
    LANG: "C.UTF-8",
    // Core tests see only the local provider unless a test opts into another.
    DOCKER_HOST: "unix:///nonexistent/docker.sock",
    ...extra,
  };
  return { home, env };
}

export async function cli(args: string[], options: { env: Record<string, string>; stdin?: string | Uint8Array; cwd?: string }): Promise<CliResult> {
  const child = Bun.spawn([BINARY, ...args], {
    env: options.env,
    cwd: options.cwd,
    stdin: options.stdin === undefined ? "ignore" : typeof options.stdin === "string" ? new TextEncoder().encode(options.stdin) : options.stdin,
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdoutBytes, stderr, code] = await Promise.all([new Response(child.stdout).bytes(), new Response(child.stderr).text(), child.exited]);
  return { code, stdout: new TextDecoder().decode(stdoutBytes), stderr, stdoutBytes };
}

/** Starts the binary and hands back the process, for signal tests. */
export function spawnCli(args: string[], env: Record<string, string>) {
  return Bun.spawn([BINARY, ...args], { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
}

/** The id in "kept sandbox <id>", the line `run --keep` writes to stderr. */
export const keptId = (stderr: string): string | undefined => /kept sandbox (\S+)/.exec(stderr)?.[1];

/** A result without its raw bytes, for one toEqual on code, stdout and stderr. */
export const plain = ({ code, stdout, stderr }: CliResult) => ({ code, stdout, stderr });

/**
 * Temporary "machines" (each its own HOME and XDG dirs, so its own registry of kept sandboxes),
 * all removed by removeAll() in the suite's afterAll.
 */
export function machines(): { machine(extra?: Record<string, string>): CliEnv; removeAll(): void } {
  const homes: string[] = [];
  return {
    machine(extra = {}) {
      const made = freshEnv(extra);
      homes.push(made.home);
      return made;
    },
    removeAll() {
      for (const home of homes.splice(0)) rmSync(home, { recursive: true, force: true });
    },
  };
}

/**
 * Starts `sandboxes run … '<prints a line>; sleep'`, waits for that first line (the command is
 * running in its sandbox by then), calls `whileRunning`, sends `signal` and waits for the exit.
 */
export async function interruptRun(args: string[], env: Record<string, string>, signal: "SIGINT" | "SIGTERM", whileRunning: () => void | Promise<void> = () => {}): Promise<{ firstLine: string; exitCode: number }> {
  const child = Bun.spawn([BINARY, ...args], { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
  const firstLine = new TextDecoder().decode((await reader.read()).value);
  await whileRunning();
  child.kill(signal);
  const guard = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const exitCode = await child.exited;
  clearTimeout(guard);
  reader.releaseLock();
  return { firstLine, exitCode };
}

/** The local provider's sandbox directories left in this machine's state (XDG_STATE_HOME). */
export function localSandboxesLeft(env: Record<string, string>): string[] {
  const root = join(env.XDG_STATE_HOME!, "sandboxes", "local");
  return existsSync(root) ? readdirSync(root) : [];
}
