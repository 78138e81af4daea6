/**
 * Hostile output through the compiled binary: captured output (--json) is bounded by
 * --max-output and says what it cut; memory stays within a bound derived from the cap, also for
 * a program that never stops writing; signals during a flood, and SIGTERM while the reader of our
 * stdout has stalled (local, docker, the E2B fake), clean up and exit promptly; the checks we run
 * through a sandbox's `sh` stop when a replaced one answers without end; names a sandbox chose
 * reach the user's terminal in our lines as escapes, never as control sequences.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, constants, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startFakeE2B, type FakeE2B } from "../fakes/e2b/server";
import { BUSYBOX, containersLeft } from "./_docker-helpers";
import { assertMachine, BINARY, cli, dockerSocket, keptId, localSandboxesLeft, machines, peakMemory } from "../helpers";

const { machine, removeAll } = machines();
afterAll(removeAll);

const MiB = 1024 * 1024;


describe("bounded capture with --json", () => {
  test("run --json --max-output 4m yes stays within a bound derived from the cap, and reports the cut", async () => {
    const { env } = machine();
    const idle = await peakMemory(["run", "--json", "true"], env);
    const cap = 4 * MiB;
    // -t only ends the flood; what is asserted is memory, not time.
    const flood = await peakMemory(["run", "--json", "--max-output", "4m", "-t", "4", "yes"], env);
    expect(flood.code).toBe(124);
    // Two streams at the cap, their text and the pipes' churn: far below the GBs of an unbounded capture.
    expect(flood.peakBytes).toBeLessThan(idle.peakBytes + 8 * cap + 192 * MiB);
    // The default cap (16 MiB per stream) bounds it just the same.
    const byDefault = await peakMemory(["run", "--json", "-t", "4", "yes"], env);
    expect(byDefault.code).toBe(124);
    expect(byDefault.peakBytes).toBeLessThan(idle.peakBytes + 8 * 16 * MiB + 192 * MiB);
    const doc = JSON.parse((await cli(["run", "--json", "--max-output", "1k", "-t", "2", "yes"], { env })).stdout);
    expect(doc).toMatchObject({ exit_code: 124, timed_out: true, truncated: true, stdout_truncated: true, stderr_truncated: false, stderr_bytes: 0 });
    expect(doc.stdout).toBe("y\n".repeat(512));
    expect(doc.stdout_bytes).toBeGreaterThan(1024);
    expect(localSandboxesLeft(env)).toEqual([]);
  }, 60_000);

  test("at the cap the program is not blocked: it runs to its own end and exit code", async () => {
    const { env } = machine();
    const r = await cli(["run", "--json", "--max-output", "10", "head -c 3000000 /dev/zero; echo done >&2; exit 7"], { env });
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ exit_code: 7, stdout_bytes: 3_000_000, stdout_truncated: true, stderr: "done\n", stderr_bytes: 5, stderr_truncated: false, truncated: true });
    expect(doc.stdout).toBe("\0".repeat(10));
  });

  test("below the cap nothing is cut, and every byte round-trips through stdout_base64", async () => {
    const { env, home } = machine();
    const bytes = new Uint8Array(300_000).map((_, i) => (i * 7919 + (i >> 8)) % 256);
    await Bun.write(join(home, "blob.bin"), bytes);
    const r = await cli(["run", "--json", "--upload", `${join(home, "blob.bin")}:/tmp/blob.bin`, "cat /tmp/blob.bin"], { env });
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ exit_code: 0, truncated: false, stdout_truncated: false, stdout_bytes: 300_000 });
    expect(new Uint8Array(Buffer.from(doc.stdout_base64, "base64"))).toEqual(bytes);
    expect(doc.stdout).toBe(new TextDecoder().decode(bytes));
  });

  test("the cut never splits a UTF-8 character, so no base64 is needed for a cut text", async () => {
    const { env } = machine();
    const doc = JSON.parse((await cli(["run", "--json", "--max-output", "5", "printf 'aéé'"], { env })).stdout);
    expect(doc).toMatchObject({ stdout: "aéé", stdout_bytes: 5, truncated: false });
    const cut = JSON.parse((await cli(["run", "--json", "--max-output", "4", "printf 'aéé'"], { env })).stdout);
    expect(cut).toMatchObject({ stdout: "aé", stdout_bytes: 5, truncated: true });
    expect(cut.stdout_base64).toBeUndefined();
  });

  test("exec --json honours --max-output too", async () => {
    const { env } = machine();
    const id = /kept sandbox (\S+)/.exec((await cli(["run", "--keep", "true"], { env })).stderr)![1]!;
    try {
      const doc = JSON.parse((await cli(["exec", id, "--json", "--max-output", "3", "echo hello; echo oops >&2"], { env })).stdout);
      expect(doc).toMatchObject({ stdout: "hel", stderr: "oop", stdout_bytes: 6, stderr_bytes: 5, truncated: true, stdout_truncated: true, stderr_truncated: true });
    } finally {
      await cli(["destroy", id], { env });
    }
  });

  test("--max-output without --json, or a bad size, is one line and exit 125, before any sandbox", async () => {
    const { env } = machine();
    const streamed = await cli(["run", "--max-output", "1m", "echo hi"], { env });
    expect({ code: streamed.code, stdout: streamed.stdout }).toEqual({ code: 125, stdout: "" });
    expect(streamed.stderr).toBe("sandboxes: --max-output caps the output kept for --json; streamed output is never cut: add --json or drop --max-output\n");
    for (const bad of ["-1", "2g", "lots", "1.5m"]) {
      const r = await cli(["run", "--json", `--max-output=${bad}`, "true"], { env });
      expect(r.code).toBe(125);
      expect(JSON.parse(r.stdout).error.code).toBe("bad_value");
    }
  });
});

/** Processes whose command line contains `marker` (the sandboxed program's own argument), or starts with `prefix`. */
function processesWith(marker: string, prefix = ""): number[] {
  const found: number[] = [];
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "latin1");
      if (cmdline.startsWith(prefix) && cmdline.includes(marker)) found.push(Number(pid));
    } catch {
      /* gone meanwhile */
    }
  }
  return found;
}

