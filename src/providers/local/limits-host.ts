// Where this process may make cgroups, found from /proc and /sys with Bun's file API: its own
// module, free of node: imports, so the descriptor can tell `sandboxes providers` which mechanism
// enforces limits without loading node:fs (see bubblewrap.ts and bench/startup.ts).

export type Controller = "memory" | "pids" | "cpu";
export const CONTROLLERS: readonly Controller[] = ["memory", "pids", "cpu"];

/** A cgroup directory under which a sandbox's own cgroup, with this controller, can be made. */
export interface CgroupSite {
  version: 1 | 2;
  parent: string;
}

export type CgroupSites = Partial<Record<Controller, CgroupSite>>;

export interface HostFacts {
  /** /proc/self/cgroup */
  cgroup: string;
  /** /proc/self/mountinfo */
  mountinfo: string;
  uid: number;
  /** The contents of a file, or undefined when it cannot be read. */
  read(path: string): Promise<string | undefined>;
  /** The owner of a file or directory, or undefined when it does not exist. */
  owner(path: string): Promise<number | undefined>;
}

interface CgroupMount {
  root: string;
  mountPoint: string;
  readOnly: boolean;
  fsType: string;
  superOptions: string[];
}

/** `\040` and friends: how mountinfo escapes spaces, tabs, newlines and backslashes. */
export const unescapeMountField = (field: string) =>
  field.includes("\\") ? field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))) : field;

export function parseMountinfo(text: string): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of text.split("\n")) {
    // Most of a host's mounts are not cgroups: skip them before taking the line apart.
    if (!line.includes(" - cgroup")) continue;
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const fields = left.split(" ");
    const [fsType, , superOptions = ""] = right.split(" ");
    if (fsType !== "cgroup" && fsType !== "cgroup2") continue;
    mounts.push({
      root: unescapeMountField(fields[3] ?? "/"),
      mountPoint: unescapeMountField(fields[4] ?? ""),
      readOnly: (fields[5] ?? "").split(",").includes("ro"),
      fsType,
      superOptions: superOptions.split(","),
    });
  }
  return mounts;
}

/** The directory of the cgroup at `path` (as /proc/self/cgroup names it) under `mount`. */
function directoryOf(mount: CgroupMount, path: string): string {
  const root = mount.root === "/" ? "" : mount.root;
  const relative = root && (path === root || path.startsWith(root + "/")) ? path.slice(root.length) : path;
  return (mount.mountPoint + relative).replace(/\/+$/, "") || "/";
}

const parentOf = (dir: string) => dir.slice(0, dir.lastIndexOf("/")) || "/";

/** Root may write anywhere on a read-write mount; anyone else only where the cgroup was delegated to them. */
async function writable(facts: HostFacts, dir: string): Promise<boolean> {
  if (facts.uid === 0) return true;
  return (await facts.owner(dir)) === facts.uid && (await facts.owner(`${dir}/cgroup.procs`)) === facts.uid;
}

/**
 * Per controller, where a sandbox's cgroup can go. cgroup v2 first: next to our own cgroup (its
 * parent must already enable the controller for its children and be ours, as a systemd user
 * scope is), or inside it when it is the root of the hierarchy. Then cgroup v1: inside our own
 * cgroup of that controller's hierarchy, which as root we may always write to.
 */
export async function findCgroupSites(facts: HostFacts): Promise<CgroupSites> {
  const mounts = parseMountinfo(facts.mountinfo);
  const lines = facts.cgroup
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const first = line.indexOf(":");
      const second = line.indexOf(":", first + 1);
      return { controllers: line.slice(first + 1, second).split(","), path: line.slice(second + 1) };
    });
  const sites: CgroupSites = {};

  const unified = mounts.find((m) => m.fsType === "cgroup2" && !m.readOnly);
  const own = lines.find((l) => l.controllers.length === 1 && l.controllers[0] === "");
  if (unified && own) {
    const dir = directoryOf(unified, own.path);
    const parent = dir === unified.mountPoint ? dir : parentOf(dir);
    // The kernel separates the names with single spaces.
    const enabled = ((await facts.read(`${parent}/cgroup.subtree_control`)) ?? "").trim().split(" ");
    if (CONTROLLERS.some((c) => enabled.includes(c)) && (await writable(facts, parent))) {
      for (const controller of CONTROLLERS) if (enabled.includes(controller)) sites[controller] = { version: 2, parent };
    }
  }

  for (const controller of CONTROLLERS) {
    if (sites[controller]) continue;
    const mount = mounts.find((m) => m.fsType === "cgroup" && !m.readOnly && m.superOptions.includes(controller));
    const line = lines.find((l) => l.controllers.includes(controller));
    if (!mount || !line) continue;
    const dir = directoryOf(mount, line.path);
    if (await writable(facts, dir)) sites[controller] = { version: 1, parent: dir };
  }
  return sites;
}

