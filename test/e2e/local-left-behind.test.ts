/**
 * A one-shot local run whose CLI dies without cleaning up (SIGKILL, the OOM killer) leaves no
 * sandbox behind for long: its processes die with the CLI, `list` shows it running only while
 * the CLI lives, and the next `list` or `run` removes its directory and cgroups. A cgroup of
 * ours that no sandbox knows any more (its state went some other way) is removed once it is a
 * minute old. Through the compiled binary, as root and as an ordinary user, with bubblewrap and
 * with util-linux unshare.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bootId, childrenOf, startTime } from "../../src/providers/local/holder";
import { EGRESS_DIR, EGRESS_SOCKET, RUN_DIR } from "../../src/providers/local/isolation";
import { START_INSIDE } from "../../src/providers/local/start";
import { startHelperFile } from "../../scripts/build-binaries";
import { readUntil } from "../helpers";
import { cgroupDirs, eventually, holderState, isRoot, type Machine, machineFor, MATRIX, processesWith, running, WRITTEN_START } from "./_local-users";

/** sandbox-start as `npm run build` wrote it for this machine (the binary carries the same). */
const startHelper = startHelperFile(process.arch as "x64" | "arm64");
/**
 * Whether a process's command line is sandbox-start's: as bound inside the sandbox (bubblewrap),
 * or from the state directory's bin/ (util-linux, where it makes the sandbox and starts the
 * program in a child of its own, without another exec).
 */
const isStart = (pid: number) => {
  const argv0 = procFile(pid, "cmdline").split("\0")[0]!;
  return argv0 === START_INSIDE || WRITTEN_START.test(argv0);
};

/** "ID state" of each sandbox `list` shows. */
const states = async (m: Machine) => JSON.parse((await m.run(["list", "--json"])).stdout).sandboxes.map((s: { id: string; state: string }) => `${s.id} ${s.state}`);

/** A sleep whose command line is unique to one test, so /proc tells its processes apart. */
const marked = () => `${100 + Math.floor(Math.random() * 800)}.${Math.floor(Math.random() * 1e6)}`;

/**
 * Starts a one-shot run that prints "started" and sleeps, waits for the line, checks that `list`
 * shows it running, and kills the CLI with SIGKILL. Returns the sandbox's id and the sleep's marker.
 */
async function killedRun(m: Machine, options: string[] = []): Promise<{ id: string; marker: string }> {
  const marker = marked();
  const child = m.spawn(["run", ...options, `echo started; sleep ${marker}`]);
  expect(await readUntil(child.stdout as ReadableStream<Uint8Array>, "started\n")).toBe("started\n");
  const [id] = readdirSync(m.stateDir);
  expect(id).toMatch(/^local-[0-9a-f]{12}$/);
  expect(await states(m)).toEqual([`${id} running`]);
  child.kill("SIGKILL");
  await child.exited;
  return { id: id!, marker };
}

/**
 * Starts the binary with `args`, paused at `stage` of the sandbox's set-up (SANDBOXES_TEST_PAUSE_AT),
 * and waits until it says so. Returns the CLI's process and the sandbox's id.
 */
