import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import { ProviderError, SandboxesError } from "../../base/errors";
import { shellQuote } from "../../base/quote";
import { type CgroupSites, cgroupSites, type FactReader, ownCount } from "./limits-host";

/**
 * --memory, --cpus and --pids of a local sandbox. Each is enforced by the sandbox's own cgroup
 * where this process can make one (limits-host.ts), else by an rlimit: RLIMIT_NPROC for --pids
 * (exact: as root every sandbox has its own uid, as an ordinary user every command its own user
 * namespace, and the kernel counts processes per uid per user namespace) and RLIMIT_AS for
 * --memory (per process: an allocation past it fails instead of being killed). --cpus has no
 * rlimit: without a cgroup it is refused, as is anything else that would be silently ignored.
 *
 * The plan is plain data kept with the sandbox, so every command of the sandbox, and its removal,
 * use the cgroups made when it was created.
 *
 * One exception to cgroup first: a sandbox whose processes the kernel counts apart from every
 * other process for as long as it lives (OwnCount: as root, by the uid it runs as; as an ordinary
 * user, by its own user namespace) holds its process limit with RLIMIT_NPROC, exact as pids.max
 * is, and joins no cgroup for it. Moving a process into a cgroup waits for an
 * RCU grace period on most kernels (cgroup_threadgroup_rwsem; 6-17 ms measured on a 2-core VM,
 * more than the rest of a one-shot `true`), which every run and every exec would pay. The limit
 * is set on each process that enters the sandbox: the first one (setRlimits) or each command
 * (rlimitArgv), whose children inherit it.
 */

/**
 * Processes (threads count too) a sandbox may have when --pids is not given; Podman's default.
 * An ordinary user whose own hard limit is lower gets that instead: an rlimit cannot be raised.
 */
export const DEFAULT_PIDS = 2048;

export interface LimitRequest {
  cpus?: number;
  memoryMb?: number;
  pids?: number;
}

export interface LimitPlan {
  /** The sandbox's cgroups, one per hierarchy, and the settings written into each. */
  cgroups: Array<{ dir: string; version: 1 | 2; settings: Array<{ file: string; value: string; optional?: boolean }> }>;
  /** Set on the program inside the sandbox by prlimit(1), where no cgroup holds the limit. */
  rlimits: { nproc?: number; asBytes?: number };
  /** The file that counts the sandbox's out-of-memory kills (line `oom_kill N`). */
  oomEvents?: string;
}

const CPU_PERIOD_US = 100_000;
/** The least a CFS quota holds a sandbox to: 1 ms of each 100 ms period (the kernel's minimum). */
const MIN_CPUS = 0.01;

/** A sandbox's cgroup is this and its id (sandboxes-local-…), under the site's parent. */
const CGROUP_PREFIX = "sandboxes-";

/**
 * How `request` is enforced with these cgroup sites; throws when a limit cannot be.
 * `countedApart`: the kernel counts the sandbox's processes apart for its whole life (OwnCount;
 * the process limit is then an rlimit: see above). `ceilings`: the caller's own hard rlimits,
 * which no process it starts can go past (an ordinary user's; root may raise them). `cpuCount`:
 * the CPUs this process may run on, the most --cpus can give.
 */
