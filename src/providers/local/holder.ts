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
 * A process is identified by its pid and its start time (field 22 of /proc/PID/stat, in clock
 * ticks since boot) and the state by the boot it was written in (the kernel's boot id), so a pid
 * reused after a crash or a reboot never passes for the holder, and is never killed for it.
 *
 * Two commands that find a sandbox stopped at once (two `exec`, or `exec` and `run --reuse`)
 * start it under a per-sandbox lock (withStartLock), so exactly one holder starts and both join it.
 */
import { existsSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { ProviderError } from "../../base/errors";
import type { Store } from "../../base/store";

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
  /** The kernel's boot id when the state was written; absent in states of older versions. */
  boot?: string;
}

/** This boot's id (/proc/sys/kernel/random/boot_id): a new one after every reboot. */
export function bootId(): string | undefined {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  } catch {
    return undefined;
  }
}

/** Whether a state (or lock) was written before the last reboot: its pids mean nothing now. */
function fromAnotherBoot(state: { boot?: string }): boolean {
  return state.boot !== undefined && state.boot !== bootId();
}

/**
 * The fields of /proc/PID/stat after the command name (which may itself hold spaces and
 * parentheses): state, ppid, pgrp, session, …, starttime at 19. Undefined for a process that is
 * gone or a zombie.
 */
export function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[0] === "Z" || fields[0] === "X" ? undefined : fields;
  } catch {
    return undefined;
  }
}

/** The start time of a live process, or undefined when no such process is running. */
export function startTime(pid: number): string | undefined {
  return statFields(pid)?.[19];
}

export function isAlive(process: ProcessId | undefined): boolean {
  return process !== undefined && startTime(process.pid) === process.start;
}

/** Whether a process recorded with its boot (a lock's owner, a one-shot sandbox's) still runs. */
export function stillRuns(process: ProcessId & { boot?: string }): boolean {
  return !fromAnotherBoot(process) && isAlive(process);
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
  if (!state || fromAnotherBoot(state) || !isAlive(state.holder) || !isAlive(state.target)) return undefined;
  if (state.proxy && !isAlive(state.proxy)) return undefined;
  return state;
}

export function writeState(file: string, state: HolderState): void {
  writeFileSync(file, JSON.stringify({ ...state, boot: bootId() }));
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
  if (!state || fromAnotherBoot(state)) return;
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

/** Who holds a sandbox's start lock: a live process of this boot, and which of its callers. */
interface StartLock extends ProcessId {
  boot?: string;
  token: string;
}

const START_LOCKS = "local-start-lock";
const START_LOCK_WAIT_MS = 90_000;

/**
 * Runs `work` (starting or stopping a sandbox's holder) while holding that sandbox's start lock,
 * a row of the state store taken in a write transaction. A lock whose holder process is gone (it
 * was killed, or the machine rebooted) is free, so a killed CLI never blocks a sandbox; a token
 * tells apart two callers in the same process (the MCP server runs several at once).
 */
export async function withStartLock<T>(store: Store, id: string, work: () => Promise<T>): Promise<T> {
  const mine: StartLock = { pid: process.pid, start: startTime(process.pid) ?? "", boot: bootId(), token: crypto.randomUUID() };
  const take = () =>
    store.transaction(() => {
      const owner = store.get<StartLock>(START_LOCKS, id);
      if (owner && stillRuns(owner)) return false;
      store.put(START_LOCKS, id, mine);
      return true;
    });
  if (!(await waitUntil(take, START_LOCK_WAIT_MS))) {
    throw new ProviderError("local", `another command has been starting sandbox ${id} for ${START_LOCK_WAIT_MS / 1000} s`, undefined, undefined, "try again, or destroy the sandbox");
  }
  try {
    return await work();
  } finally {
    store.transaction(() => {
      if (store.get<StartLock>(START_LOCKS, id)?.token === mine.token) store.delete(START_LOCKS, [id]);
    });
  }
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
  const session = statFields(pid)?.[3];
  return session === undefined ? undefined : Number(session);
}

/**
 * The pipes and sockets a process has open as stdout and stderr ("pipe:[123]"), or as `fds`.
 * Not stdin by default: its other end may be a process of the user's, outside the sandbox.
 */
export function stdioPipes(pid: number, fds: number[] = [1, 2]): Set<string> {
  const pipes = new Set<string>();
  for (const fd of fds) {
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
 * belongs to the sandbox, as after `docker exec`, and goes with `destroy`. `known`: the pipes
 * as read when the command started (the wrapper may be gone by now). A one-shot run's wrapper
 * is stopped the same way, which also finds a process of it orphaned as it started. Without
 * `nsenterPid` (a wrapper that has exited, whose pid may be someone else's by now), only the
 * holders of `known` are stopped.
 */
export async function killExecTree(nsenterPid: number | undefined, known?: Set<string>): Promise<void> {
  const sessions = new Set<number>(nsenterPid === undefined ? [] : [nsenterPid]);
  const pipes = known ?? (nsenterPid === undefined ? new Set<string>() : stdioPipes(nsenterPid));
  for (let round = 0; round < 100; round++) {
    if (nsenterPid !== undefined) for (const leader of childrenOf(nsenterPid)) sessions.add(leader);
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

/** Whether a process other than this one holds any of `pipes` open. */
function heldByOthers(pipes: Set<string>): boolean {
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && holdsAny(pid, pipes)) return true;
  }
  return false;
}

/** How long the output of an exec whose command has exited must be quiet before reading stops. */
const QUIET_MS = 50;
/** The most an exec waits after its command exited for a detached process to stop writing. */
const DRAIN_MS = 2000;

/**
 * Waits, once an exec's command has exited, for the end of its output (`pumping`), unless a
 * process it left running in the sandbox (`setsid nohup server &`) still holds the output pipes
 * (`pipes`, the command's stdio): that process lives on, as after `docker exec`, and the exec
 * returns. What was written is read until the pipes have been quiet for QUIET_MS (at most
 * DRAIN_MS), then `stopReading` closes our ends: nothing reads that process's output any more,
 * so a later write of its own fails (EPIPE, or SIGPIPE unless it ignores it). Give a daemon a
 * log file, as with Docker.
 */
export async function outputEnd(pumping: Promise<unknown>, pipes: Set<string>, lastChunkAt: () => number, stopReading: () => void): Promise<void> {
  const ended = pumping.then(() => true);
  const deadline = performance.now() + DRAIN_MS;
  while (!(await Promise.race([ended, Bun.sleep(QUIET_MS).then(() => false)]))) {
    if (pipes.size === 0 || !heldByOthers(pipes)) continue;
    if (performance.now() - lastChunkAt() >= QUIET_MS || performance.now() > deadline) {
      stopReading();
      await pumping;
      return;
    }
  }
}