async function startPaused(m: Machine, args: string[], stage: "files" | "proxy" | "let-go" | "handover") {
  const child = Bun.spawn([...m.command, ...args], { env: { ...m.env, SANDBOXES_TEST_PAUSE_AT: stage }, cwd: m.cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const paused = await readUntil(child.stderr as ReadableStream<Uint8Array>, `paused at ${stage}\n`);
  const id = new RegExp(`(local-[0-9a-f]{12}) paused at ${stage}`).exec(paused)?.[1];
  expect(id).toMatch(/^local-[0-9a-f]{12}$/);
  return { child, id: id! };
}

/** A file of a process's in /proc (its cgroup, its limits, its command line), or "" once it is gone. */
function procFile(pid: number, file: "cgroup" | "limits" | "cmdline"): string {
  try {
    return readFileSync(`/proc/${pid}/${file}`, "utf8");
  } catch {
    return "";
  }
}

/** Nothing of sandbox `id` is left: `list` shows none, and no directory or cgroup remains. */
async function expectGone(m: Machine, id: string): Promise<void> {
  expect(await states(m)).toEqual([]);
  expect(existsSync(m.stateDir) ? readdirSync(m.stateDir) : []).toEqual([]);
  expect(cgroupDirs(id)).toEqual([]);
}

for (const { user, mechanism } of MATRIX) {
  describe.skipIf(!isRoot)(`a local run whose CLI is killed (${user}, ${mechanism})`, () => {
    const machines: Machine[] = [];
    afterAll(() => {
      for (const m of machines) m.remove();
    });
    const machine = () => {
      const m = machineFor(user, mechanism);
      machines.push(m);
      return m;
    };

    for (const next of ["list", "run"] as const) {
      test(`its processes die with the CLI, it is listed as stopped no more, and the next ${next} removes what it left`, async () => {
        const m = machine();
        // As root a one-shot run's cgroups are those of --memory and --cpus: its process limit is
        // an rlimit on its own uid.
        const { id, marker } = await killedRun(m, user === "root" ? ["--memory", "64m"] : []);
        expect(await eventually(() => processesWith(marker).length === 0)).toBe(true);
        // Left behind until then: the directory, and as root the cgroup.
        expect(readdirSync(m.stateDir)).toEqual([id]);
        if (user === "root") expect(cgroupDirs(id).length).toBeGreaterThan(0);
        if (next === "list") {
          expect(await states(m)).toEqual([]);
        } else {
          const ran = await m.run(["run", "echo again"]);
          expect(ran.stdout).toBe("again\n");
          expect(ran.code).toBe(0);
        }
        expect(existsSync(m.stateDir) ? readdirSync(m.stateDir) : []).toEqual([]);
        expect(cgroupDirs(id)).toEqual([]);
        expect(existsSync(join("/tmp", `sandboxes-${user === "root" ? 0 : 65534}-${id}`))).toBe(false);
      }, 60_000);
    }

    // Killed before the program starts: while the CLI makes the sandbox's files (with bubblewrap,
    // bwrap is started by then: an ordinary user's waits for the sandbox's root, which the CLI hands
    // it once they exist; root's has its root and waits for the sandbox's /etc/group, the
    // handshake's first gate), or while it makes the proxy's listener (as root with bubblewrap,
    // before the /etc/passwd that lets bwrap go on; an ordinary user's unix socket for the
    // handover, once bwrap has the root, while sandbox-start waits for it; util-linux's before its
    // wrapper starts). The program must not start in a sandbox missing its mounts, or outside its
    // cgroups with no one reading it.
    for (const [stage, when] of [["files", "while it makes the sandbox's files"], ["proxy", "while the sandbox waits to be let go"]] as const) {
      test(`killed ${when}: the program never runs, and the next list removes what it left`, async () => {
        const m = machine();
        const marker = marked();
        const { child, id } = await startPaused(m, ["run", `echo ran > /tmp/ran; sleep ${marker}`], stage);
        // The CLI's own process (an ordinary user's too: setpriv execs it) and what it started.
        const wrappers = childrenOf(child.pid);
        expect(wrappers.length).toBe(mechanism === "bubblewrap" ? 1 : 0);
        child.kill("SIGKILL");
        await child.exited;
        expect(await eventually(() => wrappers.every((pid) => !running(pid)))).toBe(true);
        expect(await eventually(() => processesWith(id).length === 0 && processesWith(marker).length === 0)).toBe(true);
        expect(existsSync(join(m.stateDir, id, "tmp", "ran"))).toBe(false);
        await expectGone(m, id);
      }, 60_000);
    }

    // Killed while sandbox-start inside waits for the CLI to take the listener it made (listeners.ts's
    // takeListener; as root with bubblewrap only with SANDBOXES_LOCAL_EGRESS_LISTENER=off, else
    // the CLI makes it): it reads the end of the connection and exits, so the program never starts.
    test("killed while the sandbox's listener is handed over: the program never runs, and the next list removes what it left", async () => {
      const m = machine();
      if (user === "root" && mechanism === "bubblewrap") m.env.SANDBOXES_LOCAL_EGRESS_LISTENER = "off";
      const marker = marked();
      const { child, id } = await startPaused(m, ["run", `echo ran > /tmp/ran; sleep ${marker}`], "handover");
      // sandbox-start is there, waiting for its answer.
      expect(await eventually(() => processesWith(id).some(isStart))).toBe(true);
      child.kill("SIGKILL");
      await child.exited;
      expect(await eventually(() => processesWith(id).length === 0 && processesWith(marker).length === 0)).toBe(true);
      expect(existsSync(join(m.stateDir, id, "tmp", "ran"))).toBe(false);
      await expectGone(m, id);
    }, 60_000);

    // An ordinary user's unix socket for the handover is made once bwrap has the sandbox's root
    // (provider.ts's giveRoot): sandbox-start may reach for it first, and wait for it.
    if (user === "ordinary" && mechanism === "bubblewrap") {
      test("the sandbox started before the proxy's socket is made: sandbox-start waits for it, and the program runs once it is", async () => {
        const m = machine();
        const { child, id } = await startPaused(m, ["run", "echo ran > /tmp/ran && cat /tmp/ran; ps -eo comm= | grep -cx start || true"], "proxy");
        // bwrap has its root, sandbox-start runs, and the program has not started.
        expect(await eventually(() => processesWith(id).some(isStart))).toBe(true);
        await Bun.sleep(100);
        expect(existsSync(join(m.stateDir, id, "tmp", "ran"))).toBe(false);
        child.kill("SIGUSR2");
        expect(await child.exited).toBe(0);
        expect(await new Response(child.stdout as ReadableStream<Uint8Array>).text()).toBe("ran\n0\n");
        await expectGone(m, id);
      }, 60_000);
    }

    // Killed just after it handed bwrap the last of the sandbox (as root, the /etc/passwd of the
    // handshake; an ordinary user's, the root). bwrap goes on whatever becomes of the CLI until the
    // sandbox's first process is tied to it (its death signal, a few milliseconds later): the
    // program may start then, inside its limits with no one to time it out, or die with bwrap.
    // Either way the next list stops what runs and removes what is left.
    if (user === "root" && mechanism === "bubblewrap") {
      for (const network of ["none", "default"] as const) {
        test(`killed once it handed the sandbox over (--network ${network}): what runs is inside its limits, and the next list stops it and removes what it left`, async () => {
          const m = machine();
          const marker = marked();
          const { child, id } = await startPaused(m, ["run", "--network", network, "--memory", "64m", `echo ran > /tmp/ran; sleep ${marker}`], "let-go");
          child.kill("SIGKILL");
          await child.exited;
          expect(await eventually(() => existsSync(join(m.stateDir, id, "tmp", "ran")) || processesWith(id).length === 0)).toBe(true);
          for (const pid of processesWith(marker)) {
            const cgroups = procFile(pid, "cgroup");
            if (cgroups) expect(cgroups).toContain(`sandboxes-${id}`);
            const limits = procFile(pid, "limits");
            if (limits) expect(limits).toMatch(/^Max processes +2048 +2048 /m);
          }
          await expectGone(m, id);
          expect(await eventually(() => processesWith(marker).length === 0 && processesWith(id).length === 0)).toBe(true);
        }, 60_000);
      }
    }

    // Its meta.json is its first file: a kept sandbox half made is one the user can see and use.
    test("a kept sandbox whose CLI is killed while it makes its files is listed (stopped), starts on exec, and goes with destroy", async () => {
      const m = machine();
      const { child, id } = await startPaused(m, ["run", "--keep", "-n", "half", "true"], "files");
      child.kill("SIGKILL");
      await child.exited;
      expect(await states(m)).toEqual([`${id} stopped`]);
      const exec = await m.run(["exec", "half", "echo back"]);
      expect(exec.stdout).toBe("back\n");
      expect(exec.code).toBe(0);
      expect((await m.run(["destroy", "half"])).code).toBe(0);
      await expectGone(m, id);
    }, 60_000);

    test("a kept sandbox, stopped, is not taken for left behind", async () => {
      const m = machine();
      const kept = await m.run(["run", "--keep", "-n", "box", "true"]);
      expect(kept.code).toBe(0);
      const [id] = readdirSync(m.stateDir);
      // As a crash would: its holder, first process and proxy killed.
      const state = holderState(m, id!);
      const pids = [state.target.pid, state.holder.pid, state.proxy?.pid].filter((pid): pid is number => pid !== undefined);
      for (const pid of pids) process.kill(pid, "SIGKILL");
      expect(await eventually(() => pids.every((pid) => !running(pid)))).toBe(true);
      expect(await states(m)).toEqual([`${id} stopped`]);
      expect((await m.run(["run", "true"])).code).toBe(0);
      expect(readdirSync(m.stateDir)).toEqual([id]);
      const exec = await m.run(["exec", "box", "echo back"]);
      expect(exec.stdout).toBe("back\n");
      expect((await m.run(["destroy", "box"])).code).toBe(0);
    }, 60_000);
  });
}

// Should bwrap's pid 1 miss its parent-death signal (the CLI killed as bwrap starts: under load,
// as late as the proxy stage), it waits for every process of the sandbox, our egress waiter
// included. That moment cannot be chosen from outside bwrap, so the waiter the binary starts is
// run again as it is, in a network namespace of the test's own, for a program that ends at once.
describe.skipIf(!isRoot || !Bun.which("bwrap"))("the egress bridge's waiter in an ordinary user's one-shot sandbox", () => {
  test("ends once the program it waits for has ended, without a connection", async () => {
    const m = machineFor("ordinary", "bubblewrap");
    try {
      // Paused before the handover's answer, sandbox-start keeps its command line.
      const { child, id } = await startPaused(m, ["run", "sleep 30"], "handover");
      const argvOf = (pid: number) => procFile(pid, "cmdline").split("\0").slice(0, -1);
      let start: string[] | undefined;
      await eventually(() => (start = processesWith(id).filter(isStart).map(argvOf)[0]) !== undefined);
      child.kill("SIGKILL");
      await child.exited;
      // The sandbox's port, the proxy's unix socket as the sandbox sees it, the bridge (our binary
      // inside), the default process limit, no memory limit, the program.
      const socket = `${EGRESS_DIR}/${EGRESS_SOCKET}`;
      const bridge = [`${RUN_DIR}/sandboxes`, "__egress-bridge", "stdin", socket];
      expect(start).toEqual([START_INSIDE, "--listen", "3128", socket, "--bridge", "4", ...bridge, "--nproc", "2048", "--", "sh", "-c", "sleep 30"]);
      const marker = marked();
      const program = ["sh", "-c", "exit 0", marker];
      // The handover refused ("0", as where no copy can be made), so sandbox-start leaves the waiter.
      const handover = join(m.stateDir, "..", "handover.sock");
      const refusing = Bun.listen({ unix: handover, socket: { data: (socket) => void socket.end("0") } });
      // No limits for this program: the test's own user runs it.
      const startWaiter = [startHelper, "--listen", "3128", handover, "--bridge", "4", ...bridge, "--"];
      try {
        // The waiter a child of the program's parent (clone's CLONE_PARENT): it outlives the
        // program, and ends by itself.
        const run = Bun.spawn(["unshare", "--net", "--", ...startWaiter, ...program], { stdout: "ignore", stderr: "pipe" });
        expect(await run.exited).toBe(0);
        // The waiter, left behind: sandbox-start's own command line, marker included.
        expect(processesWith(marker).length).toBeGreaterThan(0);
        expect(await eventually(() => processesWith(marker).length === 0, 5000)).toBe(true);
        // As a pid namespace's first process, where CLONE_PARENT is refused: the fork of a fork.
        const first = Bun.spawn(["unshare", "--net", "--pid", "--fork", "--kill-child", "--", ...startWaiter, "sh", "-c", "sleep 0.2; exit 0", marker], { stdout: "ignore", stderr: "pipe" });
        expect(await first.exited).toBe(0);
        expect(await new Response(first.stderr as ReadableStream<Uint8Array>).text()).toBe("");
        expect(await eventually(() => processesWith(marker).length === 0, 5000)).toBe(true);
      } finally {
        refusing.stop(true);
      }
    } finally {
      m.remove();
    }
  }, 30_000);

  // The program's shell lists its own children first, with builtins only: none. With the
  // listener handed over there is no waiter; with the bridge (SANDBOXES_LOCAL_EGRESS_LISTENER=off)
  // the waiter is pid 1's (clone's CLONE_PARENT, or the fork of a fork).
  for (const [mechanism, listener] of [["bubblewrap", "handed over"], ["unshare", "handed over"], ["bubblewrap", "bridge"], ["unshare", "bridge"]] as const) {
    test(`the program has no child it did not start (${mechanism}, ${listener})`, async () => {
      const m = machineFor("ordinary", mechanism);
      if (listener === "bridge") m.env.SANDBOXES_LOCAL_EGRESS_LISTENER = "off";
      try {
        const script = 'for s in /proc/[0-9]*/stat; do read -r line < "$s" || continue; set -- ${line##*) }; [ "$2" = "$$" ] && echo "child ${s}"; done; echo listed';
        const result = await m.run(["run", script]);
        expect(result.stdout).toBe("listed\n");
        expect(result.code).toBe(0);
      } finally {
        m.remove();
      }
    }, 30_000);
  }
});

describe.skipIf(!isRoot)("a one-shot sandbox that outlived its CLI (root)", () => {
  test("the next list stops it by its first process, noted before the program started, and removes it", async () => {
    const m = machineFor("root", "bubblewrap");
    // Stands in for the sandbox's first process: what the sweep kills is what the note names.
    const firstProcess = Bun.spawn(["sleep", marked()]);
    try {
      const id = "local-0000000000b1";
      const dir = join(m.stateDir, id);
      mkdirSync(dir, { recursive: true });
      const gone = Bun.spawnSync(["true"]).pid;
      const meta = { id, labels: {}, createdAt: new Date().toISOString(), env: {}, network: { mode: "none", allow: [] }, mounts: [], limits: { cgroups: [], rlimits: { nproc: 2048 } }, owner: { pid: gone, start: "1", boot: bootId() } };
      writeFileSync(join(dir, "meta.json"), JSON.stringify(meta));
      writeFileSync(join(dir, "first-process.json"), JSON.stringify({ target: { pid: firstProcess.pid, start: startTime(firstProcess.pid) }, boot: bootId() }));
      expect(await states(m)).toEqual([]);
      expect(await firstProcess.exited).toBe(137);
      expect(existsSync(dir)).toBe(false);
    } finally {
      firstProcess.kill("SIGKILL");
      m.remove();
    }
  }, 60_000);
});

describe.skipIf(!isRoot)("cgroups of ours that no sandbox knows (root, cgroup v1 pids)", () => {
  const machines: Machine[] = [];
  afterAll(() => {
    for (const m of machines) m.remove();
  });

  test("an empty one a minute old is removed by the next run; a new one, and one with a process, are not", async () => {
    const m = machineFor("root", "bubblewrap");
    machines.push(m);
    // Where this host put sandboxes' pids cgroups (as root, before a sandbox's process limit
    // became an rlimit on its own uid; a stale one of those must go all the same): inside the
    // caller's own pids cgroup, where a sandbox's memory cgroup goes in its hierarchy.
    const own = readFileSync("/proc/self/cgroup", "utf8").split("\n").find((line) => line.split(":")[1] === "pids");
    if (!own) throw new Error("no cgroup v1 pids hierarchy here");
    const parent = join("/sys/fs/cgroup/pids", own.split(":")[2]!);
    const stale = join(parent, "sandboxes-local-0000000000a1");
    const fresh = join(parent, "sandboxes-local-0000000000a2");
    const busy = join(parent, "sandboxes-local-0000000000a3");
    const sleeper = Bun.spawn(["sleep", marked()]);
    try {
      for (const dir of [stale, fresh, busy]) mkdirSync(dir);
      const old = new Date(Date.now() - 120_000);
      utimesSync(stale, old, old);
      utimesSync(busy, old, old);
      await Bun.write(join(busy, "cgroup.procs"), String(sleeper.pid));
      const ran = await m.run(["run", "true"]);
      expect(ran.code).toBe(0);
      expect(existsSync(stale)).toBe(false);
      expect(existsSync(fresh)).toBe(true);
      expect(existsSync(busy)).toBe(true);
    } finally {
      sleeper.kill("SIGKILL");
      await sleeper.exited;
      for (const dir of [stale, fresh, busy]) {
        try {
          rmdirSync(dir);
        } catch {
          /* gone */
        }
      }
    }
  }, 60_000);
});

// What a program makes in its sandbox is its to lock: as an ordinary user's its files are the
// user's own, and a directory it leaves without permissions (chmod 000) stopped the removal of
// the sandbox's directory (EACCES): the run exited 125 in place of the program's status, and
// the directory stayed behind. Likewise for destroy.
describe("files the program locked go with its sandbox", () => {
  // And one nested past PATH_MAX (1000 levels, 8 kB), locked at the bottom.
  const deep = `python3 -c 'import os; os.chdir("/tmp"); [(os.mkdir("nested"), os.chdir("nested")) for _ in range(1000)]; os.chmod(".", 0)'`;
  // A link to a host directory (0500, as removeTree's chmod would change it if it followed links):
  // the link is followed by nothing on the host side.
  const lock = (victim: string) => `mkdir -p /tmp/d/e ~/h/i; touch /tmp/d/e/f ~/h/i/g; ln -s ${victim} /tmp/d/victim; ln -s ${victim} ~/h/victim; chmod 000 /tmp/d/e /tmp/d ~/h/i; chmod 500 ~/h; ${deep}`;
  for (const { user, mechanism } of MATRIX.filter((m) => isRoot || m.user === "ordinary")) {
    test(`${user === "root" ? "root" : "an ordinary user"}, ${mechanism}: a one-shot run and a kept sandbox's destroy`, async () => {
      const m = machineFor(user, mechanism);
      m.env.PATH = "/usr/local/bin:/usr/bin:/bin"; // the system's python3
      const victim = mkdtempSync(join(tmpdir(), "sandboxes-victim-"));
      writeFileSync(join(victim, "kept"), "");
      chmodSync(victim, 0o500);
      try {
        const once = await m.run(["run", `${lock(victim)}; exit 3`]);
        expect({ code: once.code, stderr: once.stderr }).toEqual({ code: 3, stderr: "" });
        expect(readdirSync(m.stateDir)).toEqual([]);
        const kept = await m.run(["run", "--keep", "-n", "locked", lock(victim)]);
        expect(kept.code).toBe(0);
        const id = /kept sandbox (local-[0-9a-f]{12})/.exec(kept.stderr)?.[1];
        expect(id).toBeDefined();
        const destroyed = await m.run(["destroy", "locked"]);
        expect(destroyed.code).toBe(0);
        await expectGone(m, id!);
        // The host directory the links name is as it was.
        expect(statSync(victim).mode & 0o777).toBe(0o500);
        expect(readdirSync(victim)).toEqual(["kept"]);
      } finally {
        m.remove();
        chmodSync(victim, 0o700);
        rmSync(victim, { recursive: true, force: true });
      }
    }, 60_000);
  }
});
