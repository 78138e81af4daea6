/**
 * The compiled binary against a fake Cloudflare sandbox Worker: the REAL bridge router of
 * @cloudflare/sandbox 0.12.10 in Bun behind fake Durable Objects (our own client inside the
 * binary). Every invocation is its own process: a kept sandbox is found again only through the
 * local registry the provider keeps (the bridge has no list and no metadata).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startFakeCloudflare, type FakeCloudflare } from "../fakes/cloudflare/server";
import { cli, keptId, machines, plain } from "../helpers";
import { buildBinary } from "./_e2b-helpers";

let fake: FakeCloudflare;
let env: Record<string, string>;
/** The first machine's HOME, for local files to copy. */
let home = "";
const { machine, removeAll } = machines();

beforeAll(async () => {
  buildBinary();
  fake = await startFakeCloudflare({ mode: "bridge" });
  ({ env, home } = machine(fake.env()));
}, 60_000);

afterAll(async () => {
  await fake?.close();
  removeAll();
});

beforeEach(() => fake.clearFaults());

const run = (args: string[], withEnv = env, stdin?: string) => cli(args, { env: withEnv, stdin });
const creates = () => fake.requests.filter((r) => r === "POST /v1/sandbox").length;

describe("cloudflare through the compiled binary", () => {
  test("run streams output, passes the exit code through and destroys the sandbox", async () => {
    const before = creates();
    const result = await run(["run", "-p", "cloudflare", "echo out; echo err >&2; exit 3"]);
    expect(plain(result)).toEqual({ code: 3, stdout: "out\n", stderr: "err\n" });
    expect(creates()).toBe(before + 1);
    expect(fake.live()).toEqual([]);
  });

  test("with CLOUDFLARE_SANDBOX_URL set, cloudflare is picked without -p; commands start in /workspace", async () => {
    const before = creates();
    const result = await run(["run", "pwd; echo $HOME"]);
    expect(plain(result)).toEqual({ code: 0, stdout: "/workspace\n/root\n", stderr: "" });
    expect(creates()).toBe(before + 1);
    expect(fake.live()).toEqual([]);
  });

  test("--image is one clear line and exit 125; nothing is created", async () => {
    const before = fake.requests.length;
    const result = await run(["run", "-p", "cloudflare", "--image", "ubuntu:24.04", "true"]);
    expect(result.code).toBe(125);
    expect(result.stdout).toBe("");
    const lines = result.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toStartWith("sandboxes: provider cloudflare cannot choose an image per sandbox (--image)");
    expect(fake.requests.slice(before)).toEqual([]);
  });

  test("kept sandbox: exec by id and by name from new processes, list by label, reuse, cp, destroy", async () => {
    const created = await run(["run", "-p", "cloudflare", "--keep", "--name", "web", "-l", "team=alpha", "-e", "GREETING=hello", 'echo "$GREETING" > /tmp/greeting']);
    expect(created.code).toBe(0);
    const id = keptId(created.stderr)!;
    expect(id).toMatch(/^[a-z2-7]{26}$/);
    expect(fake.live()).toEqual([id]);

    // A new process on the same machine: the sandbox env given at create time still applies.
    const exec = await run(["exec", "-p", "cloudflare", id, 'cat /tmp/greeting; echo "$GREETING"; exit 4']);
    expect(plain(exec)).toEqual({ code: 4, stdout: "hello\nhello\n", stderr: "" });
    const byName = await run(["exec", "web", "-w", "/tmp", "--", "sh", "-c", "pwd; printf '[%s]' \"$1\"", "sh", "it's a $HOME"]);
    expect(plain(byName)).toEqual({ code: 0, stdout: "/tmp\n[it's a $HOME]", stderr: "" });

    const other = await run(["run", "-p", "cloudflare", "--keep", "-l", "team=beta", "true"]);
    const otherId = keptId(other.stderr)!;
    const listed = await run(["list", "-p", "cloudflare", "-l", "team=alpha", "--json"]);
    expect(listed.code).toBe(0);
    const document = JSON.parse(listed.stdout) as { sandboxes: Array<{ id: string; name: string; labels: Record<string, string>; provider: string; state: string }> };
    expect(document.sandboxes).toEqual([expect.objectContaining({ id, name: "web", provider: "cloudflare", state: "running", labels: { team: "alpha" } })]);
    const everything = JSON.parse((await run(["list", "-p", "cloudflare", "--json"])).stdout) as { sandboxes: Array<{ id: string }> };
    expect(everything.sandboxes.map((s) => s.id).sort()).toEqual([id, otherId].sort());
    expect((await run(["list", "-p", "cloudflare", "-l", "team=alpha"])).stdout).toContain(id);

    // Another machine has no registry: it sees nothing and says so in one line.
    const elsewhere = machine(fake.env());
    expect(JSON.parse((await run(["list", "-p", "cloudflare", "--json"], elsewhere.env)).stdout).sandboxes).toEqual([]);
    const lost = await run(["exec", "-p", "cloudflare", id, "true"], elsewhere.env);
    expect(lost.code).toBe(125);
    expect(lost.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(lost.stderr).toContain(id);

    const before = creates();
    const reused = await run(["run", "-p", "cloudflare", "--reuse", "-l", "team=alpha", "cat /tmp/greeting"]);
    expect(reused.code).toBe(0);
    expect(reused.stdout).toBe("hello\n");
    expect(reused.stderr).toContain(`reusing sandbox ${id}`);
    expect(creates()).toBe(before);

    // cp both ways, outside /workspace (the file routes only take /workspace: archives are staged there).
    const bytes = new Uint8Array(200_000).map((_, i) => (i * 31 + 7) % 256);
    writeFileSync(join(home, "blob.bin"), bytes);
    expect((await run(["cp", "-p", "cloudflare", join(home, "blob.bin"), `${id}:/tmp/blob.bin`])).code).toBe(0);
    expect((await run(["exec", id, "wc -c < /tmp/blob.bin; ls -A /workspace"])).stdout.trim()).toBe("200000");
    expect((await run(["cp", "-p", "cloudflare", `${id}:/tmp/blob.bin`, join(home, "back.bin")])).code).toBe(0);
    expect(new Uint8Array(readFileSync(join(home, "back.bin")))).toEqual(bytes);
    mkdirSync(join(home, "tree", "sub"), { recursive: true });
    writeFileSync(join(home, "tree", "sub", "x.txt"), "nested\n");
    expect((await run(["cp", join(home, "tree"), `${id}:/workspace/`])).code).toBe(0);
    expect((await run(["exec", id, "cat /workspace/tree/sub/x.txt"])).stdout).toBe("nested\n");
    rmSync(join(home, "tree"), { recursive: true });
    expect((await run(["cp", `${id}:/workspace/tree`, home])).code).toBe(0);
    expect(readFileSync(join(home, "tree", "sub", "x.txt"), "utf8")).toBe("nested\n");
    // Nothing of ours is left in /workspace.
    expect((await run(["exec", id, "ls -A /workspace"])).stdout).toBe("tree\n");

    const destroyed = await run(["destroy", "-p", "cloudflare", id, otherId]);
    expect(destroyed.code).toBe(0);
    expect(fake.live()).toEqual([]);
    const gone = await run(["exec", "-p", "cloudflare", id, "true"]);
    expect(gone.code).toBe(125);
    expect(gone.stderr).toContain(id);
  }, 90_000);

  test("--timeout kills the command and exits 124; a program's own 124 passes; stdin is forwarded", async () => {
    const slow = await run(["run", "-p", "cloudflare", "--timeout", "1", "echo started; sleep 30"]);
    expect(slow.code).toBe(124);
    expect(slow.stdout).toBe("started\n");
    expect(plain(await run(["run", "-p", "cloudflare", "exit 124"]))).toEqual({ code: 124, stdout: "", stderr: "" });
    const piped = await run(["run", "-p", "cloudflare", "tr a-z A-Z"], env, "piped text\n");
    expect(plain(piped)).toEqual({ code: 0, stdout: "PIPED TEXT\n", stderr: "" });
    expect(fake.live()).toEqual([]);
  });


});

describe("cloudflare fake after the e2e tests", () => {
  test("the fake holds no sandbox", () => {
    expect(fake.live()).toEqual([]);
    expect(fake.containers.live.size).toBe(0);
    expect(creates()).toBeGreaterThan(5);
  });
});
