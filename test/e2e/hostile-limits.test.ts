/**
 * Honest limits and consistent answers, through the compiled binary: the --timeout range, exit
 * codes that agree between commands, help text, error hints, and whether --timeout counts a
 * slow start (it does not, on any provider).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startFakeE2B, type FakeE2B } from "../fakes/e2b/server";
import { type FakeModal, startFakeModal } from "../fakes/modal/server";
import { cli, machines } from "../helpers";
import { run } from "../../src/index";
import { withoutRuntimeAdvice } from "../../src/base/errors";

const { machine, removeAll } = machines();
let e2b: FakeE2B;
let modal: FakeModal;

beforeAll(async () => {
  e2b = await startFakeE2B();
  modal = await startFakeModal();
});

afterAll(async () => {
  await e2b?.close();
  await modal?.stop();
  removeAll();
});

describe("--timeout range: more than 0, at most 24 days", () => {
  test("just past 2^31 ms (2147484 s) is refused with one line, before any sandbox (it used to fire at once)", async () => {
    const { env } = machine();
    const r = await cli(["run", "-t", "2147484", "sleep 1; exit 3"], { env });
    expect({ code: r.code, stdout: r.stdout, stderr: r.stderr }).toEqual({
      code: 125,
      stdout: "",
      stderr: 'sandboxes: --timeout must be at most 24 days (2073600 seconds, or 24d), got "2147484"\n',
    });
    expect((await cli(["exec", "anything", "-t", "25d", "true"], { env })).stderr).toContain("--timeout must be at most 24 days");
  });

  test("timeouts of days are accepted and do not fire early: -t 3d and -t 2073600 run to the program's own exit", async () => {
    const { env } = machine();
    expect((await cli(["run", "-t", "3d", "sleep 1; exit 3"], { env })).code).toBe(3);
    const longest = await cli(["run", "-t", "2073600", "sleep 1; exit 4"], { env });
    expect({ code: longest.code, stderr: longest.stderr }).toEqual({ code: 4, stderr: "" });
  });

  test("a timeout below a millisecond still times out (it used to mean no timeout at all)", async () => {
    const { env } = machine();
    const r = await cli(["run", "--json", "-t", "0.0001", "sleep 5"], { env });
    expect(JSON.parse(r.stdout)).toMatchObject({ exit_code: 124, timed_out: true });
  });

  test("the library refuses timeoutMs beyond 24 days with bad_timeout, and no sandbox", async () => {
    const { env } = machine();
    await expect(run("true", { environment: env, timeoutMs: 25 * 24 * 3600 * 1000 })).rejects.toMatchObject({ code: "bad_timeout" });
    expect(await run("exit 5", { environment: env, timeoutMs: 3 * 24 * 3600 * 1000 })).toMatchObject({ exitCode: 5, timedOut: false });
  });
});

describe("--timeout counts the command's own run, not a slow start, on every provider", () => {
  test("modal: the exec start delayed 3 s with -t 1 still runs the command (exit 0)", async () => {
    const { env } = machine({ ...modal.env() });
    const id = JSON.parse((await cli(["run", "-p", "modal", "--keep", "--json", "true"], { env })).stdout).sandbox_id as string;
    try {
      modal.faults.push({ method: "TaskExecStart", delayMs: 3000 });
      const r = await cli(["exec", id, "-p", "modal", "-t", "1", "--json", "echo ran"], { env });
      expect(JSON.parse(r.stdout)).toMatchObject({ exit_code: 0, timed_out: false, stdout: "ran\n" });
    } finally {
      await cli(["destroy", "-p", "modal", id], { env });
    }
  }, 60_000);

  test("e2b: the process start delayed 3 s with -t 1 still runs the command (exit 0)", async () => {
    const { env } = machine(e2b.env());
    const id = JSON.parse((await cli(["run", "-p", "e2b", "--keep", "--json", "true"], { env })).stdout).sandbox_id as string;
    try {
      e2b.fault({ match: "POST /process.Process/Start", kind: "slow", delayMs: 3000 });
      const r = await cli(["exec", id, "-p", "e2b", "-t", "1", "--json", "echo ran"], { env });
      expect(JSON.parse(r.stdout)).toMatchObject({ exit_code: 0, timed_out: false, stdout: "ran\n" });
    } finally {
      await cli(["destroy", "-p", "e2b", id], { env });
    }
  }, 60_000);
});

describe("consistent answers", () => {
  test("destroy -p bogus ID exits 2 like list -p bogus: one line naming the known providers", async () => {
    const { env } = machine();
    const destroy = await cli(["destroy", "-p", "bogus", "ID"], { env });
    const list = await cli(["list", "-p", "bogus"], { env });
    expect(destroy.code).toBe(2);
    expect(list.code).toBe(2);
    expect(destroy.stderr).toBe(list.stderr);
    expect(destroy.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(JSON.parse((await cli(["destroy", "-p", "bogus", "ID", "--json"], { env })).stdout).error).toMatchObject({ code: "unknown_provider", exit_code: 2 });
  });

  test("no --help says (repeatable) twice", async () => {
    const { env } = machine();
    for (const name of ["run", "exec", "list", "destroy", "cp", "shell", "claude", "providers", "test"]) {
      const r = await cli([name, "--help"], { env });
      expect(r.stdout).not.toContain("(repeatable) (repeatable)");
    }
    expect((await cli(["list", "--help"], { env })).stdout).toMatch(/--label key=value +Label key=value \(repeatable\)\n/);
  });

  test("--help wins over --json and prints text; help and completion have no --json (exit 2), as documented", async () => {
    const { env } = machine();
    const help = await cli(["run", "--help", "--json"], { env });
    expect({ code: help.code, start: help.stdout.split("\n")[0] }).toEqual({ code: 0, start: "Run a command, a file or code from stdin in a new (or reused) sandbox" });
    for (const args of [["help", "--json"], ["completion", "bash", "--json"]]) {
      const r = await cli(args, { env });
      expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 2, stdout: "" });
      expect(r.stderr).toContain("unknown flag --json");
    }
  });

  test("Bun's fetch advice (pass `verbose: true`) never reaches a user", () => {
    expect(withoutRuntimeAdvice("e2b: list sandboxes failed: The socket connection was closed unexpectedly. For more information, pass `verbose: true` in the second argument to fetch()")).toBe(
      "e2b: list sandboxes failed: The socket connection was closed unexpectedly.",
    );
  });
});
