import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dir, "../..");
export const BINARY = join(ROOT, "dist", "sandboxes");

/**
 * Builds dist/sandboxes from this tree, so the e2e tests always run the current code. Without
 * NODE_ENV: `bun test` sets it to "test", the bundler would inline that, and consola would then
 * hide every info line (like "kept sandbox …") in the binary.
 */
export function buildBinary(): void {
  const { NODE_ENV: _, ...env } = process.env;
  const build = Bun.spawnSync(["bun", "run", "build"], { cwd: ROOT, env, stdout: "pipe", stderr: "pipe" });
  if (build.exitCode !== 0) throw new Error(`bun run build failed:\n${build.stderr.toString()}`);
}

const homes: string[] = [];

/** A temp HOME with its own XDG config and state dirs: one "machine" for the CLI. */
export function machine(): { home: string; env: Record<string, string> } {
  const home = mkdtempSync(join(tmpdir(), "sandboxes-e2e-e2b-"));
  homes.push(home);
  mkdirSync(join(home, ".config"), { recursive: true });
  return {
    home,
    env: {
      HOME: home,
      XDG_CONFIG_HOME: join(home, ".config"),
      XDG_STATE_HOME: join(home, ".state"),
      NO_COLOR: "1",
      PATH: process.env.PATH ?? "/usr/bin:/bin",
    },
  };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the compiled binary with exactly `env` (nothing inherited) and collects its output. */
export async function sandboxes(args: string[], env: Record<string, string>, options: { stdin?: string; cwd?: string } = {}): Promise<CliResult> {
  const child = Bun.spawn([BINARY, ...args], {
    env,
    cwd: options.cwd,
    stdin: options.stdin !== undefined ? new TextEncoder().encode(options.stdin) : "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { code, stdout, stderr };
}

/** Removes every HOME that machine() made. */
export function removeMachines(): void {
  for (const home of homes.splice(0)) rmSync(home, { recursive: true, force: true });
}
