/**
 * A signal that arrives while a local sandbox is being set up leaks nothing (issue 13, case 3, at
 * set-up time): no cgroup, no process (holder, egress proxy, network namespace: all die with
 * their processes), no files, no registry entry, and the program never starts. The test knob
 * SANDBOXES_TEST_PAUSE_AT=STAGE makes the binary stop at a stage of its set-up and say so on
 * stderr; the test signals it there. Without the knob, a loop signals the binary as soon as the
 * sandbox's first process shows. Through the compiled binary, as root (cgroups), with
 * bubblewrap and with util-linux unshare.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { childrenOf } from "../../src/providers/local/holder";
import { cgroupDirs, isRoot, type Machine, machineFor, processesWith } from "./_local-users";

type Stage = "files" | "proxy" | "holder-proxy" | "holder";

/**
 * The CASES: a one-shot run (the program runs directly under the wrapper, the proxy in the CLI);
 * a one-shot run of a file (the runtime asked in one such sandbox, the program run in another
 * that starts with the file); and a run of a file with -w, in a sandbox created with a detached
 * holder and proxy, then removed.
 */
const CASES: Array<{ how: string; args: (m: Machine) => string[]; stages: Stage[] }> = [
  { how: "one-shot run", args: () => ["run", "--memory", "64m", "--pids", "100", "echo ran; sleep 30"], stages: ["files", "proxy"] },
  { how: "one-shot run of a file", args: (m) => ["run", "--memory", "64m", "--pids", "100", "--file", join(m.cwd, "main.sh")], stages: ["files", "proxy"] },
  { how: "run of a file in a sandbox with a holder (-w)", args: (m) => ["run", "--memory", "64m", "--pids", "100", "-w", "/tmp/work", "--file", join(m.cwd, "main.sh")], stages: ["files", "holder-proxy", "holder"] },
];

for (const mechanism of ["bubblewrap", "unshare"] as const) {
  describe.skipIf(!isRoot)(`a signal during a local sandbox's set-up (${mechanism})`, () => {
    const machines: Machine[] = [];
    afterAll(() => {
      for (const m of machines) m.remove();
    });

    for (const { how, args, stages } of CASES) {
      for (const stage of stages) {
        for (const signal of ["SIGTERM", "SIGINT"] as const) {
          test(`${how}, ${signal} at ${stage}: exit ${signal === "SIGTERM" ? 143 : 130}, the program never ran, nothing is left`, async () => {
            const m = machineFor("root", mechanism);
            machines.push(m);
            writeFileSync(join(m.cwd, "main.sh"), "echo ran; sleep 30\n");
            // Wait for the stage, then signal there.
            const { child, id, pausedAt, rest } = await startPaused(m, args(m), stage);
            expect(pausedAt).toBe(stage);
            child.kill(signal);
            const [stderr, stdout, code] = await Promise.all([rest(), new Response(child.stdout).text(), child.exited]);
            expect(code).toBe(signal === "SIGTERM" ? 143 : 130);
            expect(stdout).toBe("");
            expect(stderr).toContain(`sandboxes: interrupted by ${signal}`);
            await expectNothingLeft(m, id!);
          }, 60_000);
        }
      }

      // Without the knob: the signal as soon as the first process of the sandbox shows, N times.
      test(`${how}, SIGTERM as soon as the sandbox's first process shows (5 tries): nothing is left`, async () => {
        for (let attempt = 0; attempt < 5; attempt++) {
          const m = machineFor("root", mechanism);
          machines.push(m);
          writeFileSync(join(m.cwd, "main.sh"), "echo ran; sleep 30\n");
          const child = Bun.spawn([...m.command, ...args(m)], { env: m.env, cwd: m.cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
          const output = Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()]);
          let sandbox: string | undefined;
          while (sandbox === undefined && child.exitCode === null) {
            const dirs = existsSync(m.stateDir) ? readdirSync(m.stateDir).filter((entry) => entry.startsWith("local-")) : [];
            if (dirs[0] && processesWith(dirs[0]).length > 0) sandbox = dirs[0];
            else await Bun.sleep(1);
          }
          child.kill("SIGTERM");
          // The program may or may not have started by then; either way it is stopped (143).
          const [, code] = await Promise.all([output, child.exited]);
          expect(code).toBe(143);
          await expectNothingLeft(m, sandbox!);
        }
      }, 120_000);
    }
  });
}

// bwrap's first process inside the sandbox ties itself to bwrap (--die-with-parent) only once it
// is let go. If bwrap dies before that (it did, of a SIGPIPE, when its --info-fd was closed too
// early), that process is an orphan that holds the run's output open: the run must still end.
describe.skipIf(!isRoot)("a one-shot run whose wrapper dies during set-up (bubblewrap)", () => {
  const machines: Machine[] = [];
  afterAll(() => {
    for (const m of machines) m.remove();
  });

  test("bwrap killed while the sandbox waits to be let go: exit 137, the program never ran, its orphan is stopped, nothing is left", async () => {
    const m = machineFor("root", "bubblewrap");
    machines.push(m);
    const { child, id, pausedAt, rest } = await startPaused(m, ["run", "echo ran; sleep 30"], "proxy");
    expect(pausedAt).toBe("proxy");
    const wrapper = childrenOf(child.pid);
    expect(wrapper).toHaveLength(1);
    const orphans = () => processesWith(id!).filter((pid) => pid !== wrapper[0]);
    expect(orphans().length).toBeGreaterThan(0);
    process.kill(wrapper[0]!, "SIGKILL");
    // The paused set-up goes on by itself after 10 s and finds its wrapper gone.
    const [, stdout, code] = await Promise.all([rest(), new Response(child.stdout).text(), child.exited]);
    expect(code).toBe(137);
    expect(stdout).toBe("");
    await expectNothingLeft(m, id!);
  }, 60_000);
});

/**
 * Starts the binary with `args`, paused at `stage` (SANDBOXES_TEST_PAUSE_AT), and waits until it
 * says so: the sandbox's id, the stage it names, and `rest()`, the whole of its stderr once it ends.
 */
async function startPaused(m: Machine, args: string[], stage: Stage) {
  const child = Bun.spawn([...m.command, ...args], { env: { ...m.env, SANDBOXES_TEST_PAUSE_AT: stage }, cwd: m.cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const reader = (child.stderr as ReadableStream<Uint8Array>).getReader();
  let stderr = "";
  while (!/paused at/.test(stderr)) {
    const { value, done } = await reader.read();
    if (done) break;
    stderr += new TextDecoder().decode(value);
  }
  const paused = /sandboxes-test: (local-[0-9a-f]{12}) paused at (\S+)/.exec(stderr);
  const rest = async () => {
    for (let read = await reader.read(); !read.done; read = await reader.read()) stderr += new TextDecoder().decode(read.value);
    return stderr;
  };
  return { child, id: paused?.[1], pausedAt: paused?.[2], rest };
}

/** No cgroup, process, file or registry entry of the sandbox is left. */
async function expectNothingLeft(m: Machine, sandbox: string): Promise<void> {
  expect(cgroupDirs(sandbox)).toEqual([]);
  expect(processesWith(sandbox)).toEqual([]);
  expect(existsSync(m.stateDir) ? readdirSync(m.stateDir) : []).toEqual([]);
  expect(existsSync(join("/tmp", `sandboxes-0-${sandbox}`))).toBe(false);
  const listed = await m.run(["list", "--json"]);
  expect(JSON.parse(listed.stdout).sandboxes).toEqual([]);
}