/** How the facts are read: a file's text and a path's owner, undefined when they cannot be had. */
export type FactReader = Pick<HostFacts, "read" | "owner">;

/**
 * Bun's file API: no node: import, for `sandboxes providers`. Each read is a round trip to Bun's
 * I/O threads, which a caller that has node:fs loaded anyway can spare (limits.ts).
 */
const bunReader: FactReader = {
  read: async (path) => {
    try {
      return await Bun.file(path).text();
    } catch {
      return undefined;
    }
  },
  owner: async (path) => {
    try {
      return (await Bun.file(path).stat()).uid;
    } catch {
      return undefined;
    }
  },
};

/**
 * The facts of this host. With `cgroupRoot` (tests), a cgroup v2 hierarchy mounted there with
 * this process at its top: a temporary directory laid out like a delegated v2 subtree
 * (cgroup.controllers, cgroup.subtree_control, …) stands in for the kernel's.
 */
export async function hostFacts(cgroupRoot?: string, { read, owner }: FactReader = bunReader): Promise<HostFacts> {
  const escaped = cgroupRoot?.replace(/[\\ \t\n]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`);
  // Both at once: each read is a round trip to Bun's I/O threads.
  const [cgroup, mountinfo] = cgroupRoot ? [undefined, undefined] : await Promise.all([read("/proc/self/cgroup"), read("/proc/self/mountinfo")]);
  return {
    cgroup: cgroupRoot ? "0::/\n" : (cgroup ?? ""),
    mountinfo: cgroupRoot ? `1 0 0:1 / ${escaped} rw - cgroup2 cgroup2 rw\n` : (mountinfo ?? ""),
    uid: process.getuid?.() ?? -1,
    read,
    owner,
  };
}

/**
 * The cgroups this process can use for sandboxes. SANDBOXES_LOCAL_CGROUPS=off pretends there are
 * none (for tests of the rlimit fallback and of the refusals); SANDBOXES_TEST_CGROUP_ROOT=DIR
 * pretends DIR is a cgroup v2 hierarchy (tests of the v2 path on a host without one).
 */
export async function cgroupSites(env: Record<string, string | undefined>, reader?: FactReader): Promise<CgroupSites> {
  if (env.SANDBOXES_LOCAL_CGROUPS === "off" || process.platform !== "linux") return {};
  const testRoot = env.SANDBOXES_TEST_CGROUP_ROOT || undefined;
  if (testRoot) return findCgroupSites(await hostFacts(testRoot, reader));
  // Read once per process: detection and every new sandbox's plan ask, and the answer stays.
  return (ownSites ??= hostFacts(undefined, reader).then(findCgroupSites));
}

let ownSites: Promise<CgroupSites> | undefined;

/**
 * How the kernel counts a sandbox's processes apart from everything else, which makes its process
 * limit an exact rlimit (limits.ts): as root, by the uid each sandbox runs as; as an ordinary
 * user, by the user namespace each sandbox has (RLIMIT_NPROC counts per uid per user namespace
 * since Linux 5.14); undefined on an older kernel, where the count is the user's whole.
 */
export type OwnCount = "uid" | "userns";

export function ownCount(root: boolean, kernelRelease: string): OwnCount | undefined {
  if (root) return "uid";
  const [major, minor] = kernelRelease.split(".").map((part) => parseInt(part, 10));
  return major! > 5 || (major === 5 && minor! >= 14) ? "userns" : undefined;
}

/**
 * One line for `providers`: which mechanism enforces --memory, --pids and --cpus. With `count`,
 * the process limit is an rlimit, whatever the cgroups (limits.ts).
 */
export function describeLimits(sites: CgroupSites, count?: OwnCount): string {
  const byVersion = (version: 1 | 2) => CONTROLLERS.filter((c) => sites[c]?.version === version && !(count && c === "pids")).map((c) => (c === "cpu" ? "cpus" : c));
  const parts: string[] = [];
  for (const version of [2, 1] as const) {
    const names = byVersion(version);
    if (names.length) parts.push(`cgroup v${version} (${names.join(", ")})`);
  }
  if (count === "uid") parts.push("RLIMIT_NPROC (pids, on each sandbox's own uid)");
  else if (count === "userns") parts.push("RLIMIT_NPROC (pids, in each sandbox's own user namespace)");
  else if (!sites.pids) parts.push("RLIMIT_NPROC (pids)");
  if (!sites.memory) parts.push("RLIMIT_AS (memory, per process)");
  const line = `limits: ${parts.join(", ")}`;
  return sites.cpu ? line : `${line}; --cpus unavailable (no writable cgroup with the cpu controller)`;
}
