/**
 * Helpers for the shell/claude e2e tests: the compiled binary with a throwaway HOME/XDG state,
 * and a real terminal (a private tmux server) to drive it like a user would.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dir, "../..");
export const BINARY = join(ROOT, "dist", "sandboxes");

/** Builds dist/sandboxes when it is missing (`npm test` builds it first). */
export function ensureBinary(): void {
  if (existsSync(BINARY)) return;
  const build = Bun.spawnSync(["bun", "run", "build"], { cwd: ROOT, stdout: "inherit", stderr: "inherit" });
  if (build.exitCode !== 0) throw new Error("bun run build failed");
}

export interface TestHome {
  dir: string;
  env: Record<string, string>;
  cleanup(): void;
}

export function makeHome(prefix = "sandboxes-pty-"): TestHome {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
    HOME: join(dir, "home"),
    XDG_CONFIG_HOME: join(dir, "config"),
    XDG_STATE_HOME: join(dir, "state"),
    NO_COLOR: "1",
    LANG: "C.UTF-8",
    SANDBOXES_PROVIDER: "local",
  };
  // The npm registry may sit behind a TLS-intercepting proxy whose CA the host trusts this way.
  for (const key of ["NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"]) {
    if (process.env[key]) env[key] = process.env[key]!;
  }
  Bun.spawnSync(["mkdir", "-p", env.HOME!]);
  return { dir, env, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the compiled binary without a terminal (stdin is a pipe). */
export async function run(home: TestHome, args: string[], options: { stdin?: string; env?: Record<string, string> } = {}): Promise<Result> {
  const child = Bun.spawn([BINARY, ...args], {
    env: { ...home.env, ...options.env },
    stdin: options.stdin === undefined ? "ignore" : new TextEncoder().encode(options.stdin),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { code, stdout, stderr };
}

export async function sandboxIds(home: TestHome, provider = "local"): Promise<string[]> {
  const listed = await run(home, ["list", "-p", provider, "--json"]);
  return (JSON.parse(listed.stdout) as { sandboxes: Array<{ id: string }> }).sandboxes.map((s) => s.id);
}

const quote = (value: string) => `'${value.replaceAll("'", `'\\''`)}'`;

/**
 * One tmux server of our own (-L socket) with one window running `sandboxes ARGS` inside a
 * wrapper that records the terminal settings before and after, the pid and the exit code.
 */
export class Terminal {
  private readonly socket: string;
  readonly files: { before: string; after: string; rc: string; pid: string };

  constructor(
    private readonly home: TestHome,
    args: string[],
    size: { cols: number; rows: number } = { cols: 100, rows: 30 },
    private readonly extraEnv: Record<string, string> = {},
  ) {
    this.socket = `sandboxes-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    const base = join(home.dir, this.socket);
    this.files = { before: `${base}.before`, after: `${base}.after`, rc: `${base}.rc`, pid: `${base}.pid` };
    const command = [
      `stty -g > ${quote(this.files.before)}`,
      `sh -c 'echo $$ > "$0"; exec "$@"' ${quote(this.files.pid)} ${[BINARY, ...args].map(quote).join(" ")}`,
      `echo $? > ${quote(this.files.rc)}.tmp`,
      `stty -g > ${quote(this.files.after)}`,
      `mv ${quote(this.files.rc)}.tmp ${quote(this.files.rc)}`,
      "exec sleep 600",
    ].join("; ");
    this.tmux(["-f", "/dev/null", "new-session", "-d", "-s", "main", "-x", String(size.cols), "-y", String(size.rows), command]);
  }

  private tmux(args: string[]): string {
    const result = Bun.spawnSync(["tmux", "-L", this.socket, ...args], { env: { ...this.home.env, ...this.extraEnv, TERM: "xterm-256color" }, stdout: "pipe", stderr: "pipe" });
    if (result.exitCode !== 0) throw new Error(`tmux ${args[0]} failed: ${result.stderr.toString()}`);
    return result.stdout.toString();
  }

  /** tmux key names (Enter, C-c, Up) or literal text with `literal`. */
  keys(...keys: string[]): void {
    this.tmux(["send-keys", "-t", "main", ...keys]);
  }

  type(text: string): void {
    this.tmux(["send-keys", "-t", "main", "-l", text]);
    this.tmux(["send-keys", "-t", "main", "Enter"]);
  }

  screen(): string {
    return this.tmux(["capture-pane", "-p", "-J", "-t", "main", "-S", "-200"]);
  }

  resize(cols: number, rows: number): void {
    this.tmux(["resize-window", "-t", "main", "-x", String(cols), "-y", String(rows)]);
  }

  async waitFor(pattern: RegExp, timeoutMs = 60_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const screen = this.screen();
      if (pattern.test(screen)) return screen;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern} on the screen:\n${screen}`);
      await Bun.sleep(100);
    }
  }

  /** Waits until nothing on the screen matches `pattern` any more. */
  async waitForGone(pattern: RegExp, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const screen = this.screen();
      if (!pattern.test(screen)) return;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern} to leave the screen:\n${screen}`);
      await Bun.sleep(100);
    }
  }

  /** The exit code of `sandboxes`, once it has exited. */
  async exitCode(timeoutMs = 60_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (!existsSync(this.files.rc)) {
      if (Date.now() > deadline) throw new Error(`sandboxes did not exit; screen:\n${this.screen()}`);
      await Bun.sleep(100);
    }
    return Number(readFileSync(this.files.rc, "utf8").trim());
  }

  /** `stty -a` of the pane's terminal right now, read from outside. */
  sttyNow(): string {
    const tty = this.tmux(["display-message", "-p", "-t", "main", "#{pane_tty}"]).trim();
    return Bun.spawnSync(["stty", "-F", tty, "-a"], { stdout: "pipe" }).stdout.toString();
  }

  pid(): number {
    return Number(readFileSync(this.files.pid, "utf8").trim());
  }

  sttyBefore(): string {
    return readFileSync(this.files.before, "utf8");
  }

  sttyAfter(): string {
    return readFileSync(this.files.after, "utf8");
  }

  close(): void {
    Bun.spawnSync(["tmux", "-L", this.socket, "kill-server"], { stdout: "ignore", stderr: "ignore" });
  }
}
