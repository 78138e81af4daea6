/**
 * The processes that keep a kept local sandbox alive, and how commands join it.
 *
 * One holder per sandbox owns its pid, network, ipc, uts and mount namespaces (and its user
 * namespace as an ordinary user): the wrapper (bwrap or unshare) started in a session of its own,
 * so it outlives the CLI, with a shell inside that reaps orphans. With the default network
 * policy an egress proxy process runs beside it on the host. No daemon: `exec`, `shell` and `cp`
 * enter the holder's namespaces with nsenter, and `destroy` kills the holder, which takes every
 * process of the sandbox with it (the death of a pid namespace's first process kills the rest).
 *
 * A process is identified by its pid and its start time (field 22 of /proc/PID/stat), so a pid
 * reused after a reboot or a crash never passes for the holder.
 */
import { existsSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { ProviderError } from "../../base/errors";

export interface ProcessId {
  pid: number;
  start: string;
}

export interface HolderState {
  /** The wrapper process on the host (bwrap or unshare): killing it ends the sandbox. */
  holder: ProcessId;
  /** The sandbox's first process (its pid 1), whose namespaces nsenter enters. */
  target: ProcessId;
  /** The egress proxy process (default network policy). */
  proxy?: ProcessId;
}

/** The start time of a live process, or undefined when no such process is running. */
export function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name, which may itself hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] === "Z" || fields[0] === "X") return undefined;
    return fields[19];
  } catch {
    return undefined;
  }
}

export function isAlive(process: ProcessId | undefined): boolean {
  return process !== undefined && startTime(process.pid) === process.start;
}

export function readState(file: string): HolderState | undefined {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as HolderState;
  } catch {
    return undefined;
  }
}

/** The state when its holder still runs (and, with a proxy, the proxy too). */
export function liveState(file: string): HolderState | undefined {
  const state = readState(file);
  if (!state || !isAlive(state.holder) || !isAlive(state.target)) return undefined;
  if (state.proxy && !isAlive(state.proxy)) return undefined;
  return state;
}

export function writeState(file: string, state: HolderState): void {
  writeFileSync(file, JSON.stringify(state));
}

/** Direct children of a process (Linux keeps them per thread; the main thread suffices here). */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * Stops what is left of a sandbox's processes and resolves once they are gone: the sandbox's
 * pid 1 (the kernel then kills every other process in its pid namespace), its wrapper, its proxy.
 */
export async function stopState(state: Partial<HolderState> | undefined): Promise<void> {
  if (!state) return;
  const owned = [state.target, state.holder, state.proxy].filter((p): p is ProcessId => isAlive(p));
  for (const process of owned) kill(process.pid, process === state.proxy ? "SIGTERM" : "SIGKILL");
  await waitUntil(() => owned.every((p) => !isAlive(p)), 5000);
  for (const process of owned) if (isAlive(process)) kill(process.pid, "SIGKILL");
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    /* gone already */
  }
}

export async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let delay = 1; !condition(); delay = Math.min(delay * 2, 50)) {
    if (Date.now() > deadline) return false;
    await Bun.sleep(delay);
  }
  return true;
}

/**
 * Starts `argv` in a session of its own (so Ctrl-C in the CLI's terminal and the CLI's exit leave
 * it running) and waits for `readyLine` on its stdout. Its stderr goes to `logFile`, whose last
 * line explains a failure.
 */
export async function startDetached(argv: string[], env: Record<string, string>, readyLine: string, logFile: string, what: string): Promise<ProcessId> {
  rmSync(logFile, { force: true });
  const child = Bun.spawn(["setsid", ...argv], { env, stdin: "ignore", stdout: "pipe", stderr: Bun.file(logFile) });
  const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let seen = "";
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  try {
    while (!seen.split("\n").some((line) => line.startsWith(readyLine))) {
      const { value, done } = await reader.read();
      if (done) {
        const log = existsSync(logFile) ? readFileSync(logFile, "utf8").trim().split("\n").pop() : "";
        throw new ProviderError("local", `cannot start the ${what}${log ? `: ${log}` : ""}`, undefined, undefined, "see `sandboxes providers` for the isolation mechanism in use");
      }
      seen += decoder.decode(value, { stream: true });
    }
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
  child.unref();
  const start = startTime(child.pid);
  if (start === undefined) throw new ProviderError("local", `the ${what} exited as it started`);
  return { pid: child.pid, start };
}

/** Every process below `pid` (children, their children, …), read from /proc. */
function descendants(pid: number): number[] {
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of childrenOf(queue.shift()!)) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

/** The session id of a live process (field 6 of /proc/PID/stat); undefined for a zombie. */
function sessionOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] === "Z" || fields[0] === "X") return undefined;
    return Number(fields[3]);
  } catch {
    return undefined;
  }
}

/** The pipes and sockets a process has open as stdin, stdout and stderr ("pipe:[123]"). */
function stdioPipes(pid: number): Set<string> {
  const pipes = new Set<string>();
  for (const fd of [0, 1, 2]) {
    try {
      const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (link.startsWith("pipe:") || link.startsWith("socket:")) pipes.add(link);
    } catch {
      /* closed, or the process is gone */
    }
  }
  return pipes;
}

/** Whether a process holds any of `pipes` open, on any descriptor. */
function holdsAny(pid: number, pipes: Set<string>): boolean {
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        if (pipes.has(readlinkSync(`/proc/${pid}/fd/${fd}`))) return true;
      } catch {
        /* closed meanwhile */
      }
    }
  } catch {
    /* gone, or not ours to look at */
  }
  return false;
}

/**
 * Kills the process tree of one `exec` inside a kept sandbox, not the sandbox. The command runs
 * as the leader of a session of its own (setsid), so what it started is in that session or below
 * it; a process that left the session and was orphaned (`(setsid cmd &)`) is found by the pipes
 * it inherited from this exec (our stdout and stderr), which it would otherwise keep open and
 * hang us on. Each round kills all of those, then looks again, until nothing is left: a process
 * forking while being killed cannot outrun this. A daemon that detached *and* closed its stdio
 * belongs to the sandbox, as after `docker exec`, and goes with `destroy`.
 */
export async function killExecTree(nsenterPid: number): Promise<void> {
  const sessions = new Set<number>([nsenterPid]);
  const pipes = stdioPipes(nsenterPid);
  for (let round = 0; round < 100; round++) {
    for (const leader of childrenOf(nsenterPid)) sessions.add(leader);
    const victims = new Set<number>();
    for (const entry of readdirSync("/proc")) {
      const pid = Number(entry);
      if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) continue;
      const session = sessionOf(pid);
      if (session === undefined) continue;
      if (sessions.has(session) || (pipes.size > 0 && holdsAny(pid, pipes))) victims.add(pid);
    }
    for (const pid of [...victims]) for (const below of descendants(pid)) victims.add(below);
    if (victims.size === 0) return;
    for (const pid of victims) kill(pid, "SIGKILL");
    await Bun.sleep(round < 10 ? 1 : 10);
  }
}
