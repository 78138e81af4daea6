/**
 * The compiled binary against the fake Sprites API (our own client inside the binary, the real
 * wire protocol): every invocation is its own process, so reuse, exec by id and list by label
 * only work if the provider keeps them on the "server".
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startFakeSprites, type FakeSprites } from "../fakes/sprites/server";
import { cli, interruptRun, keptId, machines, plain } from "../helpers";
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

  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    test(`${signal} during run destroys the sprite and exits ${code}`, async () => {
      const before = fake.creates.length;
      const { firstLine, exitCode } = await interruptRun(["run", "-p", "sprites", "echo started; sleep 30"], env, signal, () => {
        expect(fake.sprites.size).toBe(1);
      });
      expect(firstLine).toBe("started\n");
      expect(exitCode).toBe(code);
      expect(fake.creates.length).toBe(before + 1);
      expect(fake.sprites.size).toBe(0);
    });
  }
});

describe("sprites faults", () => {
  test("transient 503s on create are retried and the run succeeds with one sprite", async () => {
    const before = fake.creates.length;
    fake.fault({ match: "POST /v1/sprites", kind: "status", status: 503, times: 2 });
    const result = await run(["run", "-p", "sprites", "echo fine"]);
    expect(plain(result)).toEqual({ code: 0, stdout: "fine\n", stderr: "" });
    expect(fake.creates.length).toBe(before + 1);
    expect(fake.sprites.size).toBe(0);
  });

  test("a create whose answer is lost (dropped connection) is found again, not repeated", async () => {
    const before = fake.creates.length;
    fake.fault({ match: "POST /v1/sprites", kind: "drop-after", times: 1 });
    const result = await run(["run", "-p", "sprites", "echo once"]);
    expect(plain(result)).toEqual({ code: 0, stdout: "once\n", stderr: "" });
    expect(fake.creates.length).toBe(before + 1);
    expect(fake.sprites.size).toBe(0);
  });

  test("429 and 500 on list, a refused exec upgrade and a 503 on delete are retried", async () => {
    const kept = await run(["run", "-p", "sprites", "--keep", "-l", "fault=yes", "true"]);
    const id = keptId(kept.stderr)!;
    fake.fault({ match: "GET /v1/sprites", kind: "status", status: 429, times: 1 });
    fake.fault({ match: "GET /v1/sprites", kind: "status", status: 500, times: 1 });
    const listed = await run(["list", "-p", "sprites", "-l", "fault=yes", "--json"]);
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout).sandboxes.map((s: { id: string }) => s.id)).toEqual([id]);
    fake.fault({ match: `GET /v1/sprites/${id}/exec`, kind: "status", status: 502, times: 1 });
    const exec = await run(["exec", "-p", "sprites", id, "echo still here"]);
    expect(plain(exec)).toEqual({ code: 0, stdout: "still here\n", stderr: "" });
    fake.fault({ match: `DELETE /v1/sprites/${id}`, kind: "status", status: 503, times: 1 });
    expect((await run(["destroy", "-p", "sprites", id])).code).toBe(0);
    expect(fake.sprites.size).toBe(0);
  });

  test("after the retry budget: one clear line naming sprites, exit 125, nothing leaked", async () => {
    const before = fake.requests.filter((r) => r === "POST /v1/sprites").length;
    fake.fault({ match: "POST /v1/sprites", kind: "status", status: 503, times: 1000 });
    const result = await run(["run", "-p", "sprites", "echo never"]);
    expect(result.code).toBe(125);
    expect(result.stdout).toBe("");
    const lines = result.stderr.trimEnd().split("\n");
    expect(lines[0]).toStartWith("sandboxes: sprites: creating sprite sandboxes-");
    expect(lines[0]).toContain("503");
    expect(lines.filter((l) => !l.startsWith("  hint:"))).toHaveLength(1);
    expect(fake.requests.filter((r) => r === "POST /v1/sprites").length - before).toBe(4);
    expect(fake.sprites.size).toBe(0);
  });

  test("dropped connections on every create attempt: still never two sprites", async () => {
    const before = fake.creates.length;
    fake.fault({ match: "POST /v1/sprites", kind: "drop-after", times: 1000 });
    const result = await run(["run", "-p", "sprites", "echo recovered"]);
    expect(plain(result)).toEqual({ code: 0, stdout: "recovered\n", stderr: "" });
    expect(fake.creates.length).toBe(before + 1);
    expect(fake.sprites.size).toBe(0);
  });
});

describe("sprites credentials", () => {
  test("without SPRITES_TOKEN, -p sprites is one line naming the variable, exit 125", async () => {
    const bare = machine({ SPRITES_API_URL: fake.url });
    const result = await run(["run", "-p", "sprites", "true"], bare.env);
    expect(result.code).toBe(125);
    expect(result.stdout).toBe("");
    expect(result.stderr.trimEnd().split("\n")).toEqual(["sandboxes: provider sprites is not configured: set SPRITES_TOKEN (or token under [providers.sprites] in config.toml)"]);
  });

  test("token and api_url in config.toml configure sprites; providers never calls the service", async () => {
    const configured = machine();
    const configDir = join(configured.env.XDG_CONFIG_HOME!, "sandboxes");
    mkdirSync(configDir, { recursive: true });
    writeFileSync(join(configDir, "config.toml"), `[providers.sprites]\ntoken = "${fake.env().SPRITES_TOKEN}"\napi_url = "${fake.url}"\n`);
    const requestsBefore = fake.requests.length;
    const report = await run(["providers", "--json"], configured.env);
    expect(report.code).toBe(0);
    const sprites = (JSON.parse(report.stdout) as { providers: Array<{ name: string; configured: boolean; source: string }> }).providers.find((p) => p.name === "sprites");
    expect(sprites).toMatchObject({ configured: true, source: "config.toml" });
    expect(fake.requests.length).toBe(requestsBefore);
    const ran = await run(["run", "-p", "sprites", "echo from config"], configured.env);
    expect(plain(ran)).toEqual({ code: 0, stdout: "from config\n", stderr: "" });
    expect(fake.sprites.size).toBe(0);
  });

  test("providers without a token says what to set", async () => {
    const report = await run(["providers", "--json"], machine().env);
    const sprites = (JSON.parse(report.stdout) as { providers: Array<{ name: string; configured: boolean; missing: string }> }).providers.find((p) => p.name === "sprites");
    expect(sprites).toMatchObject({ configured: false, missing: "set SPRITES_TOKEN (or token under [providers.sprites] in config.toml)" });
  });

  test("a rejected token is one line naming sprites and the variable, exit 125", async () => {
    const guarded = await startFakeSprites({ token: "the-right-one" });
    try {
      const wrong = machine({ SPRITES_TOKEN: "wrong", SPRITES_API_URL: guarded.url });
      const result = await run(["run", "-p", "sprites", "true"], wrong.env);
      expect(result.code).toBe(125);
      const lines = result.stderr.trimEnd().split("\n");
      expect(lines[0]).toStartWith("sandboxes: sprites: the token was rejected");
      expect(lines[0]).toContain("401");
      expect(result.stderr).toContain("SPRITES_TOKEN");
      expect(guarded.sprites.size).toBe(0);
    } finally {
      await guarded.close();
    }
  });
});

describe("sprites fake after the e2e tests", () => {
  test("the fake holds no sprite", () => {
    expect([...fake.sprites.keys()]).toEqual([]);
    expect(fake.creates.length).toBeGreaterThan(5);
  });
});
