/**
 * --memory, --cpus and --pids on the local provider, through the compiled binary: as root (the
 * sandbox's own cgroups on this host), as an ordinary user (rlimits, and --cpus refused), and as
 * an ordinary user to whom root delegated cgroups; each with bubblewrap and with util-linux.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, type CliResult, cli, freshEnv, keptId, NOBODY, nobodyMachine } from "../helpers";
import { ownCount } from "../../src/providers/local/limits-host";
import { cgroupDirs, machineFor } from "./_local-users";

const isRoot = process.getuid?.() === 0;
/** The v1 hierarchies of this process, by controller (a hybrid or v1 host, as this one is). */
const OWN_V1 = Object.fromEntries(
  readFileSync("/proc/self/cgroup", "utf8")
    .split("\n")
    .map((line) => line.split(":"))
    .filter(([, controllers]) => controllers && ["memory", "pids", "cpu"].includes(controllers))
    .map(([, controller, path]) => [controller!, join("/sys/fs/cgroup", controller!, path!)]),
) as Record<"memory" | "pids" | "cpu", string>;
const v1Host = Object.keys(OWN_V1).length === 3 && Object.values(OWN_V1).every((dir) => existsSync(join(dir, "cgroup.procs")));
/** Linux 5.14+ counts an ordinary user's processes per user namespace: each sandbox has its own. */
const perUserNamespace = ownCount(false, readFileSync("/proc/sys/kernel/osrelease", "utf8")) === "userns";

/** How the binary is started: as the caller, or as an ordinary user (optionally inside cgroups delegated to them). */
interface Runner {
  spawn(args: string[]): ReturnType<typeof Bun.spawn>;
  cleanup(): void;
  /** Where its local sandboxes' files are. */
  stateDir: string;
}

async function finish(child: ReturnType<typeof Bun.spawn>): Promise<CliResult> {
  const [stdoutBytes, stderr, code] = await Promise.all([
    new Response(child.stdout as ReadableStream<Uint8Array>).bytes(),
    new Response(child.stderr as ReadableStream<Uint8Array>).text(),
    child.exited,
  ]);
  return { code, stdout: new TextDecoder().decode(stdoutBytes), stderr, stdoutBytes };
}

const run = (runner: Runner, args: string[]) => finish(runner.spawn(args));
const plainOutput = ({ code, stdout }: CliResult) => ({ code, stdout });

