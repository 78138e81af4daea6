/**
 * The compiled binary against the fake Sprites API (our own client inside the binary, the real
 * wire protocol): every invocation is its own process, so reuse, exec by id and list by label
 * only work if the provider keeps them on the "server".
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startFakeSprites, type FakeSprites } from "../fakes/sprites/server";
import { cli, keptId, machines, plain } from "../helpers";
import { buildBinary } from "./_e2b-helpers";

let fake: FakeSprites;
let env: Record<string, string>;
const { machine, removeAll } = machines();

beforeAll(async () => {
  buildBinary();
  // Two sprites per page: list must follow the continuation token to see them all.
  fake = await startFakeSprites({ pageSize: 2 });
  env = machine(fake.env()).env;
}, 60_000);

afterAll(async () => {
  await fake?.close();
  removeAll();
});

beforeEach(() => fake.clearFaults());

const run = (args: string[], withEnv = env, stdin?: string) => cli(args, { env: withEnv, stdin });

describe("sprites through the compiled binary", () => {
  test("run streams output, passes the exit code through and destroys the sprite", async () => {
    const before = fake.creates.length;
    const result = await run(["run", "-p", "sprites", "echo out; echo err >&2; exit 3"]);
    expect(plain(result)).toEqual({ code: 3, stdout: "out\n", stderr: "err\n" });
    expect(fake.creates.length).toBe(before + 1);
    expect(fake.creates.at(-1)?.name).toMatch(/^sandboxes-[0-9a-f]{10}$/);
    expect(fake.sprites.size).toBe(0);
  });

  test("with SPRITES_TOKEN set, sprites is picked without -p", async () => {
    const before = fake.creates.length;
    const result = await run(["run", "echo $HOME"]);
    expect(plain(result)).toEqual({ code: 0, stdout: "/home/sprite\n", stderr: "" });
    expect(fake.creates.length).toBe(before + 1);
    expect(fake.sprites.size).toBe(0);
  });

  test("--image is one clear line and exit 125; nothing is created", async () => {
    const before = fake.requests.length;
    const result = await run(["run", "-p", "sprites", "--image", "ubuntu:24.04", "true"]);
    expect(result.code).toBe(125);
    expect(result.stdout).toBe("");
    const lines = result.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toStartWith("sandboxes: provider sprites has no images or templates: every sprite starts from the same base system, so --image cannot be used");
    expect(fake.requests.slice(before).filter((r) => r.startsWith("POST"))).toEqual([]);
  });

  test("--pids (sprites cannot limit processes) is one clear line and exit 125; nothing is created", async () => {
    const before = fake.requests.length;
    const result = await run(["run", "-p", "sprites", "--pids", "100", "true"]);
    expect(plain(result)).toEqual({
      code: 125,
      stdout: "",
      stderr: "sandboxes: provider sprites cannot limit the number of processes (--pids): use -p local or -p docker, or run without --pids\n",
    });
    expect(fake.requests.slice(before).filter((r) => r.startsWith("POST"))).toEqual([]);
  });

  test("kept sprite: exec by id from another machine, list by label over pages, reuse, cp, destroy", async () => {
    const created = await run(["run", "-p", "sprites", "--keep", "--name", "web", "-l", "team=alpha", "echo $GREETING > /tmp/greeting", "-e", "GREETING=hello"]);
    expect(created.code).toBe(0);
    const id = keptId(created.stderr);
    // The sprite's name is its id.
    expect(id).toBe("web");
    expect(fake.sprites.get("web")?.labels).toEqual(expect.arrayContaining(["team=alpha", "sandboxes.name=web"]));

    // A second machine with no local registry at all: only the name and the server know the sprite.
    const other = machine(fake.env());
    const exec = await run(["exec", "-p", "sprites", "web", "cat /tmp/greeting; exit 4"], other.env);
    expect(plain(exec)).toEqual({ code: 4, stdout: "hello\n", stderr: "" });

    // More than one page of the fake's list, with other labels.
    const noise: string[] = [];
    for (let i = 0; i < 3; i++) {
      const kept = await run(["run", "-p", "sprites", "--keep", "-l", `team=beta${i}`, "true"]);
      noise.push(keptId(kept.stderr)!);
    }
    const listed = await run(["list", "-p", "sprites", "-l", "team=alpha", "--json"], other.env);
    expect(listed.code).toBe(0);
    const document = JSON.parse(listed.stdout) as { sandboxes: Array<{ id: string; name: string; labels: Record<string, string>; provider: string }> };
    expect(document.sandboxes).toHaveLength(1);
    expect(document.sandboxes[0]).toMatchObject({ id: "web", name: "web", provider: "sprites", labels: { team: "alpha" } });
    const everything = await run(["list", "-p", "sprites", "--json"], other.env);
    const ids = (JSON.parse(everything.stdout) as { sandboxes: Array<{ id: string }> }).sandboxes.map((s) => s.id).sort();
    expect(ids).toEqual(["web", ...noise].sort());
    const plainList = await run(["list", "-p", "sprites", "-l", "team=alpha"], other.env);
    expect(plainList.stdout).toContain("web");

    const createsBefore = fake.creates.length;
    const reused = await run(["run", "-p", "sprites", "--reuse", "-l", "team=alpha", "cat /tmp/greeting"], other.env);
    expect(reused.code).toBe(0);
    expect(reused.stdout).toBe("hello\n");
    expect(reused.stderr).toContain("reusing sandbox web");
    expect(fake.creates.length).toBe(createsBefore);

    const bytes = new Uint8Array(200_000).map((_, i) => (i * 31 + 7) % 256);
    writeFileSync(join(other.home, "blob.bin"), bytes);
    const up = await run(["cp", "-p", "sprites", join(other.home, "blob.bin"), "web:/tmp/blob.bin"], other.env);
    expect(up.code).toBe(0);
    const size = await run(["exec", "-p", "sprites", "web", "wc -c < /tmp/blob.bin"], other.env);
    expect(size.stdout.trim()).toBe("200000");
    const down = await run(["cp", "-p", "sprites", "web:/tmp/blob.bin", join(other.home, "back.bin")], other.env);
    expect(down.code).toBe(0);
    expect(new Uint8Array(readFileSync(join(other.home, "back.bin")))).toEqual(bytes);
    // A directory both ways keeps its tree.
    mkdirSync(join(other.home, "tree", "sub"), { recursive: true });
    writeFileSync(join(other.home, "tree", "sub", "x.txt"), "nested\n");
    expect((await run(["cp", "-p", "sprites", join(other.home, "tree"), "web:/home/sprite/"], other.env)).code).toBe(0);
    expect((await run(["exec", "-p", "sprites", "web", "cat ~/tree/sub/x.txt"], other.env)).stdout).toBe("nested\n");

    // Binary stdout is passed through byte for byte.
    const raw = await run(["exec", "-p", "sprites", "web", "head -c 4096 /tmp/blob.bin"], other.env);
    expect(raw.code).toBe(0);
    expect(raw.stdoutBytes).toEqual(bytes.subarray(0, 4096));

    const destroyed = await run(["destroy", "-p", "sprites", "web", ...noise], other.env);
    expect(destroyed.code).toBe(0);
    expect(fake.sprites.size).toBe(0);
    const gone = await run(["exec", "-p", "sprites", "web", "true"], other.env);
    expect(gone.code).toBe(125);
    expect(gone.stderr).toContain("web");
  }, 60_000);

  test("--timeout kills the command and exits 124; stdin is forwarded", async () => {
    const slow = await run(["run", "-p", "sprites", "--timeout", "1", "echo started; sleep 30"]);
    expect(slow.code).toBe(124);
    expect(slow.stdout).toBe("started\n");
    const piped = await run(["run", "-p", "sprites", "tr a-z A-Z"], env, "piped text\n");
    expect(plain(piped)).toEqual({ code: 0, stdout: "PIPED TEXT\n", stderr: "" });
    expect(fake.sprites.size).toBe(0);
  });
});

describe("sprites fake after the e2e tests", () => {
  test("the fake holds no sprite", () => {
    expect([...fake.sprites.keys()]).toEqual([]);
    expect(fake.creates.length).toBeGreaterThan(5);
  });
});
