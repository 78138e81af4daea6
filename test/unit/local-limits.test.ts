/** The local provider's limits: where cgroups can be made, and how each limit is planned. */
import { describe, expect, test } from "bun:test";
import { parseCount } from "../../src/cli/args";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_PIDS, enterArgv, hardLimits, memoryKills, planFor, rlimitArgv, setRlimits } from "../../src/providers/local/limits";
import { type CgroupSites, describeLimits, findCgroupSites, type HostFacts, ownCount, parseMountinfo } from "../../src/providers/local/limits-host";

/** This machine's layout: cgroup v1 controllers, and a cgroup v2 hierarchy with none of them. */
const HYBRID_MOUNTS = [
  "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
  "31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu",
  "32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct",
  "34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
  "38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids",
  "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
].join("\n");
const HYBRID_CGROUP = "8:pids:/\n4:memory:/jobs/42\n2:cpuacct:/\n1:cpu:/\n0::/\n";

/** A systemd host with cgroup v2 only; the caller in a scope of its user manager. */
const UNIFIED_MOUNTS = "29 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot";
const USER_SCOPE = "/user.slice/user-1000.slice/user@1000.service/app.slice/app-term.scope";
const APP_SLICE = "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice";

function facts(options: { mountinfo: string; cgroup: string; uid: number; files?: Record<string, string>; owners?: Record<string, number> }): HostFacts {
  return {
    mountinfo: options.mountinfo,
    cgroup: options.cgroup,
    uid: options.uid,
    read: async (path) => options.files?.[path],
    owner: async (path) => options.owners?.[path] ?? 0,
  };
}

describe("where a sandbox's cgroup can go", () => {
  test("mountinfo: cgroup mounts only, with escaped paths and the read-only flag", () => {
    const mounts = parseMountinfo(`${HYBRID_MOUNTS}\n50 30 0:40 / /mnt/with\\040space ro,relatime - cgroup cgroup ro,pids`);
    expect(mounts.map((m) => m.mountPoint)).toEqual([
      "/sys/fs/cgroup/cpu",
      "/sys/fs/cgroup/cpuacct",
      "/sys/fs/cgroup/memory",
      "/sys/fs/cgroup/pids",
      "/sys/fs/cgroup/unified",
      "/mnt/with space",
    ]);
    expect(mounts.at(-1)).toMatchObject({ readOnly: true, fsType: "cgroup", superOptions: ["ro", "pids"] });
  });

  test("root on a hybrid host: every controller in cgroup v1, inside its own cgroup of each hierarchy", async () => {
    const sites = await findCgroupSites(facts({ mountinfo: HYBRID_MOUNTS, cgroup: HYBRID_CGROUP, uid: 0 }));
    expect(sites).toEqual({
      memory: { version: 1, parent: "/sys/fs/cgroup/memory/jobs/42" },
      pids: { version: 1, parent: "/sys/fs/cgroup/pids" },
      cpu: { version: 1, parent: "/sys/fs/cgroup/cpu" },
    });
  });

  test("an ordinary user on a hybrid host: none, unless root delegated a cgroup to them", async () => {
    expect(await findCgroupSites(facts({ mountinfo: HYBRID_MOUNTS, cgroup: HYBRID_CGROUP, uid: 1000 }))).toEqual({});
    const delegated = "/sys/fs/cgroup/memory/jobs/42";
    const sites = await findCgroupSites(
      facts({ mountinfo: HYBRID_MOUNTS, cgroup: HYBRID_CGROUP, uid: 1000, owners: { [delegated]: 1000, [`${delegated}/cgroup.procs`]: 1000 } }),
    );
    expect(sites).toEqual({ memory: { version: 1, parent: delegated } });
  });

  test("a read-only cgroup mount (a container's) is no site, even for root", async () => {
    const readOnly = HYBRID_MOUNTS.replaceAll(" rw,relatime - cgroup ", " ro,relatime - cgroup ");
    expect(await findCgroupSites(facts({ mountinfo: readOnly, cgroup: HYBRID_CGROUP, uid: 0 }))).toEqual({});
  });

  test("cgroup v2: beside the caller's own cgroup, when its parent delegates the controllers to the caller", async () => {
    const delegated = facts({
      mountinfo: UNIFIED_MOUNTS,
      cgroup: `0::${USER_SCOPE}\n`,
      uid: 1000,
      files: { [`${APP_SLICE}/cgroup.subtree_control`]: "cpu memory pids\n" },
      owners: { [APP_SLICE]: 1000, [`${APP_SLICE}/cgroup.procs`]: 1000 },
    });
    expect(await findCgroupSites(delegated)).toEqual({
      memory: { version: 2, parent: APP_SLICE },
      pids: { version: 2, parent: APP_SLICE },
      cpu: { version: 2, parent: APP_SLICE },
    });
    // A login session's scope belongs to root: nothing for the user there.
    const session = facts({
      mountinfo: UNIFIED_MOUNTS,
      cgroup: "0::/user.slice/user-1000.slice/session-3.scope\n",
      uid: 1000,
      files: { "/sys/fs/cgroup/user.slice/user-1000.slice/cgroup.subtree_control": "cpu memory pids\n" },
    });
    expect(await findCgroupSites(session)).toEqual({});
  });

  test("cgroup v2: a controller the parent does not enable falls back to cgroup v1 when root has it there", async () => {
    const mixed = facts({
      mountinfo: `${UNIFIED_MOUNTS.replace("/sys/fs/cgroup ", "/sys/fs/cgroup/unified ")}\n38 30 0:35 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids`,
      cgroup: "8:pids:/\n0::/\n",
      uid: 0,
      files: { "/sys/fs/cgroup/unified/cgroup.subtree_control": "memory\n" },
    });
    expect(await findCgroupSites(mixed)).toEqual({ memory: { version: 2, parent: "/sys/fs/cgroup/unified" }, pids: { version: 1, parent: "/sys/fs/cgroup/pids" } });
  });
});

