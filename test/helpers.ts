import { mkdtempSync, mkdirSync } from "node:fs";
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
