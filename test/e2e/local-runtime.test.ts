/**
 * Local sandboxes that live (issue 10, part 3): a kept sandbox keeps its processes across
 * `run`/`exec` and the CLI's exit (a process an exec detached too), `destroy` ends them all,
 * `list` tells running from stopped, a stopped sandbox starts again over its files (after a
 * reboot too, by `exec` or `run --reuse`, one holder however many commands race to start it), a
 * one-shot run leaves nothing behind (not even a double-forked daemon), and a timeout or Ctrl-C
 * ends one command's process tree, not the sandbox. Through the compiled
 * binary, as root and as an ordinary user, with bubblewrap and with util-linux unshare.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { keptId, NOBODY } from "../helpers";
import { eventually, holderState, isRoot, type Machine, machineFor, MATRIX, processesWith, running } from "./_local-users";

/** A TCP server in perl (always there on Debian) that greets every connection once. */
const server = (port: number, marker: string) =>
  `perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalAddr => "127.0.0.1:${port}", Listen => 5, ReuseAddr => 1) or die; while ($c = $s->accept) { print $c "hello from web\\n"; close $c }' ${marker}`;
/** A client that retries until the server listens (it starts in the background). */
const client = (port: number) =>
  `for i in $(seq 1 100); do perl -MIO::Socket::INET -e '$c = IO::Socket::INET->new("127.0.0.1:${port}") or exit 1; print <$c>' && exit 0; sleep 0.1; done; exit 1`;

/** The server marked `marker` runs, once, in the sandbox named web and answers an exec there. */
async function expectServing(m: Machine, port: number, marker: string): Promise<void> {
  expect(await eventually(() => processesWith(marker).length === 1)).toBe(true);
  const answered = await m.run(["exec", "web", client(port)]);
  expect(answered.stdout).toBe("hello from web\n");
  expect(answered.code).toBe(0);
}

/** Prints the pid namespace the command runs in. */
const PID_NAMESPACE = "readlink /proc/self/ns/pid";

/** "ID state" of each sandbox `list` shows. */
const states = async (m: Machine) => JSON.parse((await m.run(["list", "--json"])).stdout).sandboxes.map((s: { id: string; state: string }) => `${s.id} ${s.state}`);

/**
 * Makes a kept sandbox named box with `run --keep` of `command`, which list shows running, then
 * kills its holder, first process and proxy, as a crash would, and waits until list shows it
 * stopped. Returns its id.
 */
async function stoppedBox(m: Machine, command: string): Promise<string> {
  const first = await m.run(["run", "--keep", "-n", "box", command]);
  expect(first.code).toBe(0);
  const id = keptId(first.stderr)!;
  expect(await states(m)).toEqual([`${id} running`]);
  const state = holderState(m, id);
  const pids = [state.target.pid, state.holder.pid, state.proxy?.pid].filter((pid): pid is number => pid !== undefined);
  for (const pid of pids) process.kill(pid, "SIGKILL");
  expect(await eventually(() => pids.every((pid) => !running(pid)))).toBe(true);
  expect(await states(m)).toEqual([`${id} stopped`]);
  return id;
}

const unique = () => Math.random().toString(36).slice(2, 10);
/** A sleep whose command line is unique to one test, so /proc tells its processes apart. */
const marked = () => `${100 + Math.floor(Math.random() * 800)}.${Math.floor(Math.random() * 1e6)}`;

