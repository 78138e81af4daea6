import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const BINARY = resolve(import.meta.dir, "../../dist/sandboxes");

export interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Builds the compiled binary once per test file (the tests run what users run). */
export async function buildBinary(): Promise<void> {
  const build = Bun.spawn(["bun", "run", "build"], { cwd: resolve(import.meta.dir, "../.."), stdout: "pipe", stderr: "pipe" });
  const [code, errors] = await Promise.all([build.exited, new Response(build.stderr).text()]);
  if (code !== 0) throw new Error(`bun run build failed: ${errors}`);
}

/** A throw-away HOME with XDG dirs, so runs share nothing with the machine or each other. */
export function tempHome(): { home: string; env: Record<string, string>; cleanup(): void } {
  const home = mkdtempSync(join(tmpdir(), "sandboxes-e2e-daytona-"));
  return {
    home,
    env: { HOME: home, XDG_CONFIG_HOME: join(home, ".config"), XDG_STATE_HOME: join(home, ".local/state"), NO_COLOR: "1", PATH: process.env.PATH ?? "/usr/bin:/bin" },
    cleanup: () => rmSync(home, { recursive: true, force: true }),
  };
}

/** Spawns the binary without blocking this process's event loop (the fake lives in it). */
export async function sandboxes(args: string[], env: Record<string, string>, options: { stdin?: string; cwd?: string } = {}): Promise<Outcome> {
  const child = Bun.spawn([BINARY, ...args], {
    env,
    cwd: options.cwd,
    stdin: options.stdin === undefined ? "ignore" : new TextEncoder().encode(options.stdin),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { code, stdout, stderr };
}
