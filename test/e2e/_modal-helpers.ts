/** Spawning the compiled binary against the fake Modal, for test/e2e/modal*.test.ts. */
import { existsSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const ROOT = join(import.meta.dir, "..", "..");
export const BINARY = join(ROOT, "dist", "sandboxes");

/** Builds dist/sandboxes unless `npm test` already did (SANDBOXES_SKIP_BUILD=1). */
export async function ensureBinary(): Promise<void> {
  if (process.env.SANDBOXES_SKIP_BUILD && existsSync(BINARY)) return;
  const build = Bun.spawn(["bun", "run", "build"], { cwd: ROOT, stdout: "pipe", stderr: "pipe", env: { ...process.env, PATH: `${join(ROOT, "node_modules", ".bin")}:${process.env.PATH}` } });
  if ((await build.exited) !== 0) throw new Error(`build failed: ${await new Response(build.stderr).text()}`);
}

/** A fresh HOME with XDG dirs: no registry, no config, no ~/.modal.toml unless a test writes one. */
export function freshHome(): { HOME: string; XDG_CONFIG_HOME: string; XDG_STATE_HOME: string } {
  const home = mkdtempSync(join(tmpdir(), "sandboxes-e2e-modal-"));
  mkdirSync(join(home, ".config"), { recursive: true });
  return { HOME: home, XDG_CONFIG_HOME: join(home, ".config"), XDG_STATE_HOME: join(home, ".state") };
}

export interface CliResult {
  code: number | null;
  /** Set when the guard had to kill the process (it did not exit by itself). */
  killed: boolean;
  stdout: string;
  stderr: string;
}

/** Runs the binary with exactly `env` (plus PATH); kills it after `guardMs` if it hangs. */
export async function cli(args: string[], env: Record<string, string>, options: { stdin?: string; guardMs?: number } = {}): Promise<CliResult> {
  const child = Bun.spawn([BINARY, ...args], {
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", NO_COLOR: "1", ...env },
    stdin: options.stdin !== undefined ? new TextEncoder().encode(options.stdin) : "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  let killed = false;
  const guard = setTimeout(() => ((killed = true), child.kill("SIGKILL")), options.guardMs ?? 60_000);
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  clearTimeout(guard);
  return { code: killed ? null : code, killed, stdout, stderr };
}