for (const { user, mechanism } of MATRIX) {
  describe.skipIf(!isRoot)(`local sandboxes that live (${user}, ${mechanism})`, () => {
    const machines: Machine[] = [];
    const machine = () => {
      const made = machineFor(user, mechanism);
      machines.push(made);
      return made;
    };
    afterAll(async () => {
      for (const made of machines) {
        const listed = await made.run(["list", "-p", "local", "--json"]);
        for (const sandbox of JSON.parse(listed.stdout || "{\"sandboxes\":[]}").sandboxes ?? []) await made.run(["destroy", sandbox.id]);
        made.remove();
      }
    }, 120_000);

    test("a server started by run --keep answers a later exec, after the CLI exited; destroy ends it", async () => {
      const m = machine();
      const marker = `web-${unique()}`;
      const first = await m.run(["run", "--keep", "-n", "web", `${server(8123, marker)} >/dev/null 2>&1 & echo started`]);
      expect(first.stdout).toBe("started\n");
      expect(first.code).toBe(0);
      // The CLI has exited; the server still runs on the host, inside the sandbox.
      await expectServing(m, 8123, marker);
      const state = holderState(m, keptId(first.stderr)!);
      expect((await m.run(["destroy", "web"])).code).toBe(0);
      expect(await eventually(() => processesWith(marker).length === 0)).toBe(true);
      for (const pid of [state.holder.pid, state.target.pid, state.proxy?.pid]) if (pid) expect(await eventually(() => !running(pid))).toBe(true);
    }, 90_000);

    test("list says running while the holder lives and stopped once it is gone (a reboot); exec starts it again over its files", async () => {
      const m = machine();
      const id = await stoppedBox(m, "echo kept > ~/note");
      const again = await m.run(["exec", "box", "cat ~/note"]);
      expect(again.stdout).toBe("kept\n");
      expect(again.code).toBe(0);
      expect(await states(m)).toEqual([`${id} running`]);
    }, 90_000);

    test("a link the program left where a mount point goes is removed when the sandbox starts again, never followed out of it", async () => {
      const m = machine();
      // A toolchain directory in the caller's home is bound at the same path in the sandbox's.
      mkdirSync(join(m.env.HOME!, ".cargo/bin"), { recursive: true });
      const outside = mkdtempSync(join(tmpdir(), "sandboxes-outside-"));
      chmodSync(outside, 0o777);
      if (user === "ordinary") for (const dir of [".cargo", ".cargo/bin"]) chownSync(join(m.env.HOME!, dir), NOBODY, NOBODY);
      try {
        await stoppedBox(m, `mv ~/.cargo ~/.cargo-old && ln -s ${outside} ~/.cargo`);
        const again = await m.run(["exec", "box", "test -d ~/.cargo/bin && ! test -L ~/.cargo && echo a directory again"]);
        expect({ code: again.code, stdout: again.stdout, stderr: again.stderr }).toEqual({ code: 0, stdout: "a directory again\n", stderr: "" });
        // Nothing was made where the link pointed (as root, our mkdir and chown would have been root's).
        expect(readdirSync(outside)).toEqual([]);
      } finally {
        rmSync(outside, { recursive: true, force: true });
      }
    }, 90_000);

    test("ten commands that find a stopped sandbox at once start one holder, and all run in it", async () => {
      const m = machine();
      const id = await stoppedBox(m, "true");
      // execs and --reuse runs race to start it: the per-sandbox lock lets one start it.
      const racers = Array.from({ length: 10 }, (_, i) => m.run(i % 2 ? ["exec", "box", PID_NAMESPACE] : ["run", "--reuse", "-n", "box", PID_NAMESPACE]));
      const results = await Promise.all(racers);
      expect(results.map((r) => r.code)).toEqual(Array(10).fill(0));
      const namespaces = new Set(results.map((r) => r.stdout));
      expect(namespaces.size).toBe(1);
      // The one namespace is the recorded holder's, which runs, and no second sandbox was made.
      const state = holderState(m, id);
      expect(running(state.target.pid)).toBe(true);
      expect([...namespaces][0]).toBe(`${readlinkSync(`/proc/${state.target.pid}/ns/pid`)}\n`);
      expect(await states(m)).toEqual([`${id} running`]);
    }, 120_000);

    test("after a reboot (holder gone, its pids another boot's) run --reuse starts the sandbox over its files; list says stopped, then running", async () => {
      const m = machine();
      const id = await stoppedBox(m, "echo kept > ~/note");
      // After a reboot the recorded pids may belong to anyone: here to a live process of the test,
      // with its real start time, recorded under another boot id. It must not be taken for the
      // holder, nor be killed.
      const decoy = Bun.spawn(["sleep", marked()], { stdout: "ignore", stderr: "ignore" });
      const decoyId = { pid: decoy.pid, start: readFileSync(`/proc/${decoy.pid}/stat`, "utf8").split(") ")[1]!.split(" ")[19] };
      const file = join(m.stateDir, id, "holder.json");
      writeFileSync(file, JSON.stringify({ holder: decoyId, target: decoyId, boot: "00000000-0000-0000-0000-000000000000" }));
      try {
        expect(await states(m)).toEqual([`${id} stopped`]);
        const again = await m.run(["run", "--reuse", "-n", "box", "cat ~/note"]);
        expect(again.stdout).toBe("kept\n");
        expect(again.stderr).toContain(`reusing sandbox ${id}`);
        expect(again.code).toBe(0);
        expect(await states(m)).toEqual([`${id} running`]);
        expect(running(decoy.pid)).toBe(true);
      } finally {
        decoy.kill("SIGKILL");
      }
    }, 90_000);

    test("a process detached by exec lives on after the exec returns (Docker's exec model), and destroy ends it", async () => {
      const m = machine();
      const marker = `web-${unique()}`;
      expect((await m.run(["run", "--keep", "-n", "web", "true"])).code).toBe(0);
      // Its stdout and stderr are the exec's own pipes: the exec returns all the same.
      const started = await m.run(["exec", "web", `setsid nohup ${server(8124, marker)} & echo started`]);
      expect(started.stdout).toBe("started\n");
      expect(started.code).toBe(0);
      await expectServing(m, 8124, marker);
      expect(processesWith(marker).length).toBe(1);
      expect((await m.run(["destroy", "web"])).code).toBe(0);
      expect(await eventually(() => processesWith(marker).length === 0)).toBe(true);
    }, 90_000);

    test("a one-shot run leaves no double-forked, setsid daemon behind", async () => {
      const m = machine();
      const duration = marked();
      const r = await m.run(["run", `(setsid sh -c 'sleep ${duration} & sleep ${duration}' >/dev/null 2>&1 &) ; echo spawned`]);
      expect(r.stdout).toBe("spawned\n");
      expect(r.code).toBe(0);
      expect(await eventually(() => processesWith(`sleep ${duration}`).length === 0)).toBe(true);
      expect((await m.run(["list", "--json"])).stdout).toContain('"sandboxes": []');
    }, 60_000);

    test("a one-shot run leaves no process behind", async () => {
      const m = machine();
      const duration = marked();
      const r = await m.run(["run", `sleep ${duration} & setsid sleep ${duration} & echo spawned`]);
      expect(r.stdout).toBe("spawned\n");
      expect(r.code).toBe(0);
      expect(await eventually(() => processesWith(`sleep ${duration}`).length === 0)).toBe(true);
      expect((await m.run(["list", "--json"])).stdout).toContain('"sandboxes": []');
    }, 60_000);

    test("a timeout kills the command's whole process tree, not the sandbox nor what it started before", async () => {
      const m = machine();
      const before = marked();
      const during = marked();
      expect((await m.run(["run", "--keep", "-n", "t", `sleep ${before} >/dev/null 2>&1 &`])).code).toBe(0);
      const r = await m.run(["exec", "-t", "1", "t", `sleep ${during} & (setsid sleep ${during} &) ; sleep ${during}`]);
      expect(r.code).toBe(124);
      expect(await eventually(() => processesWith(`sleep ${during}`).length === 0)).toBe(true);
      expect(processesWith(`sleep ${before}`).length).toBe(1);
      expect((await m.run(["exec", "t", "echo still here"])).stdout).toBe("still here\n");
    }, 60_000);

    test("a timeout kills nothing outside the sandbox: the process that writes the exec's stdin pipe lives on", async () => {
      const m = machine();
      const writer = marked();
      expect((await m.run(["run", "--keep", "-n", "p", "true"])).code).toBe(0);
      // The writer holds the pipe's other end, and the shell does not wait for it (it is in the
      // background of the pipeline's first part, which ends at once).
      const script = `{ sleep ${writer} 2>/dev/null & } | "$@" exec -t 1 p cat; echo "exec:$?"`;
      const shell = Bun.spawn(["sh", "-c", script, "sh", ...m.command], { env: m.env, cwd: m.cwd, stdout: "pipe", stderr: "pipe" });
      try {
        expect(await new Response(shell.stdout).text()).toBe("exec:124\n");
        await shell.exited;
        expect(processesWith(`sleep ${writer}`).length).toBe(1);
      } finally {
        for (const pid of processesWith(`sleep ${writer}`)) process.kill(pid, "SIGKILL");
      }
    }, 60_000);

    test("Ctrl-C kills the command's process tree, not the sandbox", async () => {
      const m = machine();
      const before = marked();
      const during = marked();
      expect((await m.run(["run", "--keep", "-n", "c", `sleep ${before} >/dev/null 2>&1 &`])).code).toBe(0);
      const child = m.spawn(["exec", "c", `sleep ${during} & sleep ${during} & echo started; wait`]);
      const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
      expect(new TextDecoder().decode((await reader.read()).value)).toBe("started\n");
      reader.releaseLock();
      child.kill("SIGINT");
      expect(await child.exited).toBe(130);
      expect(await eventually(() => processesWith(`sleep ${during}`).length === 0)).toBe(true);
      expect(processesWith(`sleep ${before}`).length).toBe(1);
    }, 60_000);
  });
}

describe("an argument list beyond the kernel's limit (issue 13, case 5)", () => {
  test("says the argument list is too long and suggests --file, stdin or --upload, exit 125", async () => {
    const { cli, freshEnv } = await import("../helpers");
    const { env } = freshEnv();
    // Each argument is small, so the CLI itself starts; joined into one command line they pass
    // the kernel's 128 KiB limit for a single argument.
    const words = Array.from({ length: 2000 }, (_, i) => `word-${i}-${"x".repeat(90)}`);
    const r = await cli(["run", "--", "echo", ...words], { env });
    expect(r.code).toBe(125);
    expect(r.stdout).toBe("");
    const lines = r.stderr.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toStartWith("sandboxes: the argument list is too long");
    expect(lines[0]).toContain("--file");
    expect(lines[0]).toContain("stdin");
    expect(lines[0]).toContain("--upload");
    expect(lines[0]).not.toContain("bubblewrap");
    expect(JSON.parse((await cli(["list", "--json"], { env })).stdout).sandboxes).toEqual([]);
  }, 60_000);
});
