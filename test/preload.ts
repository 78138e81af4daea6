/**
 * After the whole run: the HOMEs test/helpers.ts's freshEnv made are removed; then local
 * sandboxes whose state directory a test (or that) removed while they were
 * still running (a kept sandbox's holder and egress proxy outlive the CLI by design) are
 * stopped, and their cgroups removed, so a CI machine does not collect them. Each one is named
 * on stderr: a test that keeps a sandbox should destroy it.
 */
import { afterAll } from "bun:test";
import { existsSync, readdirSync, readFileSync, rmdirSync } from "node:fs";
import { removeMadeHomes } from "./helpers";

afterAll(() => {
  // The HOMEs tests made and left go first, so that a sandbox still kept in one is stopped below.
  removeMadeHomes();
  const orphans = new Map<string, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let args: string;
    try {
      args = readFileSync(`/proc/${entry}/cmdline`, "utf8").replaceAll("\0", " ");
    } catch {
      continue;
    }
    const dir = /(\/tmp\/sandboxes-\S+?\/sandboxes\/local\/local-[0-9a-f]{12})\/net/.exec(args)?.[1];
    if (!dir || existsSync(dir)) continue;
    orphans.set(dir, [...(orphans.get(dir) ?? []), Number(entry)]);
  }
  for (const [dir, pids] of orphans) {
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* already gone */
      }
    }
    const id = dir.slice(dir.lastIndexOf("/") + 1);
    for (const controller of ["pids", "memory", "cpu", "cpu,cpuacct", "unified", ""]) {
      const cgroup = `/sys/fs/cgroup/${controller}${controller ? "/" : ""}sandboxes-${id}`;
      for (let attempt = 0; attempt < 20 && existsSync(cgroup); attempt++) {
        try {
          rmdirSync(cgroup);
        } catch {
          Bun.sleepSync(50);
        }
      }
    }
    process.stderr.write(`test run: stopped ${id}, a kept local sandbox whose HOME a test removed (${dir})\n`);
  }
});
