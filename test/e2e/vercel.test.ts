/**
 * The compiled binary against the fake Vercel Sandbox API (our own client inside the binary, the
 * real wire protocol): every invocation is its own process, so reuse, exec by id and list by label
 * only work if the provider keeps them on the "server".
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startFakeVercel, type FakeVercel } from "../fakes/vercel/server";
import { cli, keptId, machines, plain } from "../helpers";
import { buildBinary } from "./_e2b-helpers";

let fake: FakeVercel;
let env: Record<string, string>;
const { machine, removeAll } = machines();

beforeAll(async () => {
  buildBinary();
  // Two sandboxes per page: list must follow the cursor to see them all.
  fake = await startFakeVercel({ pageSize: 2 });
  env = machine(fake.env()).env;
}, 60_000);

afterAll(async () => {
  await fake?.close();
  removeAll();
});

beforeEach(() => fake.clearFaults());

const run = (args: string[], withEnv = env, stdin?: string) => cli(args, { env: withEnv, stdin });

const sandboxPosts = () => fake.requests.filter((r) => r === "POST /v3/sandboxes" || r === "POST /v2/sandboxes").length;

describe("vercel through the compiled binary", () => {
  test("run streams output, passes the exit code through and deletes the sandbox", async () => {
    const before = fake.creates.length;
    const result = await run(["run", "-p", "vercel", "echo out; echo err >&2; exit 3"]);
    expect(plain(result)).toEqual({ code: 3, stdout: "out\n", stderr: "err\n" });
    expect(fake.creates.length).toBe(before + 1);
    expect(fake.creates.at(-1)?.name).toMatch(/^sandboxes-[0-9a-f]{10}$/);
    expect(fake.sandboxes.size).toBe(0);
  });

  test("with the Vercel credentials set, vercel is picked without -p", async () => {
    const before = fake.creates.length;
    const result = await run(["run", "echo $HOME"]);
    expect(plain(result)).toEqual({ code: 0, stdout: "/home/vercel-sandbox\n", stderr: "" });
    expect(fake.creates.length).toBe(before + 1);
    expect(fake.sandboxes.size).toBe(0);
  });

  test("--image, --cpus, --ttl and --network none reach the create; --memory off the 2048 MB/vCPU ratio is one line", async () => {
    const result = await run(["run", "-p", "vercel", "--image", "python3.13", "--cpus", "2", "--ttl", "120", "--network", "none", "echo mapped"]);
    expect(plain(result)).toEqual({ code: 0, stdout: "mapped\n", stderr: "" });
    expect(fake.creates.at(-1)).toMatchObject({ runtime: "python3.13", resources: { vcpus: 2 }, timeout: 120_000, networkPolicy: { mode: "deny-all" } });
    const before = sandboxPosts();
    const memory = await run(["run", "-p", "vercel", "--memory", "1g", "true"]);
    expect(memory.code).toBe(125);
    expect(memory.stdout).toBe("");
    const lines = memory.stderr.trimEnd().split("\n");
    expect(lines).toEqual(["sandboxes: provider vercel does not set memory on its own: every vCPU comes with 2048 MB: drop --memory, or use --cpus N for N x 2048 MB"]);
    expect(sandboxPosts()).toBe(before);
    expect(fake.sandboxes.size).toBe(0);
  });

  test("kept sandbox: exec by id from another machine, list by label over pages, reuse, cp, destroy", async () => {
    const created = await run(["run", "-p", "vercel", "--keep", "--name", "web", "-l", "team=alpha", "echo $GREETING > /tmp/greeting", "-e", "GREETING=hello"]);
    expect(created.code).toBe(0);
    const id = keptId(created.stderr);
    // The sandbox's name is its id.
    expect(id).toBe("web");
    expect(fake.sandboxes.get("web")?.tags).toEqual({ team: "alpha" });

    // A second machine with no local registry at all: only the name and the server know the sandbox.
    const other = machine(fake.env());
    const exec = await run(["exec", "-p", "vercel", "web", "cat /tmp/greeting; exit 4"], other.env);
    expect(plain(exec)).toEqual({ code: 4, stdout: "hello\n", stderr: "" });

    // More than one page of the fake's list, with other labels.
    const noise: string[] = [];
    for (let i = 0; i < 3; i++) {
      const kept = await run(["run", "-p", "vercel", "--keep", "-l", `team=beta${i}`, "true"]);
      noise.push(keptId(kept.stderr)!);
    }
    const listed = await run(["list", "-p", "vercel", "-l", "team=alpha", "--json"], other.env);
    expect(listed.code).toBe(0);
    const document = JSON.parse(listed.stdout) as { sandboxes: Array<{ id: string; name: string; labels: Record<string, string>; provider: string }> };
    expect(document.sandboxes).toHaveLength(1);
    expect(document.sandboxes[0]).toMatchObject({ id: "web", name: "web", provider: "vercel", labels: { team: "alpha" } });
    const everything = await run(["list", "-p", "vercel", "--json"], other.env);
    const ids = (JSON.parse(everything.stdout) as { sandboxes: Array<{ id: string }> }).sandboxes.map((s) => s.id).sort();
    expect(ids).toEqual(["web", ...noise].sort());
    const plainList = await run(["list", "-p", "vercel", "-l", "team=alpha"], other.env);
    expect(plainList.stdout).toContain("web");

    const createsBefore = fake.creates.length;
    const reused = await run(["run", "-p", "vercel", "--reuse", "-l", "team=alpha", "cat /tmp/greeting"], other.env);
    expect(reused.code).toBe(0);
    expect(reused.stdout).toBe("hello\n");
    expect(reused.stderr).toContain("reusing sandbox web");
    expect(fake.creates.length).toBe(createsBefore);

    const bytes = new Uint8Array(200_000).map((_, i) => (i * 31 + 7) % 256);
    writeFileSync(join(other.home, "blob.bin"), bytes);
    const up = await run(["cp", "-p", "vercel", join(other.home, "blob.bin"), "web:/tmp/blob.bin"], other.env);
    expect(up.code).toBe(0);
    const size = await run(["exec", "-p", "vercel", "web", "wc -c < /tmp/blob.bin"], other.env);
    expect(size.stdout.trim()).toBe("200000");
    const down = await run(["cp", "-p", "vercel", "web:/tmp/blob.bin", join(other.home, "back.bin")], other.env);
    expect(down.code).toBe(0);
    expect(new Uint8Array(readFileSync(join(other.home, "back.bin")))).toEqual(bytes);
    // A directory both ways keeps its tree.
    mkdirSync(join(other.home, "tree", "sub"), { recursive: true });
    writeFileSync(join(other.home, "tree", "sub", "x.txt"), "nested\n");
    expect((await run(["cp", "-p", "vercel", join(other.home, "tree"), "web:/home/vercel-sandbox/"], other.env)).code).toBe(0);
    expect((await run(["exec", "-p", "vercel", "web", "cat ~/tree/sub/x.txt"], other.env)).stdout).toBe("nested\n");
    const treeBack = join(other.home, "tree-back");
    expect((await run(["cp", "-p", "vercel", "web:/home/vercel-sandbox/tree", treeBack], other.env)).code).toBe(0);
    expect(readFileSync(join(treeBack, "sub", "x.txt"), "utf8")).toBe("nested\n");

    const destroyed = await run(["destroy", "-p", "vercel", "web", ...noise], other.env);
    expect(destroyed.code).toBe(0);
    expect(fake.sandboxes.size).toBe(0);
    const gone = await run(["exec", "-p", "vercel", "web", "true"], other.env);
    expect(gone.code).toBe(125);
    expect(gone.stderr).toContain("web");
  }, 60_000);

  test("-w: run creates the directory; exec into a missing one is one line and exit 125", async () => {
    const ran = await run(["run", "-p", "vercel", "-w", "/tmp/wd-run/a b", "--", "pwd"]);
    expect(plain(ran)).toEqual({ code: 0, stdout: "/tmp/wd-run/a b\n", stderr: "" });
    const kept = await run(["run", "-p", "vercel", "-n", "wd-vercel", "--keep", "--", "mkdir", "-p", "/tmp/there"]);
    expect(kept.code).toBe(0);
    const missing = await run(["exec", "-p", "vercel", "wd-vercel", "-w", "/tmp/not-there", "--", "echo should-not-run"]);
    expect(missing.stdout).toBe("");
    expect(missing.stderr).toMatch(/^sandboxes: working directory \/tmp\/not-there does not exist in sandbox wd-vercel: /);
    expect(missing.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(missing.code).toBe(125);
    expect(plain(await run(["exec", "-p", "vercel", "wd-vercel", "-w", "/tmp/there", "--", "pwd"]))).toEqual({ code: 0, stdout: "/tmp/there\n", stderr: "" });
    expect((await run(["destroy", "-p", "vercel", "wd-vercel"])).code).toBe(0);
    expect(fake.sandboxes.size).toBe(0);
  });

  test("--timeout kills the command and exits 124; stdin is forwarded", async () => {
    const slow = await run(["run", "-p", "vercel", "--timeout", "1", "echo started; sleep 30"]);
    expect(slow.code).toBe(124);
    expect(slow.stdout).toBe("started\n");
    const piped = await run(["run", "-p", "vercel", "tr a-z A-Z"], env, "piped text\n");
    expect(plain(piped)).toEqual({ code: 0, stdout: "PIPED TEXT\n", stderr: "" });
    expect(fake.sandboxes.size).toBe(0);
  });
});

describe("vercel fake after the e2e tests", () => {
  test("the fake holds no sandbox", () => {
    expect([...fake.sandboxes.keys()]).toEqual([]);
    expect(fake.creates.length).toBeGreaterThan(5);
  });
});
