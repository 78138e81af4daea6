/**
 * Helpers for the docker e2e tests: spawn the compiled binary with a private HOME/XDG and
 * NO_COLOR, and ask the Engine API directly what exists (never through the code under test).
 */
import { afterAll, beforeAll } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { assertMachine } from "../helpers";

export const ROOT = resolve(import.meta.dir, "../..");
export const BINARY = process.env.SANDBOXES_BIN ?? join(ROOT, "dist", "sandboxes");
export const SOCKET = "/var/run/docker.sock";
export const BUSYBOX = "sandboxes-test/busybox";
export const USER_IMAGE = "sandboxes-test/user";
export const NODE = "sandboxes-test/node";

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/** Builds dist/sandboxes when it is missing or older than src/ (npm test builds it first anyway). */
export async function ensureBinary(): Promise<void> {
  if (process.env.SANDBOXES_BIN) return;
  if (existsSync(BINARY) && statSync(BINARY).mtimeMs >= newestSource(join(ROOT, "src"))) return;
  const build = Bun.spawn(["bun", "run", "build"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  if ((await build.exited) !== 0) throw new Error(`bun run build failed:\n${await new Response(build.stderr).text()}`);
}

/** Fails loudly (no skip), in one line, when no engine answers: npm test runs scripts/ci/docker.sh first. */
export async function requireEngine(): Promise<void> {
  await assertMachine({ docker: { images: [BUSYBOX, USER_IMAGE, NODE] } });
}

export async function engine<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; data: T }> {
  const response = await fetch(`http://docker${path}`, {
    method,
    unix: SOCKET,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  } as RequestInit);
  const text = await response.text();
  return { status: response.status, data: (text ? JSON.parse(text) : undefined) as T };
}

/** Every container (running or not) carrying our user label key=value. */
export async function containersLabelled(key: string, value: string): Promise<Array<{ Id: string; State: string; Labels: Record<string, string> }>> {
  const filters = encodeURIComponent(JSON.stringify({ label: [`sandboxes.label.${key}=${value}`] }));
  return (await engine<Array<{ Id: string; State: string; Labels: Record<string, string> }>>("GET", `/containers/json?all=true&filters=${filters}`)).data;
}

/**
 * The containers left with that label once the engine has finished removing: destroy hands
 * removal to the engine (AutoRemove), so give it a moment, bounded, before judging.
 */
export async function containersLeft(key: string, value: string): Promise<Array<{ Id: string; State: string }>> {
  let left = await containersLabelled(key, value);
  for (let i = 0; i < 150 && left.length > 0; i++) {
    await Bun.sleep(100);
    left = await containersLabelled(key, value);
  }
  return left;
}

export function uniqueLabel(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class Cli {
  readonly home = mkdtempSync(join(tmpdir(), "sandboxes-e2e-docker-"));

  env(extra: Record<string, string> = {}): Record<string, string> {
    return {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: this.home,
      XDG_CONFIG_HOME: join(this.home, "config"),
      XDG_STATE_HOME: join(this.home, "state"),
      NO_COLOR: "1",
      ...extra,
    };
  }

  spawn(args: string[], options: { stdin?: string; env?: Record<string, string> } = {}) {
    return Bun.spawn([BINARY, ...args], {
      env: this.env(options.env),
      stdin: options.stdin === undefined ? "ignore" : new Blob([options.stdin]),
      stdout: "pipe",
      stderr: "pipe",
    });
  }

  async run(args: string[], options: { stdin?: string; env?: Record<string, string> } = {}): Promise<CliResult> {
    const child = this.spawn(args, options);
    const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    return { code, stdout, stderr };
  }
}

/**
 * The shared frame of a docker e2e file: the engine and the binary are checked first, and every
 * label value handed out is swept afterwards, so a failing test never leaves a container behind.
 */
export function dockerE2eSuite(): { cli: Cli; label: (prefix: string) => string } {
  const used: string[] = [];
  beforeAll(async () => {
    await requireEngine();
    await ensureBinary();
  }, 120_000);
  afterAll(async () => {
    for (const value of used) {
      for (const container of await containersLabelled("e2e", value)) await engine("DELETE", `/containers/${container.Id}?force=true`);
    }
  });
  return {
    cli: new Cli(),
    label: (prefix) => {
      const value = uniqueLabel(prefix);
      used.push(value);
      return value;
    },
  };
}
