import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dir, "../..");
export const PACKAGE_VERSION: string = (await Bun.file(join(ROOT, "package.json")).json()).version;

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs argv to completion with exactly `env` (nothing inherited) and optional stdin. */
export async function run(argv: string[], options: { env: Record<string, string>; cwd?: string; stdin?: string }): Promise<Result> {
  const proc = Bun.spawn(argv, {
    cwd: options.cwd ?? ROOT,
    env: options.env,
    stdin: options.stdin === undefined ? "ignore" : new Blob([options.stdin]),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

/** A throwaway HOME with XDG dirs inside it; remove() in afterEach/afterAll. */
export function tempHome(prefix = "sandboxes-release-"): { home: string; env: Record<string, string>; remove(): void } {
  const home = mkdtempSync(join(tmpdir(), prefix));
  return {
    home,
    env: {
      HOME: home,
      XDG_CONFIG_HOME: join(home, ".config"),
      XDG_STATE_HOME: join(home, ".local/state"),
      PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
      NO_COLOR: "1",
    },
    remove: () => rmSync(home, { recursive: true, force: true }),
  };
}

/** Builds dist/sandboxes (the package.json build) once per test file. */
export async function buildDevBinary(): Promise<string> {
  const result = await run([process.execPath, "run", "build"], { env: { ...process.env } as Record<string, string> });
  if (result.code !== 0) throw new Error(`bun run build failed:\n${result.stderr}`);
  return join(ROOT, "dist/sandboxes");
}

export function which(tool: string): string | null {
  return Bun.which(tool);
}
