import { beforeAll } from "bun:test";
import { chmodSync, chownSync, copyFileSync, existsSync, mkdtempSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const BINARY = resolve(import.meta.dir, "..", "dist", "sandboxes");

/** The uid the tests run the binary as when they need an ordinary user (nobody). */
export const NOBODY = 65534;

/**
 * As root: a world-readable directory with a copy of the binary (root's checkout may not be
 * reachable by nobody) and a home owned by nobody, plus the clean environment and the argv prefix
 * (setpriv) that run that copy as nobody.
 */
export function nobodyMachine(prefix: string, extra: Record<string, string> = {}): { dir: string; home: string; env: Record<string, string>; command: string[] } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  const binary = join(dir, "sandboxes");
  copyFileSync(BINARY, binary);
  chmodSync(binary, 0o755);
  const home = join(dir, "home");
  mkdirSync(home);
  chownSync(home, NOBODY, NOBODY);
  const env = { HOME: home, PATH: "/usr/local/bin:/usr/bin:/bin", NO_COLOR: "1", LANG: "C.UTF-8", DOCKER_HOST: "unix:///nonexistent/docker.sock", ...extra };
  return { dir, home, env, command: ["setpriv", `--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", binary] };
}

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

/** Every HOME freshEnv made: most tests never say when they are done with theirs. */
const madeHomes: string[] = [];

/**
 * Removes every HOME freshEnv made (test/preload.ts, after the whole run: a run of the suite left
 * ~150 of them in TMPDIR).
 */
export function removeMadeHomes(): void {
  for (const home of madeHomes.splice(0)) {
    try {
      rmSync(home, { recursive: true, force: true });
    } catch {
      // Something in it we may not remove: the rest still goes.
    }
  }
}

/** A fresh HOME and XDG dirs, NO_COLOR, and the caller's PATH; nothing else leaks in. */
export function freshEnv(extra: Record<string, string> = {}): CliEnv {
  const home = mkdtempSync(join(tmpdir(), "sandboxes-home-"));
  madeHomes.push(home);
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

/** Reads `stream` until what came holds `marker` (or the stream ends); returns what came. */
export async function readUntil(stream: ReadableStream<Uint8Array>, marker: string): Promise<string> {
  const reader = stream.getReader();
  let seen = "";
  while (!seen.includes(marker)) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return seen;
}

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

/** What a test file needs on this machine beyond Bun: commands on the system PATH, a Docker Engine. */
export interface MachineNeeds {
  commands?: string[];
  /** dockerd answering on DOCKER_HOST's socket (default /var/run/docker.sock), with these images. */
  docker?: { images: string[] };
}

const SETUP = "sudo sh scripts/ci/setup.sh (npm test runs it for you)";

/** The socket of the engine the docker tests use: DOCKER_HOST when it names a unix socket. */
export const dockerSocket = (): string => /^unix:\/\/(.+)$/.exec(process.env.DOCKER_HOST ?? "")?.[1] ?? "/var/run/docker.sock";

/** One line saying what is missing and how to install it, or undefined when nothing is. */
export async function machineGap(needs: MachineNeeds): Promise<string | undefined> {
  // node_modules/.bin is not what a sandbox (or a user's shell) sees: `bun` must be on the system PATH.
  const PATH = (process.env.PATH ?? "").split(":").filter((dir) => !dir.includes("node_modules")).join(":");
  const absent = (needs.commands ?? []).filter((command) => !Bun.which(command, { PATH }));
  if (absent.length > 0) return `${absent.join(", ")} ${absent.length === 1 ? "is" : "are"} not installed: run ${SETUP}`;
  if (!needs.docker) return undefined;
  const socket = dockerSocket();
  const ask = (path: string) => fetch(`http://docker${path}`, { unix: socket, signal: AbortSignal.timeout(5_000) } as RequestInit).catch(() => undefined);
  if ((await (await ask("/_ping"))?.text()) !== "OK") return `dockerd is not running (nothing answers on ${socket}): start it with sudo sh scripts/ci/docker.sh (npm test runs it for you)`;
  const images: string[] = [];
  for (const image of needs.docker.images) if (!(await ask(`/images/${image}/json`))?.ok) images.push(image);
  if (images.length > 0) return `test image${images.length === 1 ? "" : "s"} ${images.join(", ")} missing: build with sudo sh scripts/ci/docker.sh (npm test runs it for you)`;
  return undefined;
}

/**
 * Fails the file, with that one line and no stack trace, when something it needs is missing.
 * Deliberately not a skip: CI must not pass by skipping. Call it before the file's other hooks.
 */
export function requireMachine(needs: MachineNeeds): void {
  beforeAll(() => assertMachine(needs), 30_000);
}

/** Throws the one line of machineGap (a string, thrown after an await, so Bun prints no code frame). */
export async function assertMachine(needs: MachineNeeds): Promise<void> {
  const gap = await machineGap(needs);
  if (gap) throw gap;
}

/** The local provider's sandbox directories left in this machine's state (XDG_STATE_HOME). */
export function localSandboxesLeft(env: Record<string, string>): string[] {
  const root = join(env.XDG_STATE_HOME!, "sandboxes", "local");
  return existsSync(root) ? readdirSync(root) : [];
}

/** Reads a terminal's output as it comes: text() so far, and `done` once the session's output ends. */
export function readTerminal(output: ReadableStream<Uint8Array>): { text(): string; done: Promise<void> } {
  let text = "";
  const decoder = new TextDecoder();
  const done = (async () => {
    for await (const chunk of output) text += decoder.decode(chunk, { stream: true });
  })();
  return { text: () => text, done };
}

/** A provider's getArchive, collected whole: for tests of archives a few kilobytes long. */
export async function archiveOf(provider: { getArchive?(id: string, path: string, onChunk: (chunk: Uint8Array) => unknown): Promise<void> }, id: string, path: string): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  await provider.getArchive!(id, path, (chunk) => void chunks.push(chunk));
  return Buffer.concat(chunks);
}

/**
 * python3 as the binary's parent: it forks (a copy of its own small self, not of the test
 * process), execs the binary, and once it has exited writes wait4's ru_maxrss (KiB) as the last
 * line of stderr.
 */
const PEAK_OF_CHILD = `import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write("\\npeak-kib %d\\n" % usage.ru_maxrss)
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)`;

/**
 * Runs the binary with stdout to /dev/null (stdin: a file's path, else none); its exit code, its
 * stderr and the peak of its resident set. Not
 * Bun's resourceUsage().maxRSS: Bun starts a child with vfork, and the kernel counts the memory the
 * child shared until its exec (the test process's, over a gigabyte late in a full run) as the
 * child's own peak. Nor a poll of VmHWM, which misses what happens between two looks.
 */
export async function peakMemory(args: string[], env: Record<string, string>, stdin?: string): Promise<{ code: number; peakBytes: number; stderr: string }> {
  const child = Bun.spawn(["python3", "-c", PEAK_OF_CHILD, BINARY, ...args], { env, stdin: stdin !== undefined ? Bun.file(stdin) : "ignore", stdout: "ignore", stderr: "pipe" });
  const [stderr, code] = await Promise.all([new Response(child.stderr).text(), child.exited]);
  const peak = /\npeak-kib (\d+)\n$/.exec(stderr);
  if (!peak) throw new Error(`peakMemory: python3 gave no peak (exit ${code}): ${stderr.slice(-300)}`);
  return { code, peakBytes: Number(peak[1]) * 1024, stderr: stderr.slice(0, peak.index) };
}