function asCaller(extra: Record<string, string>): Runner {
  const { env, home } = freshEnv(extra);
  return {
    spawn: (args) => Bun.spawn([BINARY, ...args], { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" }),
    cleanup: () => rmSync(home, { recursive: true, force: true }),
    stateDir: join(env.XDG_STATE_HOME!, "sandboxes", "local"),
  };
}

/** As root: the same binary run by `nobody`, with no cgroup of its own or with ours delegated to it. */
function asNobody(extra: Record<string, string>, delegate: boolean): Runner {
  const { dir, home, env, command: drop } = nobodyMachine("sandboxes-limits-user-", extra);
  // Delegation on cgroup v1: root makes a cgroup per hierarchy, gives it to the user and starts them in it.
  const delegated = delegate ? Object.values(OWN_V1).map((parent) => join(parent, `delegated-${dir.slice(-6)}`)) : [];
  for (const cgroup of delegated) {
    mkdirSync(cgroup);
    for (const path of [cgroup, join(cgroup, "cgroup.procs"), join(cgroup, "tasks")]) chownSync(path, NOBODY, NOBODY);
  }
  const enter = delegated.map((cgroup) => `echo $$ > ${join(cgroup, "cgroup.procs")}`).join("; ");
  return {
    spawn: (args) => Bun.spawn(delegate ? ["/bin/sh", "-c", `${enter}; exec "$@"`, "sh", ...drop, ...args] : [...drop, ...args], { env, cwd: dir, stdin: "ignore", stdout: "pipe", stderr: "pipe" }),
    stateDir: join(home, ".local/state/sandboxes/local"),
    cleanup: () => {
      try {
        for (const cgroup of delegated) rmdirSync(cgroup);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await Bun.sleep(50);
  }
  return true;
}

/** Starts up to `count` background sleeps and prints how many started; a failed fork ends sh (exit 2). */
const startSleeps = (count: number, seconds: number) => `i=0; while [ $i -lt ${count} ]; do sleep ${seconds} & i=$((i+1)); done; echo "$i started"`;
/** A bounded 256 MiB allocation: a command substitution dash keeps in memory. */
const ALLOCATE_256M = 'x=$(head -c 268435456 /dev/zero | tr "\\0" a); echo "${#x} bytes"';
const MEMORY_LINE = "the program was killed: it exceeded the memory limit (--memory 64m)";

/**
 * Who runs the binary. `cgroups`: the limits are held by cgroups (so OOM kills are seen), not by
 * rlimits. `bomb`: the fork bomb (10 s of a busy machine each), left to root's and the plain
 * user's runs; the other two share their mechanisms.
 */
const RUNNERS = [
  { who: "root", make: (extra: Record<string, string>) => asCaller(extra), enabled: isRoot, cgroups: v1Host, root: true, bomb: true },
  { who: "an ordinary user", make: (extra: Record<string, string>) => (isRoot ? asNobody(extra, false) : asCaller(extra)), enabled: true, cgroups: false, root: false, bomb: true },
  { who: "root without cgroups (SANDBOXES_LOCAL_CGROUPS=off)", make: (extra: Record<string, string>) => asCaller({ ...extra, SANDBOXES_LOCAL_CGROUPS: "off" }), enabled: isRoot, cgroups: false, root: true, bomb: false },
  { who: "an ordinary user with delegated cgroups", make: (extra: Record<string, string>) => asNobody(extra, true), enabled: isRoot && v1Host, cgroups: true, root: false, bomb: false },
];

// A case that holds for one kind of runner only (with or without cgroups) is defined for that
// runner only: a skip in the others would be one that every run of the suite takes.
for (const mode of ["bubblewrap", "unshare"] as const) {
  for (const { who, make, enabled, cgroups, root, bomb } of RUNNERS) {
    describe.skipIf(!enabled)(`local limits (${mode}, ${who})`, () => {
      const extra: Record<string, string> = mode === "unshare" ? { SANDBOXES_LOCAL_ISOLATION: "unshare" } : {};
      let runner: Runner;
      const ids: string[] = [];
      let defaultHolds = false;
      beforeAll(() => {
        runner = make(extra);
      });
      afterAll(() => runner.cleanup());

      test("providers names the mechanism that enforces the limits", async () => {
        const doc = JSON.parse((await run(runner, ["providers", "--json"])).stdout);
        const local = doc.providers.find((p: { name: string }) => p.name === "local");
        expect(local.capabilities).toMatchObject({ resources: true, pids: true });
        // The kernel counts each sandbox's processes apart, by the uid it runs as (root) or by its
        // user namespace (an ordinary user, Linux 5.14+): its process limit is an rlimit, whatever
        // the cgroups. Before 5.14 an ordinary user's is counted with all of theirs.
        const apart = root || perUserNamespace;
        const pids = root ? "RLIMIT_NPROC (pids, on each sandbox's own uid)" : perUserNamespace ? "RLIMIT_NPROC (pids, in each sandbox's own user namespace)" : "RLIMIT_NPROC (pids)";
        if (cgroups) expect(local.details).toContain(apart ? `limits: cgroup v1 (memory, cpus), ${pids}` : "limits: cgroup v1 (memory, pids, cpus)");
        else expect(local.details).toContain(`limits: ${pids}, RLIMIT_AS (memory, per process); --cpus unavailable`);
      });

      test("--pids 40 in a kept sandbox: what one command leaves running counts against the next", async () => {
        const kept = await run(runner, ["run", "--keep", "--pids", "40", "true"]);
        const id = keptId(kept.stderr)!;
        expect(kept.code).toBe(0);
        ids.push(id);
        // Twenty sleeps that outlive their command (their output elsewhere), then thirty more.
        const first = await run(runner, ["exec", id, "i=0; while [ $i -lt 20 ]; do sleep 30 </dev/null >/dev/null 2>&1 & i=$((i+1)); done; echo \"$i started\""]);
        expect(plainOutput(first)).toEqual({ code: 0, stdout: "20 started\n" });
        const second = await run(runner, ["exec", id, startSleeps(30, 1)]);
        expect(second.stderr).toContain("Cannot fork");
        expect(second.stdout).toBe("");
        expect(second.code).toBe(2);
        expect((await run(runner, ["destroy", id])).code).toBe(0);
      }, 60_000);

      test("--pids 20: 10 background sleeps start, 40 do not", async () => {
        const few = await run(runner, ["run", "--pids", "20", startSleeps(10, 1)]);
        expect(few.stdout).toBe("10 started\n");
        expect(few.code).toBe(0);
        const many = await run(runner, ["run", "--json", "--pids", "20", startSleeps(40, 30)]);
        const doc = JSON.parse(many.stdout);
        ids.push(doc.sandbox_id);
        expect(doc.stderr).toContain("Cannot fork");
        expect(doc.stdout).toBe("");
        expect(doc.exit_code).toBe(2);
      }, 60_000);

      if (cgroups && (root || perUserNamespace)) test(`${root ? "as root a sandbox's process limit is RLIMIT_NPROC on its own uid" : "as an ordinary user a sandbox's process limit is RLIMIT_NPROC in its own user namespace"}, not a pids cgroup, one-shot or kept; --memory keeps its cgroup`, async () => {
        const kept = await run(runner, ["run", "--keep", "--memory", "64m", "--pids", "300", "true"]);
        const id = keptId(kept.stderr)!;
        expect(kept.code).toBe(0);
        ids.push(id);
        for (const command of [["run", "-t", "30", "--memory", "64m", "--pids", "300"], ["exec", id, "-t", "30"]]) {
          const mark = `limits-${Math.random().toString(36).slice(2, 10)}`;
          const running = runner.spawn([...command, `sh -c 'sleep 30' ${mark}`]);
          try {
            const find = () => Bun.spawnSync(["pgrep", "-f", `^sh -c sleep 30 ${mark}$`]).stdout.toString().trim();
            expect(await waitFor(() => find() !== "", 20_000)).toBe(true);
            const pid = Number(find().split("\n")[0]);
            const cgroupOf = (controller: string) => readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n").find((line) => line.split(":")[1]?.split(",").includes(controller))!;
            expect(cgroupOf("memory")).toMatch(/\/sandboxes-local-[0-9a-f]{12}$/);
            expect(cgroupOf("pids")).not.toContain("sandboxes-");
            expect(readFileSync(`/proc/${pid}/limits`, "utf8")).toMatch(/^Max processes +300 +300 +processes/m);
            if (root) expect(Number(/^Uid:\t(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1])).toBeGreaterThanOrEqual(200_000);
            else expect(readlinkSync(`/proc/${pid}/ns/user`)).not.toBe(readlinkSync("/proc/self/ns/user"));
          } finally {
            running.kill("SIGTERM");
            await running.exited;
          }
        }
        expect((await run(runner, ["destroy", id])).code).toBe(0);
      }, 60_000);

      if (cgroups) test("--memory 64m: a 256 MiB allocation is killed (137) and sandboxes says why; 16 MiB is fine", async () => {
        const ok = await run(runner, ["run", "--memory", "64m", ALLOCATE_256M.replace("268435456", "16777216")]);
        expect(ok.stdout).toBe("16777216 bytes\n");
        const killed = await run(runner, ["run", "--memory", "64m", ALLOCATE_256M]);
        expect(killed.stdout).toBe("");
        expect(killed.stderr).toContain(MEMORY_LINE);
        expect(killed.stderr.split("\n").filter((line) => line.includes("memory limit"))).toHaveLength(1);
        expect(killed.code).toBe(137);
      }, 60_000);

      if (!cgroups) test("--memory 64m without a cgroup: RLIMIT_AS makes a 256 MiB allocation fail; 16 MiB is fine", async () => {
        const ok = await run(runner, ["run", "--memory", "64m", ALLOCATE_256M.replace("268435456", "16777216")]);
        expect(ok.stdout).toBe("16777216 bytes\n");
        const failed = await run(runner, ["run", "--memory", "64m", ALLOCATE_256M]);
        expect(failed.stdout).toBe("");
        expect(failed.code).not.toBe(0);
        // Not killed by the kernel, so no claim that it was.
        expect(failed.stderr).not.toContain("exceeded the memory limit");
      }, 60_000);

      if (cgroups) test("--cpus 0.5 sets the CFS quota of the sandbox's cgroup, which holds its processes; destroy removes it", async () => {
        const kept = await run(runner, ["run", "--keep", "--cpus", "0.5", "--memory", "64m", "true"]);
        const id = keptId(kept.stderr)!;
        expect(kept.code).toBe(0);
        ids.push(id);
        const cpu = cgroupDirs(id).find((dir) => existsSync(join(dir, "cpu.cfs_quota_us")))!;
        expect(readFileSync(join(cpu, "cpu.cfs_quota_us"), "utf8").trim()).toBe("50000");
        expect(readFileSync(join(cpu, "cpu.cfs_period_us"), "utf8").trim()).toBe("100000");
        // A reboot ends the sandbox's processes (its holder) and empties /sys/fs/cgroup: the next
        // command of a kept sandbox starts it again and makes its cgroups again.
        const state = JSON.parse(readFileSync(join(runner.stateDir, id, "holder.json"), "utf8"));
        for (const process_ of [state.target, state.holder, state.proxy]) if (process_) process.kill(process_.pid, "SIGKILL");
        for (const dir of cgroupDirs(id)) {
          for (let i = 0; i < 400 && readFileSync(join(dir, "cgroup.procs"), "utf8").trim() !== ""; i++) await Bun.sleep(25);
          rmdirSync(dir);
        }
        const exec = runner.spawn(["exec", id, "-t", "20", "echo ready; sleep 30"]);
        const reader = (exec.stdout as ReadableStream<Uint8Array>).getReader();
        expect(new TextDecoder().decode((await reader.read()).value)).toBe("ready\n");
        expect(readFileSync(join(cpu, "cpu.cfs_quota_us"), "utf8").trim()).toBe("50000");
        expect(readFileSync(join(cpu, "cgroup.procs"), "utf8").trim()).not.toBe("");
        exec.kill("SIGTERM");
        await exec.exited;
        reader.releaseLock();
        // exec in a kept sandbox names a memory kill too.
        const killed = await run(runner, ["exec", id, ALLOCATE_256M]);
        expect(killed.stderr).toContain("the program was killed: it exceeded the memory limit\n");
        expect(killed.code).toBe(137);
        expect((await run(runner, ["destroy", id])).code).toBe(0);
        expect(cgroupDirs(id)).toEqual([]);
      }, 60_000);

      test("--cpus outside 0.01 to this machine's CPUs: refused with exit 125 and one line giving the range, whatever holds the limits; nothing is left", async () => {
        const cpus = navigator.hardwareConcurrency;
        const over = await run(runner, ["run", "--cpus", String(cpus + 1), "true"]);
        expect(over.stderr).toBe(`sandboxes: --cpus ${cpus + 1} is more than the ${cpus} CPU${cpus === 1 ? "" : "s"} this machine has: ask for 0.01 to ${cpus}\n`);
        expect(over.code).toBe(125);
        // A quota under the kernel's minimum used to be raised to it: a limit other than the one asked for.
        const under = await run(runner, ["run", "--cpus", "0.005", "true"]);
        expect(under.stderr).toBe(`sandboxes: --cpus 0.005 is less than the 0.01 CPU a sandbox can be held to: ask for 0.01 to ${cpus}\n`);
        expect(under.code).toBe(125);
        const json = await run(runner, ["run", "--json", "--cpus", String(cpus + 1), "true"]);
        expect(JSON.parse(json.stdout).error).toMatchObject({ code: "bad_cpus", exit_code: 125 });
        expect((await run(runner, ["list", "--json"])).stdout).not.toContain("local-");
        expect(existsSync(runner.stateDir) ? readdirSync(runner.stateDir).filter((entry) => entry.startsWith("local-")) : []).toEqual([]);
      });

      if (!cgroups) test("--cpus without a cgroup: refused with exit 125 and one line naming what is missing; nothing is left", async () => {
        const refused = await run(runner, ["run", "--cpus", "0.5", "true"]);
        expect(refused.stderr.trim().split("\n")).toHaveLength(1);
        expect(refused.stderr).toContain("--cpus cannot be enforced here: the local provider needs a writable cgroup with the cpu controller");
        expect(refused.code).toBe(125);
        expect((await run(runner, ["list", "--json"])).stdout).not.toContain("local-");
      });

      test("the default limit (2048 processes and threads) holds: 2100 threads do not start, 1000 do", async () => {
        // Threads count as processes for pids.max and RLIMIT_NPROC alike, and start far faster than processes.
        const threads = (count: number) =>
          `python3 -c 'import threading, time
threading.stack_size(65536)
for i in range(${count}):
    try: threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    except RuntimeError: print(f"thread {i + 1} could not start"); raise SystemExit(3)
print("all started")'`;
        const some = await run(runner, ["run", "-t", "60", threads(1000)]);
        expect(plainOutput(some)).toEqual({ code: 0, stdout: "all started\n" });
        const result = await run(runner, ["run", "--json", "-t", "60", threads(2100)]);
        const doc = JSON.parse(result.stdout);
        ids.push(doc.sandbox_id);
        const started = Number(/thread (\d+) could not start/.exec(doc.stdout)?.[1]);
        expect(started).toBeGreaterThan(1900);
        expect(started).toBeLessThanOrEqual(2048);
        expect(doc.exit_code).toBe(3);
        defaultHolds = true;
      }, 150_000);

      if (bomb) test("a fork bomb under -t 10 ends with 124 and leaves no process behind", async () => {
        // Only once the bounded test above has shown that the default limit holds.
        expect(defaultHolds).toBe(true);
        const mark = `bomb-${Math.random().toString(36).slice(2, 10)}`;
        // The bomb, and a foreground that outlives it, as in a shell that typed it.
        const bombing = runner.spawn(["run", "-t", "10", `bash -c ':(){ :|:& };:; sleep 60' ${mark}`]);
        const left = () => Bun.spawnSync(["pgrep", "-f", mark]).stdout.toString().trim();
        expect(await waitFor(() => left() !== "", 30_000)).toBe(true);
        // The host still starts processes while the bomb runs.
        expect(Bun.spawnSync(["true"]).exitCode).toBe(0);
        const result = await finish(bombing);
        expect(result.code).toBe(124);
        expect(result.stderr).toContain("timed out after 10s");
        expect(await waitFor(() => left() === "", 10_000)).toBe(true);
      }, 60_000);

      test("no cgroup is left behind by one-shot runs, OOM kills (limit_hit in --json), timeouts or destroyed sandboxes", async () => {
        const oom = await run(runner, ["run", "--json", "--memory", "64m", "--pids", "50", ALLOCATE_256M]);
        const timeout = await run(runner, ["run", "--json", "-t", "1", "--memory", "64m", "sleep 30 & sleep 30"]);
        ids.push(JSON.parse(oom.stdout).sandbox_id, JSON.parse(timeout.stdout).sandbox_id);
        const oomDoc = JSON.parse(oom.stdout);
        if (cgroups) expect(oomDoc).toMatchObject({ exit_code: 137, limit_hit: "memory" });
        // RLIMIT_AS: the allocation fails inside the program (dash may even crash on it); the kernel killed nothing.
        else expect([oomDoc.exit_code === 0, oomDoc.limit_hit]).toEqual([false, undefined]);
        expect(JSON.parse(timeout.stdout)).toMatchObject({ exit_code: 124, timed_out: true });
        expect(ids.every((id) => /^local-[0-9a-f]{12}$/.test(id))).toBe(true);
        expect(ids.flatMap(cgroupDirs)).toEqual([]);
      }, 60_000);
    });
  }
}

/**
 * The cgroup v2 path through the binary, with an injected cgroup root (SANDBOXES_TEST_CGROUP_ROOT:
 * a temporary directory laid out like a delegated v2 subtree). This host is cgroup v1/hybrid, so
 * real v2 enforcement is not exercised; test/unit/local-limits-v2.test.ts checks what is written.
 */
describe("local limits on a delegated cgroup v2 subtree without the cpu controller (injected root)", () => {
  test("providers names cgroup v2, and run --cpus is refused with one line, exit 125, nothing left", async () => {
    const root = mkdtempSync(join(tmpdir(), "sandboxes-cgroup2-e2e-"));
    const { env } = freshEnv({ SANDBOXES_TEST_CGROUP_ROOT: root });
    try {
      writeFileSync(join(root, "cgroup.controllers"), "cpu memory pids\n");
      writeFileSync(join(root, "cgroup.subtree_control"), "memory pids\n");
      writeFileSync(join(root, "cgroup.procs"), "");
      const providers = JSON.parse((await cli(["providers", "--json"], { env })).stdout);
      // The process limit is an rlimit on each sandbox's own uid (root) or user namespace, whatever the cgroups.
      const mechanisms = `cgroup v2 (memory), RLIMIT_NPROC (pids, ${isRoot ? "on each sandbox's own uid" : "in each sandbox's own user namespace"})`;
      expect(providers.providers.find((p: { name: string }) => p.name === "local").details).toContain(`limits: ${mechanisms}; --cpus unavailable`);
      const refused = await cli(["run", "-p", "local", "--cpus", "1", "true"], { env });
      expect(refused.code).toBe(125);
      expect(refused.stdout).toBe("");
      expect(refused.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^sandboxes: --cpus cannot be enforced here: .*delegated cgroup v2 subtree/)]);
      expect(readdirSync(root).sort()).toEqual(["cgroup.controllers", "cgroup.procs", "cgroup.subtree_control"]);
      expect(JSON.parse((await cli(["list", "--json"], { env })).stdout).sandboxes).toEqual([]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }, 60_000);
});

// An ordinary user whose own hard process limit is below the default: a sandbox's processes cannot
// go past it (setrlimit cannot raise a hard limit), so the default is that limit and more is refused.
describe.skipIf(!isRoot)("local limits under an ordinary user's own lower hard process limit", () => {
  for (const mechanism of ["bubblewrap", "unshare"] as const) {
    test(`${mechanism}: the default is the user's own 500, with and without the network; --pids 600 is one line and exit 125, nothing left; --pids 300 holds`, async () => {
      const m = machineFor("ordinary", mechanism);
      try {
        const prefix = ["prlimit", "--nproc=500:500", "--"];
        for (const network of ["default", "none"]) {
          const r = await m.run(["run", "--network", network, "ulimit -p"], { prefix });
          expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 0, stdout: "500\n", stderr: "" });
        }
        const refused = await m.run(["run", "--pids", "600", "echo ran"], { prefix });
        expect(refused.code).toBe(125);
        expect(refused.stdout).toBe("");
        expect(refused.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^sandboxes: --pids 600 is above this user's own hard limit of 500 processes \(ulimit -Hu\).*: ask for less/)]);
        expect(existsSync(m.stateDir) ? readdirSync(m.stateDir) : []).toEqual([]);
        const asked = await m.run(["run", "--pids", "300", "ulimit -p"], { prefix });
        expect({ code: asked.code, stdout: asked.stdout }).toEqual({ code: 0, stdout: "300\n" });
      } finally {
        m.remove();
      }
    }, 60_000);
  }
});