const V1: CgroupSites = { memory: { version: 1, parent: "/cg/memory/jobs" }, pids: { version: 1, parent: "/cg/pids" }, cpu: { version: 1, parent: "/cg/cpu" } };
const V2: CgroupSites = { memory: { version: 2, parent: "/cg/app" }, pids: { version: 2, parent: "/cg/app" }, cpu: { version: 2, parent: "/cg/app" } };

describe("planning a sandbox's limits", () => {
  test("cgroup v1: one cgroup per hierarchy; memory and swap, pids, the CFS quota; OOM kills counted in memory.oom_control", () => {
    const plan = planFor("local-abc", { memoryMb: 64, cpus: 0.5, pids: 20 }, V1);
    expect(plan).toEqual({
      cgroups: [
        { dir: "/cg/pids/sandboxes-local-abc", version: 1, settings: [{ file: "pids.max", value: "20" }] },
        {
          dir: "/cg/memory/jobs/sandboxes-local-abc",
          version: 1,
          settings: [
            { file: "memory.limit_in_bytes", value: String(64 * 1024 * 1024) },
            { file: "memory.memsw.limit_in_bytes", value: String(64 * 1024 * 1024), optional: true },
          ],
        },
        {
          dir: "/cg/cpu/sandboxes-local-abc",
          version: 1,
          settings: [
            { file: "cpu.cfs_period_us", value: "100000" },
            { file: "cpu.cfs_quota_us", value: "50000" },
          ],
        },
      ],
      rlimits: {},
      oomEvents: "/cg/memory/jobs/sandboxes-local-abc/memory.oom_control",
    });
  });

  test("cgroup v2: one cgroup with every setting; OOM kills counted in memory.events", () => {
    const plan = planFor("local-abc", { memoryMb: 2048, cpus: 2 }, V2);
    expect(plan.cgroups).toEqual([
      {
        dir: "/cg/app/sandboxes-local-abc",
        version: 2,
        settings: [
          { file: "pids.max", value: String(DEFAULT_PIDS) },
          { file: "memory.max", value: String(2048 * 1024 * 1024) },
          { file: "memory.swap.max", value: "0", optional: true },
          { file: "cpu.max", value: "200000 100000" },
        ],
      },
    ]);
    expect(plan.oomEvents).toBe("/cg/app/sandboxes-local-abc/memory.events");
  });

  test("no cgroup: the default process limit and --memory become rlimits set by prlimit inside the sandbox", () => {
    const plan = planFor("local-abc", { memoryMb: 64 }, {});
    expect(plan).toEqual({ cgroups: [], rlimits: { nproc: DEFAULT_PIDS, asBytes: 64 * 1024 * 1024 } });
    expect(DEFAULT_PIDS).toBeLessThanOrEqual(4096);
    expect(rlimitArgv(plan.rlimits, ["/usr/bin/env", "true"])).toEqual(["prlimit", `--nproc=${DEFAULT_PIDS}:${DEFAULT_PIDS}`, `--as=${64 * 1024 * 1024}:${64 * 1024 * 1024}`, "--", "/usr/bin/env", "true"]);
    expect(enterArgv(plan, ["bwrap"])).toEqual(["bwrap"]);
  });

  test("a sandbox whose processes the kernel counts apart (any sandbox, as root; as an ordinary user on Linux 5.14+): the process limit is RLIMIT_NPROC, never a pids cgroup; memory and cpus keep theirs", () => {
    expect(planFor("local-abc", {}, V1, { countedApart: true })).toEqual({ cgroups: [], rlimits: { nproc: DEFAULT_PIDS } });
    expect(planFor("local-abc", {}, V2, { countedApart: true })).toEqual({ cgroups: [], rlimits: { nproc: DEFAULT_PIDS } });
    const plan = planFor("local-abc", { pids: 20, memoryMb: 64, cpus: 1 }, V1, { countedApart: true });
    expect(plan.rlimits).toEqual({ nproc: 20 });
    expect(plan.cgroups.map((cgroup) => cgroup.dir)).toEqual(["/cg/memory/jobs/sandboxes-local-abc", "/cg/cpu/sandboxes-local-abc"]);
    expect(plan.cgroups.flatMap((cgroup) => cgroup.settings.map((setting) => setting.file))).not.toContain("pids.max");
    // Counted with the rest of the user's processes (an ordinary user before Linux 5.14), the same request gets its pids cgroup.
    expect(planFor("local-abc", { pids: 20 }, V1).cgroups).toEqual([{ dir: "/cg/pids/sandboxes-local-abc", version: 1, settings: [{ file: "pids.max", value: "20" }] }]);
  });

  test("under the caller's own lower hard limits (an ordinary user's): the default process limit is that limit; --pids or --memory above it is refused with one line naming it", () => {
    const ceilings = { nproc: 500, asBytes: 128 * 1024 * 1024 };
    expect(planFor("local-abc", {}, {}, { countedApart: true, ceilings }).rlimits).toEqual({ nproc: 500 });
    expect(planFor("local-abc", { pids: 300, memoryMb: 64 }, {}, { countedApart: true, ceilings }).rlimits).toEqual({ nproc: 300, asBytes: 64 * 1024 * 1024 });
    expect(() => planFor("local-abc", { pids: 600 }, {}, { countedApart: true, ceilings })).toThrow("--pids 600 is above this user's own hard limit of 500 processes (ulimit -Hu)");
    expect(() => planFor("local-abc", { memoryMb: 256 }, {}, { countedApart: true, ceilings })).toThrow(`--memory 256m is above this user's own hard limit of ${128 * 1024 * 1024} bytes of address space`);
    // A pids cgroup is no rlimit: the ceiling is not its business (the processes keep the user's limit anyway).
    expect(planFor("local-abc", { pids: 600 }, V1, { ceilings }).cgroups[0]!.settings).toContainEqual({ file: "pids.max", value: "600" });
    // No ceiling (root, or none set): as asked.
    expect(planFor("local-abc", { pids: 600 }, {}, { countedApart: true }).rlimits).toEqual({ nproc: 600 });
  });

  test("hardLimits reads the hard process and address-space limits of /proc/PID/limits; unlimited is none", () => {
    const text = [
      "Limit                     Soft Limit           Hard Limit           Units     ",
      "Max processes             400                  500                  processes ",
      "Max address space         unlimited            unlimited            bytes     ",
    ].join("\n");
    expect(hardLimits(text)).toEqual({ nproc: 500, asBytes: undefined });
    expect(hardLimits(undefined)).toEqual({ nproc: undefined, asBytes: undefined });
    expect(hardLimits(readFileSync("/proc/self/limits", "utf8")).nproc).toBeGreaterThan(0);
  });

  test("setRlimits sets the plan's rlimits, soft and hard, on another process (prlimit(2) through bun:ffi)", async () => {
    const child = Bun.spawn(["sleep", "30"]);
    try {
      await setRlimits({ cgroups: [], rlimits: { nproc: 123, asBytes: 64 * 1024 * 1024 } }, child.pid);
      const limits = readFileSync(`/proc/${child.pid}/limits`, "utf8");
      expect(limits).toMatch(/^Max processes +123 +123 +processes/m);
      expect(limits).toMatch(new RegExp(`^Max address space +${64 * 1024 * 1024} +${64 * 1024 * 1024} +bytes`, "m"));
      // A process that is not there: one line naming what failed.
      await expect(setRlimits({ cgroups: [], rlimits: { nproc: 5 } }, 2 ** 22 + 7)).rejects.toThrow("cannot set the sandbox's process limit: prlimit failed (errno 3)");
    } finally {
      child.kill("SIGKILL");
      await child.exited;
    }
  });

  test("--cpus is refused outside 0.01 to the machine's CPUs (a quota there would not hold what was asked); the bounds themselves are quotas", () => {
    expect(() => planFor("local-abc", { cpus: 3 }, V1, { cpuCount: 2 })).toThrow("--cpus 3 is more than the 2 CPUs this machine has");
    expect(() => planFor("local-abc", { cpus: 2 }, V1, { cpuCount: 1 })).toThrow("--cpus 2 is more than the 1 CPU this machine has");
    expect(() => planFor("local-abc", { cpus: 0.009 }, V1, { cpuCount: 2 })).toThrow("--cpus 0.009 is less than the 0.01 CPU a sandbox can be held to");
    // Before the cgroup check: the value is wrong on this machine whatever would hold it.
    expect(() => planFor("local-abc", { cpus: 3 }, {}, { cpuCount: 2 })).toThrow("--cpus 3 is more than");
    const quotas = (cpus: number) => planFor("local-abc", { cpus }, V1, { cpuCount: 2 }).cgroups.flatMap((c) => c.settings).find((s) => s.file === "cpu.cfs_quota_us")?.value;
    expect([quotas(0.01), quotas(2), quotas(0.5)]).toEqual(["1000", "200000", "50000"]);
  });

  test("--cpus without a cgroup is refused with the reason, never ignored", () => {
    expect(() => planFor("local-abc", { cpus: 1 }, { pids: V1.pids, memory: V1.memory })).toThrow("--cpus cannot be enforced here");
  });

  test("the wrapper moves itself into every cgroup of the sandbox before it becomes the sandbox", () => {
    const plan = planFor("local-abc", { memoryMb: 64 }, V1);
    const argv = enterArgv(plan, ["bwrap", "--", "it's"]);
    expect(argv).toEqual([
      "/bin/sh",
      "-c",
      'echo $$ > /cg/pids/sandboxes-local-abc/cgroup.procs && echo $$ > /cg/memory/jobs/sandboxes-local-abc/cgroup.procs && exec "$@"',
      "sandboxes-limits",
      "bwrap",
      "--",
      "it's",
    ]);
    expect(rlimitArgv(plan.rlimits, ["true"])).toEqual(["true"]);
  });

  test("OOM kills are read from memory.oom_control (v1) and memory.events (v2); none without a memory cgroup", () => {
    const dir = mkdtempSync(join(tmpdir(), "sandboxes-limits-unit-"));
    try {
      writeFileSync(join(dir, "memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
      writeFileSync(join(dir, "memory.events"), "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n");
      expect(memoryKills({ cgroups: [], rlimits: {}, oomEvents: join(dir, "memory.oom_control") })).toBe(3);
      expect(memoryKills({ cgroups: [], rlimits: {}, oomEvents: join(dir, "memory.events") })).toBe(2);
      expect(memoryKills({ cgroups: [], rlimits: {}, oomEvents: join(dir, "gone") })).toBe(0);
      expect(memoryKills(planFor("local-abc", { pids: 5 }, V1))).toBe(0);
      expect(memoryKills(undefined)).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("providers names the mechanism of each limit", () => {
    expect(describeLimits(V1)).toBe("limits: cgroup v1 (memory, pids, cpus)");
    expect(describeLimits({ memory: V2.memory, pids: V2.pids })).toBe("limits: cgroup v2 (memory, pids); --cpus unavailable (no writable cgroup with the cpu controller)");
    expect(describeLimits({})).toBe("limits: RLIMIT_NPROC (pids), RLIMIT_AS (memory, per process); --cpus unavailable (no writable cgroup with the cpu controller)");
    // Counted apart, the process limit is an rlimit, whatever the cgroups: as root on each sandbox's own uid,
    expect(describeLimits(V1, "uid")).toBe("limits: cgroup v1 (memory, cpus), RLIMIT_NPROC (pids, on each sandbox's own uid)");
    expect(describeLimits({}, "uid")).toBe("limits: RLIMIT_NPROC (pids, on each sandbox's own uid), RLIMIT_AS (memory, per process); --cpus unavailable (no writable cgroup with the cpu controller)");
    // as an ordinary user in each sandbox's user namespace.
    expect(describeLimits({ memory: V2.memory, pids: V2.pids }, "userns")).toBe("limits: cgroup v2 (memory), RLIMIT_NPROC (pids, in each sandbox's own user namespace); --cpus unavailable (no writable cgroup with the cpu controller)");
  });

  test("the kernel counts a sandbox's processes apart: as root by its uid, as an ordinary user by its user namespace from Linux 5.14 on", () => {
    expect(ownCount(true, "4.18.0-553.el8_10.x86_64")).toBe("uid");
    expect(ownCount(false, "6.18.44-fc-v1272")).toBe("userns");
    expect(ownCount(false, "5.14.0-427.el9.x86_64\n")).toBe("userns");
    expect(ownCount(false, "5.13.19")).toBeUndefined();
    expect(ownCount(false, "4.19.0")).toBeUndefined();
    // Unreadable: counted with the rest, as before.
    expect(ownCount(false, "")).toBeUndefined();
  });

  test("--pids takes a whole number above 0", () => {
    expect(parseCount("20", "--pids")).toBe(20);
    expect(parseCount(undefined, "--pids")).toBeUndefined();
    expect(() => parseCount("0", "--pids")).toThrow('--pids must be a whole number above 0, got "0"');
    expect(() => parseCount("2.5", "--pids")).toThrow("whole number");
  });
});
