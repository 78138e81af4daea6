/**
 * The compiled binary run as root and as an ordinary user (uid 65534, through setpriv), with
 * bubblewrap and with the util-linux fallback: the four ways the local provider runs.
 */
import { readFileSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { BINARY, type CliResult, freshEnv, nobodyMachine } from "../helpers";

export const isRoot = process.getuid?.() === 0;
export type Mechanism = "bubblewrap" | "unshare";
export type User = "root" | "ordinary";

export const MATRIX: Array<{ user: User; mechanism: Mechanism }> = [
  { user: "root", mechanism: "bubblewrap" },
  { user: "root", mechanism: "unshare" },
  { user: "ordinary", mechanism: "bubblewrap" },
  { user: "ordinary", mechanism: "unshare" },
];

/**
 * sandbox-start's path as the binary writes it out and runs it from the host (start.ts): without
 * bubblewrap, and for a command entered into a kept sandbox.
 */
export const WRITTEN_START = /\/sandboxes\/bin\/sandbox-start-linux-(x64|arm64)-[a-z0-9]+$/;

export interface Machine {
  /** argv prefix that runs the binary as this user (append the CLI's arguments). */
  command: string[];
  env: Record<string, string>;
  cwd: string;
  stateDir: string;
  run(args: string[], options?: { prefix?: string[] }): Promise<CliResult>;
  spawn(args: string[]): ReturnType<typeof Bun.spawn>;
  remove(): void;
}

/** A machine for `user` with `mechanism`; an ordinary user gets its own copy of the binary. */
export function machineFor(user: User, mechanism: Mechanism): Machine {
  const extra: Record<string, string> = mechanism === "unshare" ? { SANDBOXES_LOCAL_ISOLATION: "unshare" } : {};
  let command: string[];
  let env: Record<string, string>;
  let dir: string;
  if (user === "root") {
    const made = freshEnv(extra);
    dir = made.home;
    env = made.env;
    command = [BINARY];
  } else {
    ({ dir, env, command } = nobodyMachine("sandboxes-user-", extra));
  }
  const stateDir = join(env.XDG_STATE_HOME ?? join(env.HOME!, ".local/state"), "sandboxes", "local");
  const spawn = (args: string[], prefix: string[] = []) =>
    Bun.spawn([...prefix, ...command, ...args], { env, cwd: dir, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  return {
    command,
    env,
    cwd: dir,
    stateDir,
    spawn: (args) => spawn(args),
    async run(args, options = {}) {
      const child = spawn(args, options.prefix);
      const [stdoutBytes, stderr, code] = await Promise.all([new Response(child.stdout).bytes(), new Response(child.stderr).text(), child.exited]);
      return { code, stdout: new TextDecoder().decode(stdoutBytes), stderr, stdoutBytes };
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Host pids of every live process whose command line, cgroups or mounts name `marker`. A
 * sandbox's id need not be in its processes' command lines (bwrap reads a one-shot sandbox's
 * mounts from a descriptor): inside, they show it in their mounts, which are bound from the
 * sandbox's directory, and once they joined them, in their cgroups; bwrap itself in its cgroups.
 */
export function processesWith(marker: string): number[] {
  const found: number[] = [];
  const names = (pid: string, file: string) => {
    try {
      return readFileSync(`/proc/${pid}/${file}`, "utf8").replaceAll("\0", " ").includes(marker);
    } catch {
      return false; // gone, or not ours to read
    }
  };
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      if (/\) [ZX] /.test(stat)) continue;
    } catch {
      continue; // gone
    }
    if (names(entry, "cmdline") || names(entry, "cgroup") || names(entry, "mountinfo")) found.push(Number(entry));
  }
  return found;
}

/** Polls `condition` until it holds or `timeoutMs` passes; returns whether it held. */
export async function eventually(condition: () => boolean, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await Bun.sleep(25);
  }
  return true;
}

/** The holder state file of the one sandbox of a machine. */
export function holderState(machine: Machine, id: string): { holder: { pid: number }; target: { pid: number }; proxy?: { pid: number } } {
  return JSON.parse(readFileSync(join(machine.stateDir, id, "holder.json"), "utf8"));
}

/** Whether a process runs (a zombie does not). */
export function running(pid: number): boolean {
  try {
    return !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/** The host directories of a sandbox's cgroups (found from the host, not through the code under test). */
export function cgroupDirs(id: string): string[] {
  const found = Bun.spawnSync(["find", "/sys/fs/cgroup", "-maxdepth", "6", "-type", "d", "-name", `sandboxes-${id}`], { stderr: "ignore" });
  return found.stdout.toString().split("\n").filter(Boolean);
}