export function planFor(id: string, request: LimitRequest, sites: CgroupSites, { countedApart = false, ceilings = {}, cpuCount = navigator.hardwareConcurrency }: { countedApart?: boolean; ceilings?: RlimitCeilings; cpuCount?: number } = {}): LimitPlan {
  const plan: LimitPlan = { cgroups: [], rlimits: {} };
  const cgroupFor = (site: { version: 1 | 2; parent: string }) => {
    const dir = `${site.parent === "/" ? "" : site.parent}/${CGROUP_PREFIX}${id}`;
    let cgroup = plan.cgroups.find((c) => c.dir === dir);
    if (!cgroup) plan.cgroups.push((cgroup = { dir, version: site.version, settings: [] }));
    return cgroup;
  };

  const pids = request.pids ?? DEFAULT_PIDS;
  if (sites.pids && !countedApart) cgroupFor(sites.pids).settings.push({ file: "pids.max", value: String(pids) });
  else plan.rlimits.nproc = withinCeiling(pids, ceilings.nproc, request.pids !== undefined, "--pids", String(request.pids), "processes", "ulimit -Hu");

  if (request.memoryMb !== undefined) {
    const bytes = String(request.memoryMb * 1024 * 1024);
    if (sites.memory) {
      const cgroup = cgroupFor(sites.memory);
      // Swap too, or a program past the limit would page out instead of being stopped.
      if (sites.memory.version === 2) {
        cgroup.settings.push({ file: "memory.max", value: bytes }, { file: "memory.swap.max", value: "0", optional: true });
        plan.oomEvents = `${cgroup.dir}/memory.events`;
      } else {
        cgroup.settings.push({ file: "memory.limit_in_bytes", value: bytes }, { file: "memory.memsw.limit_in_bytes", value: bytes, optional: true });
        plan.oomEvents = `${cgroup.dir}/memory.oom_control`;
      }
    } else {
      plan.rlimits.asBytes = withinCeiling(Number(bytes), ceilings.asBytes, true, "--memory", `${request.memoryMb}m`, "bytes of address space", "ulimit -Hv, in KiB");
    }
  }

  if (request.cpus !== undefined) {
    // Outside this range a quota would not hold the sandbox to what was asked: under it the
    // kernel refuses the quota (it used to be raised to the minimum), over it the sandbox gets
    // every CPU there is. Docker's engine refuses both the same way.
    const range = `ask for ${MIN_CPUS} to ${cpuCount}`;
    if (request.cpus < MIN_CPUS) throw new SandboxesError("bad_cpus", `--cpus ${request.cpus} is less than the ${MIN_CPUS} CPU a sandbox can be held to`, "user", range);
    if (request.cpus > cpuCount) throw new SandboxesError("bad_cpus", `--cpus ${request.cpus} is more than the ${cpuCount} CPU${cpuCount === 1 ? "" : "s"} this machine has`, "user", range);
    if (!sites.cpu) {
      throw new SandboxesError(
        "limit_unenforceable",
        "--cpus cannot be enforced here: the local provider needs a writable cgroup with the cpu controller (cgroup v1 as root, or a delegated cgroup v2 subtree)",
        "user",
        "run without --cpus, as root, or use -p docker",
      );
    }
    const quota = String(Math.round(request.cpus * CPU_PERIOD_US));
    const cgroup = cgroupFor(sites.cpu);
    if (sites.cpu.version === 2) cgroup.settings.push({ file: "cpu.max", value: `${quota} ${CPU_PERIOD_US}` });
    else cgroup.settings.push({ file: "cpu.cfs_period_us", value: String(CPU_PERIOD_US) }, { file: "cpu.cfs_quota_us", value: quota });
  }
  return plan;
}

/** The caller's hard rlimits that a sandbox's own would have to stay under; undefined for none. */
export type RlimitCeilings = { nproc?: number; asBytes?: number };

/**
 * `value`, or the ceiling when that is lower: for a default, the ceiling; for what the user asked
 * (`asked`), a refusal naming the flag and the ceiling. setrlimit cannot raise a hard limit, so
 * the sandbox would otherwise fail to start at all.
 */
function withinCeiling(value: number, ceiling: number | undefined, asked: boolean, flag: string, given: string, unit: string, shell: string): number {
  if (ceiling === undefined || value <= ceiling) return value;
  if (!asked) return ceiling;
  throw new SandboxesError(
    "limit_unenforceable",
    `${flag} ${given} is above this user's own hard limit of ${ceiling} ${unit} (${shell}), which no process it starts can go past`,
    "user",
    `ask for less, or raise the hard limit (as root, or in /etc/security/limits.conf)`,
  );
}

/**
 * The plan for a new sandbox on this host: counted apart where the kernel does (ownCount, from
 * this kernel's release, read once), under this user's own hard limits (root may raise its own:
 * CAP_SYS_RESOURCE).
 */
export async function planLimits(id: string, request: LimitRequest, env: Record<string, string | undefined>): Promise<LimitPlan> {
  const root = process.getuid?.() === 0;
  const countedApart = ownCount(root, (kernelRelease ??= syncRead("/proc/sys/kernel/osrelease") ?? "")) !== undefined;
  // Nothing to put in a cgroup: no need to find where they go (/proc/self/mountinfo, ~0.7 ms).
  const needsCgroups = !countedApart || request.memoryMb !== undefined || request.cpus !== undefined;
  const ceilings = root ? {} : hardLimits(syncRead("/proc/self/limits"));
  return planFor(id, request, needsCgroups ? await cgroupSites(env, syncReader) : {}, { countedApart, ceilings });
}