/** Waits for a condition, polling; fails after `limit` ms rather than hanging the suite. */
async function until(condition: () => boolean, what: string, limit = 30_000): Promise<void> {
  const deadline = Date.now() + limit;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await Bun.sleep(50);
  }
}

describe("signals during a flood of output clean up", () => {
  const ITERATIONS = Number(process.env.SIGNAL_ITERATIONS ?? 10);
  const EXPECTED = { SIGTERM: 143, SIGINT: 130, SIGHUP: 129 } as const;
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    test(`${signal} to the whole process group (as timeout and terminals send it) while yes floods: exit ${EXPECTED[signal]}, no sandbox, no process left`, async () => {
      for (let i = 0; i < ITERATIONS; i++) {
        const json = i % 2 === 1;
        const { env } = machine();
        const marker = `flood-${signal}-${i}-${Math.random().toString(36).slice(2)}`;
        // Its own process group, so the signal can reach all of it, as `timeout 2 sandboxes run yes` does.
        // The flood goes to /dev/null, as in `timeout 2 sandboxes run yes > /dev/null`.
        const child = Bun.spawn([BINARY, "run", ...(json ? ["--json", "--max-output", "1m"] : []), `yes ${marker}`], { env, stdin: "ignore", stdout: json ? "pipe" : "ignore", stderr: "pipe", detached: true });
        const stdout = json ? new Response(child.stdout as ReadableStream<Uint8Array>).text() : Promise.resolve("");
        const stderr = new Response(child.stderr).text();
        // `yes` itself, not just bwrap setting up: the flood is under way.
        await until(() => processesWith(marker, "yes\0").length > 0, `yes ${marker} to run`);
        process.kill(-child.pid, signal);
        process.kill(child.pid, signal);
        const code = await child.exited;
        const [out, err] = await Promise.all([stdout, stderr]);
        expect({ iteration: i, json, code, left: localSandboxesLeft(env), processes: processesWith(marker) }).toEqual({ iteration: i, json, code: EXPECTED[signal], left: [], processes: [] });
        // The error document, or the run's own when the program died of the signal first.
        if (json) expect(JSON.parse(out).error?.exit_code ?? JSON.parse(out).exit_code).toBe(EXPECTED[signal]);
        // bwrap shares our process group, so the program may die of the signal before we see it.
        else expect(["", `sandboxes: interrupted by ${signal}\n`]).toContain(err);
      }
    }, 180_000);
  }
});

/**
 * A pipe whose reader never reads (as in `sandboxes run yes | sleep 1000`): the test holds the
 * read end of a FIFO and leaves it alone, so it fills up and every write to it waits.
 */
