/**
 * The cgroup v2 path of the local provider's limits, against an injected cgroup root: a temporary
 * directory laid out like a delegated v2 subtree (cgroup.controllers, cgroup.subtree_control,
 * cgroup.procs), and a stand-in for the kernel's mkdir that gives a new cgroup its files. What is
 * tested is what `sandboxes` reads and writes there.
 *
 * This host is cgroup v1/hybrid: real v2 enforcement (the kernel holding a program to memory.max,
 * pids.max or cpu.max) is NOT exercised here. test/e2e/local-limits.test.ts enforces the v1 path,
 * and refuses through the binary with this injected root.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyLimits, DEFAULT_PIDS, enterArgv, memoryKills, planFor } from "../../src/providers/local/limits";
import { cgroupSites } from "../../src/providers/local/limits-host";

const roots: string[] = [];
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

/** A delegated v2 subtree whose top enables `delegated` for its children. */
function subtree(delegated: string): string {
  const root = mkdtempSync(join(tmpdir(), "sandboxes-cgroup2-"));
  roots.push(root);
  writeFileSync(join(root, "cgroup.controllers"), "cpuset cpu io memory hugetlb pids rdma misc\n");
  writeFileSync(join(root, "cgroup.subtree_control"), `${delegated}\n`);
  writeFileSync(join(root, "cgroup.procs"), "");
  return root;
}

/**
 * What the kernel's mkdir makes in a cgroup2 file system: the core files, and the interface files
 * of each controller the parent enables (memory.swap.max only with swap accounting).
 */
function kernelMkdir(options: { swapAccounting: boolean }) {
  return (dir: string) => {
    mkdirSync(dir);
    const enabled = readFileSync(join(dir, "..", "cgroup.subtree_control"), "utf8").trim().split(/\s+/);
    const files: Record<string, string> = { "cgroup.procs": "", "cgroup.controllers": `${enabled.join(" ")}\n`, "cgroup.events": "populated 0\nfrozen 0\n" };
    if (enabled.includes("memory")) {
      Object.assign(files, { "memory.max": "max\n", "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n" });
      if (options.swapAccounting) files["memory.swap.max"] = "max\n";
    }
    if (enabled.includes("pids")) files["pids.max"] = "max\n";
    if (enabled.includes("cpu")) files["cpu.max"] = "max 100000\n";
    for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  };
}

const read = (dir: string, file: string) => readFileSync(join(dir, file), "utf8");

describe("cgroup v2 through a delegated subtree (injected root; not enforced on this v1/hybrid host)", () => {
  test("the subtree's top is the site of every delegated controller", async () => {
    const root = subtree("cpu memory pids");
    expect(await cgroupSites({ SANDBOXES_TEST_CGROUP_ROOT: root })).toEqual({
      memory: { version: 2, parent: root },
      pids: { version: 2, parent: root },
      cpu: { version: 2, parent: root },
    });
  });

  test("writes memory.max, memory.swap.max, pids.max and cpu.max into the sandbox's own cgroup, and the wrapper joins it through cgroup.procs", async () => {
    const root = subtree("cpu memory pids");
    const plan = planFor("local-abc", { memoryMb: 64, cpus: 0.5, pids: 20 }, await cgroupSites({ SANDBOXES_TEST_CGROUP_ROOT: root }));
    await applyLimits(plan, kernelMkdir({ swapAccounting: true }));
    const dir = join(root, "sandboxes-local-abc");
    expect(plan.cgroups.map((c) => c.dir)).toEqual([dir]);
    expect(read(dir, "memory.max")).toBe(String(64 * 1024 * 1024));
    // No swap: a program past the limit is stopped, not paged out.
    expect(read(dir, "memory.swap.max")).toBe("0");
    expect(read(dir, "pids.max")).toBe("20");
    expect(read(dir, "cpu.max")).toBe("50000 100000");
    expect(memoryKills(plan)).toBe(0);
    // The wrapper writes its own pid into cgroup.procs before it becomes the sandbox.
    const child = Bun.spawnSync(enterArgv(plan, ["sh", "-c", "echo $$"]), { stdout: "pipe", stderr: "pipe" });
    expect(child.exitCode).toBe(0);
    const pid = new TextDecoder().decode(child.stdout).trim();
    expect(pid).toMatch(/^\d+$/);
    expect(read(dir, "cgroup.procs").trim()).toBe(pid);
  });

  test("without swap accounting memory.swap.max is not made up; the rest is written", async () => {
    const root = subtree("cpu memory pids");
    const plan = planFor("local-abc", { memoryMb: 128 }, await cgroupSites({ SANDBOXES_TEST_CGROUP_ROOT: root }));
    await applyLimits(plan, kernelMkdir({ swapAccounting: false }));
    const dir = join(root, "sandboxes-local-abc");
    expect(existsSync(join(dir, "memory.swap.max"))).toBe(false);
    expect(read(dir, "memory.max")).toBe(String(128 * 1024 * 1024));
    expect(read(dir, "pids.max")).toBe(String(DEFAULT_PIDS));
    // No --cpus: the kernel's default is left as it was.
    expect(read(dir, "cpu.max")).toBe("max 100000\n");
  });

  test("an OOM kill the kernel counts in memory.events is reported", async () => {
    const root = subtree("memory pids");
    const plan = planFor("local-abc", { memoryMb: 64 }, await cgroupSites({ SANDBOXES_TEST_CGROUP_ROOT: root }));
    await applyLimits(plan, kernelMkdir({ swapAccounting: true }));
    writeFileSync(join(root, "sandboxes-local-abc", "memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n");
    expect(memoryKills(plan)).toBe(1);
  });

  test("cpu not delegated: --cpus is refused with the reason, the other limits still use the subtree", async () => {
    const root = subtree("memory pids");
    const sites = await cgroupSites({ SANDBOXES_TEST_CGROUP_ROOT: root });
    expect(sites).toEqual({ memory: { version: 2, parent: root }, pids: { version: 2, parent: root } });
    expect(() => planFor("local-abc", { cpus: 1 }, sites)).toThrow("--cpus cannot be enforced here");
    expect(planFor("local-abc", { memoryMb: 64 }, sites).cgroups.map((c) => c.dir)).toEqual([join(root, "sandboxes-local-abc")]);
  });

  test("nothing delegated: no v2 site, so the limits fall back to rlimits", async () => {
    const root = subtree("");
    const sites = await cgroupSites({ SANDBOXES_TEST_CGROUP_ROOT: root });
    expect(sites).toEqual({});
    expect(planFor("local-abc", { memoryMb: 64 }, sites)).toEqual({ cgroups: [], rlimits: { nproc: DEFAULT_PIDS, asBytes: 64 * 1024 * 1024 } });
  });
});