let kernelRelease: string | undefined;

/** The hard process and address-space limits in /proc/PID/limits text; "unlimited" is none. */
export function hardLimits(text: string | undefined): RlimitCeilings {
  const hard = (name: string) => {
    const value = new RegExp(`^${name}\\s+\\S+\\s+(\\S+)`, "m").exec(text ?? "")?.[1];
    return value === undefined || value === "unlimited" ? undefined : Number(value);
  };
  return { nproc: hard("Max processes"), asBytes: hard("Max address space") };
}

function syncRead(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** node:fs, loaded here anyway: a few small files need no round trips to Bun's I/O threads. */
const syncReader: FactReader = {
  read: async (path) => syncRead(path),
  owner: async (path) => {
    try {
      return statSync(path).uid;
    } catch {
      return undefined;
    }
  },
};

/**
 * Makes the plan's cgroups that do not exist (all of them for a new sandbox; after a reboot, those
 * of a kept one); on failure removes them all and throws. `makeDir` is the kernel's mkdir, which
 * on a cgroup file system also makes the new cgroup's files (a test passes one that does so in a
 * plain directory).
 */
export async function applyLimits(plan: LimitPlan | undefined, makeDir: (dir: string) => void = mkdirSync): Promise<void> {
  if (!plan || plan.cgroups.every((cgroup) => existsSync(cgroup.dir))) return;
  try {
    for (const cgroup of plan.cgroups) {
      if (existsSync(cgroup.dir)) continue;
      makeDir(cgroup.dir);
      for (const { file, value, optional } of cgroup.settings) {
        const path = `${cgroup.dir}/${file}`;
        if (optional && !existsSync(path)) continue;
        writeFileSync(path, value);
      }
    }
  } catch (error) {
    await removeLimits(plan).catch(() => {});
    throw new ProviderError("local", `cannot set up the sandbox's limits: ${(error as Error).message}`, undefined, undefined, "run without --memory/--cpus/--pids, or see `sandboxes providers` for the mechanism in use");
  }
}

/** The files a process writes its pid to to join the sandbox's cgroups. */
export function cgroupProcFiles(plan: LimitPlan | undefined): string[] {
  return (plan?.cgroups ?? []).map((c) => `${c.dir}/cgroup.procs`);
}

/**
 * argv that first moves itself into the sandbox's cgroups and then becomes `argv`, so that
 * nothing the sandbox starts ever runs outside its limits.
 */
export function enterArgv(plan: LimitPlan | undefined, argv: string[]): string[] {
  const files = cgroupProcFiles(plan);
  if (!files.length) return argv;
  const moves = files.map((file) => `echo $$ > ${shellQuote(file)}`);
  return ["/bin/sh", "-c", `${moves.join(" && ")} && exec "$@"`, "sandboxes-limits", ...argv];
}

/**
 * Moves running processes into the sandbox's cgroups, where what they start from then on begins
 * (bwrap's, while it waits: see BwrapHandshake). A process that is gone already is skipped.
 */
export function joinCgroups(plan: LimitPlan | undefined, pids: number[]): void {
  for (const cgroup of plan?.cgroups ?? []) {
    for (const pid of pids) {
      try {
        // One pid per write: the kernel takes one per write(2).
        writeFileSync(`${cgroup.dir}/cgroup.procs`, String(pid));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ESRCH") continue;
        throw new ProviderError("local", `cannot move the sandbox into its cgroup ${cgroup.dir}: ${(error as Error).message}`);
      }
    }
  }
}

/** argv that sets the plan's rlimits (soft and hard) and then becomes `argv`; inside the sandbox. */
export function rlimitArgv(rlimits: LimitPlan["rlimits"] | undefined, argv: string[]): string[] {
  const { nproc, asBytes } = rlimits ?? {};
  const options = [...(nproc !== undefined ? [`--nproc=${nproc}:${nproc}`] : []), ...(asBytes !== undefined ? [`--as=${asBytes}:${asBytes}`] : [])];
  return options.length ? ["prlimit", ...options, "--", ...argv] : argv;
}

// The same on every Linux architecture we build for (asm-generic/resource.h; x86 follows it).
const RLIMIT_NPROC = 6;
const RLIMIT_AS = 9;

/**
 * Sets the plan's rlimits (soft and hard) on process `pid`, which every process it starts
 * inherits: the sandbox's first process, before it starts the program (the handshake of
 * provider.ts). The same limits as rlimitArgv's, without its exec.
 */
export async function setRlimits(plan: LimitPlan | undefined, pid: number): Promise<void> {
  const { nproc, asBytes } = plan?.rlimits ?? {};
  if (nproc === undefined && asBytes === undefined) return;
  const libc = await import("./libc")
    .then((m) => m.loadLibc())
    .catch((error) => {
      throw new ProviderError("local", `cannot set the sandbox's limits: ${(error as Error).message}`);
    });
  const limits: Array<[string, number, number | undefined]> = [["process", RLIMIT_NPROC, nproc], ["memory", RLIMIT_AS, asBytes]];
  for (const [what, resource, value] of limits) {
    if (value === undefined) continue;
    const limit = new BigUint64Array([BigInt(value), BigInt(value)]);
    if (libc.prlimit(pid, resource, new Uint8Array(limit.buffer)) !== 0) {
      throw new ProviderError("local", `cannot set the sandbox's ${what} limit: prlimit failed (errno ${libc.errno()})`);
    }
  }
}

/** How many times the kernel has killed a process of the sandbox for exceeding --memory. */
export function memoryKills(plan: LimitPlan | undefined): number {
  if (!plan?.oomEvents) return 0;
  try {
    return Number(/^oom_kill (\d+)$/m.exec(readFileSync(plan.oomEvents, "utf8"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** How old an empty cgroup of ours must be before removeStaleCgroups takes it for left behind. */
const STALE_CGROUP_MS = 60_000;

/**
 * Removes the empty cgroups of sandboxes that `known` does not know (their directory is gone),
 * made more than a minute ago: a sandbox made a moment ago may not have joined its own yet.
 * rmdir removes only an empty cgroup, so a sandbox still running (under another state directory)
 * keeps its own; a stopped one's is made again when it next starts, as after a reboot.
 */
export async function removeStaleCgroups(env: Record<string, string | undefined>, known: (id: string) => boolean): Promise<void> {
  const sites = await cgroupSites(env, syncReader);
  const parents = new Set(Object.values(sites).map((site) => site.parent));
  for (const parent of parents) {
    let entries: string[];
    try {
      entries = readdirSync(parent);
    } catch {
      continue;
    }
    for (const entry of entries) {
      if (!entry.startsWith(CGROUP_PREFIX) || known(entry.slice(CGROUP_PREFIX.length))) continue;
      const dir = `${parent === "/" ? "" : parent}/${entry}`;
      try {
        if (Date.now() - statSync(dir).mtimeMs < STALE_CGROUP_MS) continue;
        rmdirSync(dir);
      } catch {
        /* not empty, or gone meanwhile */
      }
    }
  }
}

/** Kills whatever is left in the sandbox's cgroups and removes them. */
export async function removeLimits(plan: LimitPlan | undefined): Promise<void> {
  for (const cgroup of plan?.cgroups ?? []) {
    const deadline = Date.now() + 5000;
    for (;;) {
      try {
        rmdirSync(cgroup.dir);
        break;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === "ENOENT") break;
        if (code !== "EBUSY" || Date.now() > deadline) throw new ProviderError("local", `cannot remove the sandbox's cgroup ${cgroup.dir}: ${(error as Error).message}`);
      }
      killAll(cgroup.dir, cgroup.version);
      // Usually a process of the sandbox still on its way out: gone within a millisecond.
      await Bun.sleep(1);
    }
  }
}

function killAll(dir: string, version: 1 | 2): void {
  if (version === 2 && existsSync(`${dir}/cgroup.kill`)) {
    writeFileSync(`${dir}/cgroup.kill`, "1");
    return;
  }
  let pids: string[];
  try {
    pids = readFileSync(`${dir}/cgroup.procs`, "utf8").split("\n").filter(Boolean);
  } catch {
    return;
  }
  for (const pid of pids) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {
      /* already gone */
    }
  }
}
