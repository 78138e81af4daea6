/**
 * The compiled binary against the fake E2B (real SDK inside the binary, real wire protocol):
 * every invocation is its own process, so reuse, exec by id and list by label only work if the
 * provider keeps them on the "server".
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startFakeE2B, type FakeE2B } from "../fakes/e2b/server";
import { BINARY, buildBinary, machine, removeMachines, sandboxes } from "./_e2b-helpers";
import { keptId } from "../helpers";

let fake: FakeE2B;
let env: Record<string, string>;

beforeAll(async () => {
  buildBinary();
  // Two sandboxes per page: list must follow x-next-token to see them all.
  fake = await startFakeE2B({ pageSize: 2, templates: ["base", "custom-template"] });
  ({ env } = machine());
  env = { ...env, ...fake.env() };
}, 60_000);

afterAll(async () => {
  await fake?.close();
  removeMachines();
});

beforeEach(() => fake.clearFaults());


describe("e2b through the compiled binary", () => {
  test("run streams output, passes the exit code through and destroys the sandbox", async () => {
    const before = fake.creates.length;
    const result = await sandboxes(["run", "-p", "e2b", "echo out; echo err >&2; exit 3"], env);
    expect(result.stdout).toBe("out\n");
    expect(result.stderr).toBe("err\n");
    expect(result.code).toBe(3);
    expect(fake.creates.length).toBe(before + 1);
    expect(fake.sandboxes.size).toBe(0);
  });

  test("--pids (e2b cannot limit processes) is one clear line and exit 125; nothing is created", async () => {
    const before = fake.creates.length;
    const result = await sandboxes(["run", "-p", "e2b", "--pids", "100", "true"], env);
    expect(result).toEqual({ code: 125, stdout: "", stderr: "sandboxes: provider e2b cannot limit the number of processes (--pids): use -p local or -p docker, or run without --pids\n" });
    expect(fake.creates.length).toBe(before);
  });

  test("with E2B_API_KEY set, e2b is picked without -p and --image picks the template", async () => {
    const result = await sandboxes(["run", "--image", "custom-template", "echo $HOME"], env);
    expect(result).toEqual({ code: 0, stdout: "/home/user\n", stderr: "" });
    expect(fake.creates.at(-1)?.templateID).toBe("custom-template");
    expect(fake.sandboxes.size).toBe(0);
  });

  test("kept sandbox: exec by id from another process (and another machine), list by label over pages, reuse, cp, destroy", async () => {
    const created = await sandboxes(["run", "-p", "e2b", "--keep", "--name", "web", "-l", "team=alpha", "--ttl", "600", "echo $GREETING > /tmp/greeting", "-e", "GREETING=hello"], env);
    expect(created.code).toBe(0);
    const id = keptId(created.stderr);
    expect(id).toBeDefined();
    expect(fake.sandboxes.get(id!)?.metadata).toMatchObject({ team: "alpha", "sandboxes.name": "web" });
    expect(fake.creates.at(-1)?.timeout).toBe(600);

    // A second process with no local registry at all: only the id and the server know the sandbox.
    const other = machine();
    const otherEnv = { ...other.env, ...fake.env() };
    const exec = await sandboxes(["exec", "-p", "e2b", id!, "cat /tmp/greeting; exit 4"], otherEnv);
    expect(exec).toEqual({ code: 4, stdout: "hello\n", stderr: "" });

    // Fill more than one page of the fake's list, with other labels.
    const noise: string[] = [];
    for (let i = 0; i < 3; i++) {
      const kept = await sandboxes(["run", "-p", "e2b", "--keep", "-l", `team=beta${i}`, "true"], env);
      noise.push(keptId(kept.stderr)!);
    }
    const listed = await sandboxes(["list", "-p", "e2b", "-l", "team=alpha", "--json"], otherEnv);
    expect(listed.code).toBe(0);
    const document = JSON.parse(listed.stdout) as { sandboxes: Array<{ id: string; name: string; labels: Record<string, string>; provider: string }> };
    expect(document.sandboxes).toHaveLength(1);
    expect(document.sandboxes[0]).toMatchObject({ id, name: "web", provider: "e2b", labels: { team: "alpha" } });
    const everything = await sandboxes(["list", "-p", "e2b", "--json"], otherEnv);
    const ids = (JSON.parse(everything.stdout) as { sandboxes: Array<{ id: string }> }).sandboxes.map((s) => s.id).sort();
    expect(ids).toEqual([id!, ...noise].sort());
    expect(fake.requests.filter((r) => r === "GET /v2/sandboxes").length).toBeGreaterThanOrEqual(3);

    const createsBefore = fake.creates.length;
    const reused = await sandboxes(["run", "-p", "e2b", "--reuse", "-l", "team=alpha", "cat /tmp/greeting"], otherEnv);
    expect(reused.code).toBe(0);
    expect(reused.stdout).toBe("hello\n");
    expect(reused.stderr).toContain(`reusing sandbox ${id}`);
    expect(fake.creates.length).toBe(createsBefore);
    expect(fake.sandboxes.has(id!)).toBe(true);

    const bytes = new Uint8Array(200_000).map((_, i) => (i * 31 + 7) % 256);
    writeFileSync(join(other.home, "blob.bin"), bytes);
    const up = await sandboxes(["cp", "-p", "e2b", join(other.home, "blob.bin"), `${id}:/tmp/blob.bin`], otherEnv);
    expect(up.code).toBe(0);
    const sum = await sandboxes(["exec", "-p", "e2b", id!, "wc -c < /tmp/blob.bin"], otherEnv);
    expect(sum.stdout.trim()).toBe("200000");
    const down = await sandboxes(["cp", "-p", "e2b", `${id}:/tmp/blob.bin`, join(other.home, "back.bin")], otherEnv);
    expect(down.code).toBe(0);
    expect(new Uint8Array(readFileSync(join(other.home, "back.bin")))).toEqual(bytes);

    // Binary stdout is passed through byte for byte.
    const raw = Bun.spawn([BINARY, "exec", "-p", "e2b", id!, "head -c 4096 /tmp/blob.bin"], { env: otherEnv, stdout: "pipe", stderr: "pipe" });
    expect(new Uint8Array(await new Response(raw.stdout).arrayBuffer())).toEqual(bytes.subarray(0, 4096));
    expect(await raw.exited).toBe(0);

    const destroyed = await sandboxes(["destroy", "-p", "e2b", id!, ...noise], otherEnv);
    expect(destroyed.code).toBe(0);
    expect(fake.sandboxes.size).toBe(0);
    const gone = await sandboxes(["exec", "-p", "e2b", id!, "true"], otherEnv);
    expect(gone.code).toBe(125);
    expect(gone.stderr).toContain(id!);
  }, 60_000);

  test("--timeout kills the command and exits 124; stdin is forwarded", async () => {
    const slow = await sandboxes(["run", "-p", "e2b", "--timeout", "1", "echo started; sleep 30"], env);
    expect(slow.code).toBe(124);
    expect(slow.stdout).toBe("started\n");
    const piped = await sandboxes(["run", "-p", "e2b", "tr a-z A-Z"], env, { stdin: "piped text\n" });
    expect(piped).toEqual({ code: 0, stdout: "PIPED TEXT\n", stderr: "" });
    expect(fake.sandboxes.size).toBe(0);
  });

  test("a stdin that stays open and silent does not keep run waiting once the command is done", async () => {
    // Like `sleep 1000 | sandboxes run …`: no byte and no EOF ever arrive.
    const silent = new ReadableStream<Uint8Array>({ start() {} });
    const child = Bun.spawn([BINARY, "run", "-p", "e2b", "echo done"], { env, stdin: silent, stdout: "pipe", stderr: "pipe" });
    const [stdout, code] = await Promise.all([new Response(child.stdout).text(), child.exited]);
    expect(code).toBe(0);
    expect(stdout).toBe("done\n");
    expect(fake.sandboxes.size).toBe(0);
  }, 20_000);

  test("an unknown template is one clear line naming e2b, exit 125", async () => {
    const result = await sandboxes(["run", "-p", "e2b", "--image", "no-such-template", "true"], env);
    expect(result.code).toBe(125);
    expect(result.stdout).toBe("");
    const first = result.stderr.split("\n")[0]!;
    expect(first).toStartWith("sandboxes: e2b: ");
    expect(first).toContain("no-such-template");
    expect(fake.sandboxes.size).toBe(0);
  });
});