function stalledPipe(): { writer: number; unread(): string; close(): void } {
  const dir = mkdtempSync(join(tmpdir(), "sandboxes-stalled-"));
  const path = join(dir, "out");
  if (Bun.spawnSync(["mkfifo", path]).exitCode !== 0) throw new Error("mkfifo failed");
  const reader = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const writer = openSync(path, constants.O_WRONLY);
  return {
    writer,
    /** What sits in the pipe, read once the writers are gone. */
    unread() {
      const chunks: Buffer[] = [];
      const buffer = Buffer.alloc(1 << 16);
      for (;;) {
        let n = 0;
        try {
          n = readSync(reader, buffer);
        } catch {
          break; // EAGAIN: nothing more
        }
        if (n === 0) break;
        chunks.push(Buffer.from(buffer.subarray(0, n)));
      }
      return Buffer.concat(chunks).toString();
    },
    close() {
      for (const fd of [reader, writer]) {
        try {
          closeSync(fd);
        } catch {
          /* closed already */
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Whether a thread of one of these processes sleeps in a write to a full pipe. */
function blockedOnPipe(pids: number[]): boolean {
  return pids.some((pid) => {
    try {
      return readdirSync(`/proc/${pid}/task`).some((tid) => /pipe_write/.test(readFileSync(`/proc/${pid}/task/${tid}/wchan`, "utf8")));
    } catch {
      return false; // gone meanwhile
    }
  });
}

/**
 * Starts the binary with its stdout on a pipe nobody reads, waits until its writes (or the
 * program's, when it writes to our stdout directly) are stuck on that pipe, sends SIGTERM to
 * the binary alone and waits for it to exit.
 */
async function sigtermWhileStalled(args: string[], env: Record<string, string>, marker: string, ready: () => boolean = () => true): Promise<{ code: number; stderr: string; unread: string }> {
  const pipe = stalledPipe();
  try {
    const child = Bun.spawn([BINARY, ...args], { env, stdin: "ignore", stdout: pipe.writer, stderr: "pipe" });
    closeSync(pipe.writer);
    const stderr = new Response(child.stderr).text();
    await until(() => ready() && blockedOnPipe([child.pid, ...processesWith(marker)]), "the output to stall on the unread pipe");
    child.kill("SIGTERM");
    const code = await child.exited;
    return { code, stderr: await stderr, unread: pipe.unread() };
  } finally {
    pipe.close();
  }
}

const INTERRUPTED = "sandboxes: interrupted by SIGTERM\n";
const uniqueMarker = (what: string) => `stalled-${what}-${Math.random().toString(36).slice(2)}`;

describe("SIGTERM while the reader of our stdout has stalled: exit 143, one line, nothing left", () => {
  const runs: Array<[string, (marker: string) => string[]]> = [
    ["run -p local (the program writes to our stdout itself)", () => []],
    ["run -p local --name (create, exec, destroy: the output passes through sandboxes)", (marker) => ["--name", marker]],
  ];
  for (const [name, flags] of runs) {
    test(name, async () => {
      const { env } = machine();
      const marker = uniqueMarker("run");
      const r = await sigtermWhileStalled(["run", "-p", "local", ...flags(marker), `yes ${marker}`], env, marker);
      expect({ code: r.code, stderr: r.stderr, processes: processesWith(marker) }).toEqual({ code: 143, stderr: INTERRUPTED, processes: [] });
      expect(JSON.parse((await cli(["list", "-p", "local", "--json"], { env })).stdout).sandboxes).toEqual([]);
      expect(localSandboxesLeft(env)).toEqual([]);
    }, 60_000);
  }

  test("exec in a kept local sandbox: the command is stopped, the sandbox is kept", async () => {
    const { env } = machine();
    const id = keptId((await cli(["run", "-p", "local", "--keep", "true"], { env })).stderr)!;
    try {
      const marker = uniqueMarker("exec");
      const r = await sigtermWhileStalled(["exec", id, `yes ${marker}`], env, marker);
      expect({ code: r.code, stderr: r.stderr, processes: processesWith(marker) }).toEqual({ code: 143, stderr: INTERRUPTED, processes: [] });
      const listed = JSON.parse((await cli(["list", "-p", "local", "--json"], { env })).stdout).sandboxes;
      expect(listed.map((s: { id: string; state: string }) => [s.id, s.state])).toEqual([[id, "running"]]);
    } finally {
      await cli(["destroy", id], { env });
    }
  }, 60_000);

  test("run --json, stalled while the document is written after the run", async () => {
    const { env } = machine();
    const marker = uniqueMarker("json");
    // 4 MB of captured output: its document cannot fit in the pipe. The sandbox is gone once the run is over.
    const r = await sigtermWhileStalled(["run", "-p", "local", "--json", "--max-output", "4m", `yes ${marker} | head -c 4000000`], env, marker, () => localSandboxesLeft(env).length === 0);
    // The document is cut short, so the line goes to stderr.
    expect({ code: r.code, stderr: r.stderr, processes: processesWith(marker), left: localSandboxesLeft(env) }).toEqual({ code: 143, stderr: INTERRUPTED, processes: [], left: [] });
    // What made it into the pipe is the start of the document.
    expect(r.unread.startsWith('{\n  "sandbox_id": ')).toBe(true);
  }, 60_000);

  describe("docker", () => {
    beforeAll(() => assertMachine({ docker: { images: [BUSYBOX] } }), 30_000);

    test("run -p docker (output through the engine's stream, paused while the reader stalls)", async () => {
      const { env } = machine({ DOCKER_HOST: `unix://${dockerSocket()}` });
      const marker = uniqueMarker("docker");
      const label = `e2e=${marker}`;
      const r = await sigtermWhileStalled(["run", "-p", "docker", "--image", BUSYBOX, "--network", "none", "-l", label, `yes ${marker}`], env, marker);
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 143, stderr: INTERRUPTED });
      expect(await containersLeft("e2e", marker)).toEqual([]);
      expect(JSON.parse((await cli(["list", "-p", "docker", "-l", label, "--json"], { env })).stdout).sandboxes).toEqual([]);
      expect(processesWith(marker)).toEqual([]);
    }, 90_000);
  });

  describe("a cloud provider (the E2B fake)", () => {
    let fake: FakeE2B;
    beforeAll(async () => {
      fake = await startFakeE2B();
    });
    afterAll(() => fake?.close());

    test("run -p e2b", async () => {
      const { env } = machine(fake.env());
      const marker = uniqueMarker("e2b");
      const r = await sigtermWhileStalled(["run", "-p", "e2b", `yes ${marker}`], env, marker);
      expect({ code: r.code, stderr: r.stderr, sandboxes: fake.sandboxes.size }).toEqual({ code: 143, stderr: INTERRUPTED, sandboxes: 0 });
      expect(JSON.parse((await cli(["list", "-p", "e2b", "--json"], { env })).stdout).sandboxes).toEqual([]);
      await until(() => processesWith(marker).length === 0, "the fake's command to be killed");
    }, 60_000);
  });
});

// A sandbox's root can replace its `sh` (Docker, the cloud providers; on local /usr is read-only):
// the checks cp, run and the MCP tools make through it must not read its answer without end.
describe("names a sandbox chose, in our own lines", () => {
  // ESC starts the sequences that retitle (OSC 0), clear (CSI 2J) or write to the clipboard (OSC
  // 52); a newline would add a line that looks like ours; U+202E shows a name reversed.
  const NAME = "a\x1b]0;pwned\x07b\x1b[2Jc\nsandboxes: all good\u202ed";
  const SHOWN = "a\\x1b]0;pwned\\x07b\\x1b[2Jc\\nsandboxes: all good\\u202ed";
  const CONTROLS = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/;

  test("cp's skipped entries and its refusals show them as escapes: one line each, no control character", async () => {
    const { env, home } = machine();
    // The name reaches the sandbox's shell as an argument: the command line stays plain.
    const kept = await cli(["run", "--keep", "-n", "names", "--", "sh", "-c", 'mkdir -p "/tmp/d/$1" && mkfifo "/tmp/d/$1/fifo" && echo x > "/tmp/f$1"', "sh", NAME], { env });
    expect(kept.code).toBe(0);
    const id = keptId(kept.stderr)!;
    try {
      const copied = await cli(["cp", "names:/tmp/d", join(home, "out")], { env });
      expect(copied.code).toBe(0);
      expect(copied.stderr).not.toMatch(CONTROLS);
      const lines = copied.stderr.split("\n").filter((line) => line.includes("all good"));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`(d/${SHOWN}/fifo: unsupported entry type: FIFO)`);
      // A refusal, on the error line, quotes the name the same way.
      mkdirSync(join(home, "dir", `f${NAME}`), { recursive: true });
      const refused = await cli(["cp", `names:/tmp/f${NAME}`, join(home, "dir")], { env });
      expect(refused.stderr).toBe(`sandboxes: cannot overwrite directory ${join(home, "dir")}/f${SHOWN} with a non-directory: copy to another path, or move what is there out of the way\n`);
      expect(refused.code).toBe(1);
    } finally {
      await cli(["destroy", id], { env });
    }
  }, 60_000);
});

describe("a sandbox whose `sh` answers without end", () => {
  beforeAll(() => assertMachine({ docker: { images: [BUSYBOX] } }), 30_000);

  test("cp stops its check past 64 KiB: one line, exit 1; the archive API still works", async () => {
    const { env, home } = machine({ DOCKER_HOST: `unix://${dockerSocket()}` });
    const marker = uniqueMarker("endless-sh");
    const kept = await cli(["run", "-p", "docker", "--image", BUSYBOX, "--network", "none", "--keep", "-l", `e2e=${marker}`, "true"], { env });
    const id = keptId(kept.stderr)!;
    try {
      await Bun.write(join(home, "small.txt"), "hi\n");
      // The same copy while the sandbox's `sh` is its own: the process's size for a cp.
      const idle = await peakMemory(["cp", join(home, "small.txt"), `${id}:/tmp/x`], env);
      expect(idle.code).toBe(0);
      // `sh -c …` becomes `busybox yes /bin/sh -c …`: a line, again and again.
      expect((await cli(["exec", id, 'rm /bin/sh && printf "#!/bin/busybox yes\\n" > /bin/sh && chmod +x /bin/sh'], { env })).code).toBe(0);
      const said = await peakMemory(["cp", join(home, "small.txt"), `${id}:/tmp/x`], env);
      expect(said.code).toBe(1);
      // The check stops reading at 64 KiB: what it held is bounded, however long `yes` goes on.
      expect(said.peakBytes).toBeLessThan(idle.peakBytes + 32 * MiB);
      expect(said.stderr).toBe(`sandboxes: sandbox ${id} answered a check of ours with more than 64 KiB: its \`sh\` may have been replaced: destroy it\n`);
      expect((await cli(["cp", `${id}:/etc/hostname`, join(home, "hostname")], { env })).code).toBe(0);
    } finally {
      expect((await cli(["destroy", id], { env })).code).toBe(0);
    }
    expect(await containersLeft("e2e", marker)).toEqual([]);
  }, 90_000);

  test("exec's timeout kills the command from this machine: a replaced sh keeps nothing running", async () => {
    const { env } = machine({ DOCKER_HOST: `unix://${dockerSocket()}` });
    const marker = uniqueMarker("endless-sh-exec");
    const kept = await cli(["run", "-p", "docker", "--image", BUSYBOX, "--network", "none", "--keep", "-l", `e2e=${marker}`, "true"], { env });
    const id = keptId(kept.stderr)!;
    // Every process whose command line names this test's sleep: the command, and (before) the killer.
    const left = () =>
      readdirSync("/proc").filter((pid) => {
        try {
          return /^\d+$/.test(pid) && readFileSync(`/proc/${pid}/cmdline`, "latin1").includes("sleep 30417");
        } catch {
          return false;
        }
      });
    try {
      expect((await cli(["exec", id, 'rm /bin/sh && printf "#!/bin/busybox yes\\n" > /bin/sh && chmod +x /bin/sh'], { env })).code).toBe(0);
      // The command is `sh -c 'sleep 30417'`, so `yes` floods; the container's sh cannot kill it,
      // being `yes` too: the killer, from this machine, needs none of the container's programs.
      const child = Bun.spawn([BINARY, "exec", "-t", "1", id, "sleep 30417"], { env, stdin: "ignore", stdout: "ignore", stderr: "pipe" });
      const [stderr, code] = await Promise.all([new Response(child.stderr).text(), child.exited]);
      expect(code).toBe(124);
      expect(stderr).toContain("command timed out after 1s; its process tree was killed (exit 124)");
      for (let i = 0; i < 100 && left().length; i++) await Bun.sleep(20);
      expect(left()).toEqual([]);
    } finally {
      expect((await cli(["destroy", id], { env })).code).toBe(0);
    }
    expect(await containersLeft("e2e", marker)).toEqual([]);
  }, 90_000);
});
