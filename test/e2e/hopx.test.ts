/**
 * The compiled binary against the fake Hopx (our own client inside the binary, the real wire
 * protocol): every invocation is its own process, so exec by id works only if the provider finds
 * the sandbox on the "server", and labels only where this machine's state directory has them.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startFakeHopx, type FakeHopx } from "../fakes/hopx/server";
import { BINARY, buildBinary, machine, removeMachines, sandboxes } from "./_e2b-helpers";
import { keptId } from "../helpers";
import { sleeping } from "./suites/signals";

let fake: FakeHopx;
let env: Record<string, string>;

beforeAll(async () => {
  buildBinary();
  // Two sandboxes per page: list must follow next_cursor to see them all.
  fake = await startFakeHopx({ pageSize: 2, templates: ["code-interpreter", "custom-template"] });
  env = { ...machine().env, ...fake.env() };
}, 60_000);

afterAll(async () => {
  await fake?.close();
  removeMachines();
});

beforeEach(() => fake.clearFaults());

const listed = (stdout: string) => (JSON.parse(stdout) as { sandboxes: Array<{ id: string; name: string | null; labels: Record<string, string> }> }).sandboxes;

describe("hopx through the compiled binary", () => {
  test("run passes stdout, stderr and the exit code through exactly, then destroys the sandbox", async () => {
    const before = fake.creates.length;
    const result = await sandboxes(["run", "-p", "hopx", "echo out; printf 'no newline' >&2; exit 3"], env);
    expect(result).toEqual({ code: 3, stdout: "out\n", stderr: "no newline" });
    expect(fake.creates.length).toBe(before + 1);
    expect(fake.creates.at(-1)).toMatchObject({ template_name: "code-interpreter", timeout_seconds: 3600 });
    expect(fake.sandboxes.size).toBe(0);
  });

  test("--timeout kills the command tree: exit 124 with what it printed; a program's own 124 is not a timeout", async () => {
    // In a kept sandbox, so that only the timeout (not the sandbox's end) can stop the tree.
    const kept = await sandboxes(["run", "-p", "hopx", "--keep", "--json", "true"], env);
    const id = JSON.parse(kept.stdout).sandbox_id as string;
    const slow = await sandboxes(["exec", id, "-p", "hopx", "--timeout", "1", "--json", "echo started; sleep 3041 & sleep 3041; echo never"], env);
    expect(slow.code).toBe(124);
    expect(JSON.parse(slow.stdout)).toMatchObject({ exit_code: 124, timed_out: true, stdout: "started\n" });
    // The fake's sandbox processes are this machine's: neither sleep may outlive the timeout.
    for (let i = 0; i < 200 && sleeping("3041").length; i++) await Bun.sleep(25);
    expect(sleeping("3041")).toEqual([]);
    expect((await sandboxes(["destroy", id, "-p", "hopx"], env)).code).toBe(0);
    const own = await sandboxes(["run", "-p", "hopx", "--json", "exit 124"], env);
    expect(own.code).toBe(124);
    expect(JSON.parse(own.stdout)).toMatchObject({ exit_code: 124, timed_out: false });
    const plain = await sandboxes(["run", "-p", "hopx", "--timeout", "1", "echo started; sleep 30"], env);
    expect(plain.code).toBe(124);
    expect(plain.stdout).toBe("started\n");
    expect(fake.sandboxes.size).toBe(0);
  }, 30_000);

  test("stdin reaches the command; a stdin that stays open and silent does not keep run waiting", async () => {
    const piped = await sandboxes(["run", "-p", "hopx", "tr a-z A-Z"], env, { stdin: "piped text\n" });
    expect(piped).toEqual({ code: 0, stdout: "PIPED TEXT\n", stderr: "" });
    // Like `sleep 1000 | sandboxes run …`: no byte and no EOF ever arrive.
    const silent = new ReadableStream<Uint8Array>({ start() {} });
    const child = Bun.spawn([BINARY, "run", "-p", "hopx", "echo done"], { env, stdin: silent, stdout: "pipe", stderr: "pipe" });
    const [stdout, code] = await Promise.all([new Response(child.stdout).text(), child.exited]);
    expect({ code, stdout }).toEqual({ code: 0, stdout: "done\n" });
    expect(fake.sandboxes.size).toBe(0);
  }, 20_000);

  test("kept sandbox: exec by id from another machine, list by label over pages, reuse, cp both ways, destroy", async () => {
    const created = await sandboxes(["run", "-p", "hopx", "--keep", "--name", "web", "-l", "team=alpha", "--ttl", "600", "-e", "GREETING=hello", "echo $GREETING > /tmp/greeting"], env);
    expect(created.code).toBe(0);
    const id = keptId(created.stderr)!;
    expect(id).toBeDefined();
    expect(fake.creates.at(-1)).toMatchObject({ timeout_seconds: 600, env_vars: { GREETING: "hello" } });

    // Another machine: no state directory of its own, only the id and the service know the sandbox.
    const other = machine();
    const otherEnv = { ...other.env, ...fake.env() };
    expect(await sandboxes(["exec", "-p", "hopx", id, "cat /tmp/greeting; echo $GREETING; exit 4"], otherEnv)).toEqual({ code: 4, stdout: "hello\nhello\n", stderr: "" });

    const noise: string[] = [];
    for (let i = 0; i < 3; i++) noise.push(keptId((await sandboxes(["run", "-p", "hopx", "--keep", "-l", `team=beta${i}`, "true"], env)).stderr)!);
    // Labels live on the machine that created the sandbox: there, a filter finds it over pages.
    const mine = await sandboxes(["list", "-p", "hopx", "-l", "team=alpha", "--json"], env);
    expect(mine.code).toBe(0);
    expect(listed(mine.stdout)).toEqual([expect.objectContaining({ id, name: "web", labels: { team: "alpha" } })]);
    // Elsewhere the sandbox is listed without labels or name, and a label filter does not match it.
    const everything = listed((await sandboxes(["list", "-p", "hopx", "--json"], otherEnv)).stdout);
    expect(everything.map((s) => s.id).sort()).toEqual([id, ...noise].sort());
    expect(everything.find((s) => s.id === id)).toMatchObject({ name: null, labels: {} });
    expect(listed((await sandboxes(["list", "-p", "hopx", "-l", "team=alpha", "--json"], otherEnv)).stdout)).toEqual([]);

    const createsBefore = fake.creates.length;
    const reused = await sandboxes(["run", "-p", "hopx", "--reuse", "-l", "team=alpha", "cat /tmp/greeting"], env);
    expect(reused.stdout).toBe("hello\n");
    expect(reused.stderr).toContain(`reusing sandbox ${id}`);
    expect(fake.creates.length).toBe(createsBefore);

    const bytes = new Uint8Array(200_000).map((_, i) => (i * 31 + 7) % 256);
    writeFileSync(join(other.home, "blob.bin"), bytes);
    expect((await sandboxes(["cp", "-p", "hopx", join(other.home, "blob.bin"), `${id}:/tmp/blob.bin`], otherEnv)).code).toBe(0);
    expect((await sandboxes(["exec", "-p", "hopx", id, "wc -c < /tmp/blob.bin"], otherEnv)).stdout.trim()).toBe("200000");
    expect((await sandboxes(["cp", "-p", "hopx", `${id}:/tmp/blob.bin`, join(other.home, "back.bin")], otherEnv)).code).toBe(0);
    expect(new Uint8Array(readFileSync(join(other.home, "back.bin")))).toEqual(bytes);

    // Binary stdout is passed through byte for byte.
    const raw = Bun.spawn([BINARY, "exec", "-p", "hopx", id, "head -c 4096 /tmp/blob.bin"], { env: otherEnv, stdout: "pipe", stderr: "pipe" });
    expect(new Uint8Array(await new Response(raw.stdout).arrayBuffer())).toEqual(bytes.subarray(0, 4096));
    expect(await raw.exited).toBe(0);

    expect((await sandboxes(["destroy", "-p", "hopx", id, ...noise], otherEnv)).code).toBe(0);
    expect(fake.sandboxes.size).toBe(0);
    const gone = await sandboxes(["exec", "-p", "hopx", id, "true"], otherEnv);
    expect(gone.code).toBe(125);
    expect(gone.stderr).toContain(id);
    // The creating machine forgets the labels of a sandbox that is gone.
    expect(listed((await sandboxes(["list", "-p", "hopx", "-l", "team=alpha", "--json"], env)).stdout)).toEqual([]);
  }, 60_000);

  test("an unknown template is one clear line naming hopx, exit 125", async () => {
    const result = await sandboxes(["run", "-p", "hopx", "--image", "no-such-template", "true"], env);
    expect(result.code).toBe(125);
    expect(result.stdout).toBe("");
    const [first, ...rest] = result.stderr.trimEnd().split("\n");
    expect(first).toStartWith("sandboxes: hopx: cannot create a sandbox from template \"no-such-template\"");
    expect(rest.every((line) => line.startsWith("  hint:"))).toBe(true);
    expect(fake.sandboxes.size).toBe(0);
  });
});

describe("hopx: the end", () => {
  test("the fake holds no sandbox", () => {
    expect([...fake.sandboxes.keys()]).toEqual([]);
  });
});
