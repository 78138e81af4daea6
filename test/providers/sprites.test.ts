/**
 * Sprites: first the fake proven faithful by the OFFICIAL client (@fly/sprites, pinned), for
 * every call our own client makes; then our provider in-process against the fake, for what the
 * shared suite does not reach.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { APIError, ExecError, FilesystemError, SpritesClient } from "@fly/sprites";
import { ProviderError, SandboxesError } from "../../src/base/errors";
import { spritesDescriptor } from "../../src/providers/sprites";
import { isTransient, parseLabels } from "../../src/providers/sprites/provider";
import type { Provider } from "../../src/providers/types";
import { startFakeSprites, type FakeSprites } from "../fakes/sprites/server";

const stateDir = mkdtempSync(join(tmpdir(), "sandboxes-sprites-provider-"));
let fake: FakeSprites;
let client: SpritesClient;
let provider: Provider;

beforeAll(async () => {
  // Two per page: both clients have to follow the continuation token.
  fake = await startFakeSprites({ pageSize: 2, token: "sdk-token" });
  client = new SpritesClient("sdk-token", { baseURL: fake.url });
  provider = await spritesDescriptor.load({ env: fake.env(), config: {}, stateDir });
});

afterAll(async () => {
  await fake.close();
  rmSync(stateDir, { recursive: true, force: true });
});

const bytesOf = (text: string) => new TextEncoder().encode(text);

describe("the fake, driven by the official @fly/sprites client", () => {
  test("create, get, list over pages, delete", async () => {
    const made = await client.createSprite("sdk-one", { environment: { FOO: "bar" }, labels: ["team=alpha", "plain"], config: { ramMB: 2048 } });
    expect(made.name).toBe("sdk-one");
    expect(fake.creates.at(-1)).toEqual({ name: "sdk-one", environment: { FOO: "bar" }, labels: ["team=alpha", "plain"], config: { ram_mb: 2048 } });
    const info = await client.getSprite("sdk-one");
    expect(info.labels).toEqual(["team=alpha", "plain"]);
    expect(info.environment).toEqual({ FOO: "bar" });
    expect(info.config?.ramMB).toBe(2048);
    expect(info.createdAt).toBeInstanceOf(Date);
    await client.createSprite("sdk-two");
    await client.createSprite("sdk-three");
    const first = await client.listSprites({ maxResults: 50 });
    expect(first.sprites.map((s) => s.name)).toEqual(["sdk-one", "sdk-two"]);
    expect(first.hasMore).toBe(true);
    const all = await client.listAllSprites();
    expect(all.map((s) => s.name)).toEqual(["sdk-one", "sdk-two", "sdk-three"]);
    expect((await client.listSprites({ prefix: "sdk-t" })).sprites.map((s) => s.name)).toEqual(["sdk-two", "sdk-three"]);
    await client.deleteSprite("sdk-two");
    await client.deleteSprite("sdk-three");
    const gone = await client.getSprite("sdk-two").catch((error) => error);
    expect(gone).toBeInstanceOf(APIError);
    expect((gone as APIError).statusCode).toBe(404);
    const twice = await client.createSprite("sdk-one").catch((error) => error);
    expect((twice as APIError).statusCode).toBe(409);
  });

  test("a wrong token is a 401 APIError", async () => {
    const wrong = new SpritesClient("not-the-token", { baseURL: fake.url });
    const error = await wrong.getSprite("sdk-one").catch((e) => e);
    expect(error).toBeInstanceOf(APIError);
    expect((error as APIError).statusCode).toBe(401);
  });

  test("execFile: stdout and stderr apart, env from create and per command, cwd, exit codes", async () => {
    const sprite = client.sprite("sdk-one");
    const ok = await sprite.execFile("sh", ["-c", 'echo "$FOO $GREETING"; pwd; echo err >&2'], { env: { GREETING: "hi there" }, cwd: "/tmp" });
    expect(ok).toEqual({ stdout: "bar hi there\n/tmp\n", stderr: "err\n", exitCode: 0 });
    const failed = await sprite.execFile("sh", ["-c", "echo out; exit 7"]).catch((e) => e);
    expect(failed).toBeInstanceOf(ExecError);
    expect((failed as ExecError).exitCode).toBe(7);
    expect((failed as ExecError).result.stdout).toBe("out\n");
    const home = await sprite.execFile("sh", ["-c", "echo $HOME; cd && pwd"]);
    expect(home.stdout).toBe("/home/sprite\n/home/sprite\n");
    const binary = await sprite.execFile("sh", ["-c", "printf '\\000\\377\\001'"], { encoding: "buffer" as BufferEncoding }); // the SDK's types omit "buffer", its code has it
    expect(new Uint8Array(binary.stdout as Buffer)).toEqual(new Uint8Array([0, 255, 1]));
  });

  test("spawn: stdin frames and stdin EOF reach the command", async () => {
    const command = client.sprite("sdk-one").spawn("tr", ["a-z", "A-Z"]);
    let out = "";
    command.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    await new Promise<void>((resolve, reject) => {
      command.once("spawn", resolve);
      command.once("error", reject);
    });
    command.stdin.write("piped ");
    command.stdin.end("input\n");
    expect(await command.wait()).toBe(0);
    expect(out).toBe("PIPED INPUT\n");
  });

  test("filesystem: binary bytes round-trip; a missing file is ENOENT", async () => {
    const fs = client.sprite("sdk-one").filesystem();
    const bytes = Buffer.from(new Uint8Array(100_000).map((_, i) => (i * 31 + 7) % 256));
    await fs.writeFile("/tmp/deep/dir/blob.bin", bytes);
    const back = await fs.readFile("/tmp/deep/dir/blob.bin", null);
    expect(Buffer.compare(back, bytes)).toBe(0);
    const size = await client.sprite("sdk-one").execFile("sh", ["-c", "wc -c < /tmp/deep/dir/blob.bin"]);
    expect(String(size.stdout).trim()).toBe("100000");
    const missing = await fs.readFile("/tmp/nope").catch((e) => e);
    expect(missing).toBeInstanceOf(FilesystemError);
    expect((missing as FilesystemError).code).toBe("ENOENT");
    await fs.rm("/tmp/deep", { recursive: true });
    expect(await fs.readFile("/tmp/deep/dir/blob.bin").catch((e) => (e as FilesystemError).code)).toBe("ENOENT");
  });

  test("PTY: the terminal has the asked size, resize reaches it, the exit comes from the close", async () => {
    const command = client.sprite("sdk-one").spawn("sh", ["-c", 'stty size; while read line; do s=$(stty size); echo "size:$s"; [ "$s" = "40 120" ] && exit 3; done'], { tty: true, rows: 27, cols: 91 });
    let out = "";
    command.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    await new Promise<void>((resolve) => command.once("spawn", resolve));
    for (let i = 0; i < 100 && !out.includes("27 91"); i++) await Bun.sleep(20);
    expect(out).toContain("27 91");
    command.resize(120, 40);
    // The new size arrives asynchronously: ask again until the terminal reports it.
    for (let i = 0; i < 200 && !out.includes("size:40 120"); i++) command.stdin.write("go\n"), await Bun.sleep(25);
    // No exit frame in TTY mode: the SDK reads a normal close as 0 and any other as 1.
    expect(await command.wait()).toBe(1);
    expect(out).toContain("40 120");
    const zero = client.sprite("sdk-one").spawn("true", [], { tty: true, rows: 24, cols: 80 });
    expect(await zero.wait()).toBe(0);
  });

  test("our client speaks the same wire: create body and exec parameters match the SDK's", async () => {
    const ours = await provider.create({ name: "ours-one", labels: { team: "beta" }, env: { FOO: "baz" } });
    const body = fake.creates.at(-1)!;
    expect(Object.keys(body).sort()).toEqual(["environment", "labels", "name"]);
    expect(body.name).toBe("ours-one");
    expect(body.environment).toEqual({ FOO: "baz" });
    expect(body.labels).toContain("team=beta");
    expect((body.labels as unknown[]).every((l) => typeof l === "string")).toBe(true);
    // The SDK's view of what our client made.
    expect((await client.getSprite(ours.id)).labels).toContain("team=beta");
    await client.sprite(ours.id).execFile("true", [], { env: { A: "1" }, cwd: "/tmp" });
    const sdkQuery = fake.execs.at(-1)!;
    await provider.exec(ours.id, { argv: ["true"], env: { A: "1" }, cwd: "/tmp", onStdout: () => {}, onStderr: () => {} });
    const ourQuery = fake.execs.find((q, i) => i > fake.execs.indexOf(sdkQuery) && q.getAll("cmd").includes("true"))!;
    for (const key of ["path", "stdin", "env", "dir"]) expect(ourQuery.getAll(key)).toEqual(key === "path" ? ["sh"] : sdkQuery.getAll(key));
    expect(ourQuery.getAll("cmd").at(-1)).toBe("true");
    await provider.destroy(ours.id);
    await client.deleteSprite("sdk-one");
    expect([...fake.sprites.keys()]).toEqual([]);
  });
});

describe("sprites helpers", () => {
  test("labels: key=value strings, a bare label is a key with an empty value", () => {
    expect(parseLabels(["a=b", "c=d=e", "plain"])).toEqual({ a: "b", c: "d=e", plain: "" });
    expect(parseLabels(null)).toEqual({});
  });

  test("transient: 429/5xx, failed upgrades and dropped connections; not 4xx or our own errors", () => {
    expect(isTransient(Object.assign(new Error("socket closed"), { code: "ECONNRESET" }))).toBe(true);
    expect(isTransient(Object.assign(new Error("upgrade failed"), { code: "ws_open_failed" }))).toBe(true);
    expect(isTransient(new ProviderError("sprites", "the token was rejected", 401))).toBe(false);
    expect(isTransient(new SandboxesError("unknown_sandbox", "no sprite named x"))).toBe(false);
  });
});

describe("sprites provider against the fake", () => {
  test("--image is refused with one clear line, before anything is created", async () => {
    const before = fake.requests.length;
    const error = await provider.create({ image: "ubuntu", labels: {}, env: {} }).catch((e) => e);
    expect(error).toBeInstanceOf(SandboxesError);
    expect((error as SandboxesError).message).toBe("provider sprites has no images or templates: every sprite starts from the same base system, so --image cannot be used");
    expect(fake.requests.length).toBe(before);
  });

  test("--name is the sprite's name and so its id; a taken name is one clear error", async () => {
    const made = await provider.create({ name: "named-box", labels: {}, env: {}, cpus: 2, memoryMb: 512 });
    expect(made).toMatchObject({ id: "named-box", name: "named-box" });
    expect(fake.creates.at(-1)?.config).toEqual({ cpus: 2, ram_mb: 512 });
    const again = await provider.create({ name: "named-box", labels: {}, env: {} }).catch((e) => e);
    expect(again).toBeInstanceOf(ProviderError);
    expect((again as Error).message).toBe("sprites: a sprite named named-box already exists (status 409)");
    await provider.destroy("named-box");
  });

  test("a create whose answer was lost is found by its token, not made twice", async () => {
    const before = fake.creates.length;
    fake.fault({ match: "POST /v1/sprites", kind: "drop-after", times: 1 });
    const made = await provider.create({ labels: { lost: "answer" }, env: {} });
    expect(fake.creates.length).toBe(before + 1);
    expect(fake.sprites.has(made.id)).toBe(true);
    await provider.destroy(made.id);
  });

  test("exec in an unknown sprite names it", async () => {
    const error = await provider.exec("no-such-sprite", { argv: ["true"], env: {}, onStdout: () => {}, onStderr: () => {} }).catch((e) => e);
    expect(error).toBeInstanceOf(SandboxesError);
    expect((error as Error).message).toBe("no sprite named no-such-sprite");
  });

  test("a timeout kills the whole process tree, not only the command", async () => {
    const sandbox = await provider.create({ labels: {}, env: {} });
    try {
      const marker = `sleep ${4_000_000 + (process.pid % 100_000)}`;
      const outcome = await provider.exec(sandbox.id, { argv: ["sh", "-c", `${marker} & ${marker}; wait`], env: {}, timeoutMs: 500, onStdout: () => {}, onStderr: () => {} });
      expect(outcome).toEqual({ exitCode: 124, timedOut: true });
      let alive = true;
      for (let i = 0; i < 50 && alive; i++) {
        alive = Bun.spawnSync(["pgrep", "-f", `^${marker}$`]).exitCode === 0;
        if (alive) await Bun.sleep(100);
      }
      expect(alive).toBe(false);
    } finally {
      await provider.destroy(sandbox.id);
    }
  });

  test("an aborted exec stops the command and returns 130", async () => {
    const sandbox = await provider.create({ labels: {}, env: {} });
    try {
      const controller = new AbortController();
      let started!: () => void;
      const up = new Promise<void>((resolve) => (started = resolve));
      const pending = provider.exec(sandbox.id, { argv: ["sh", "-c", "echo up; sleep 3019"], env: {}, signal: controller.signal, onStdout: () => started(), onStderr: () => {} });
      await up;
      controller.abort();
      expect((await pending).exitCode).toBe(130);
      let out = "";
      await provider.exec(sandbox.id, { argv: ["ps", "-eo", "args"], env: {}, onStdout: (c) => (out += Buffer.from(c)), onStderr: () => {} });
      expect(out).not.toContain("sleep 3019");
    } finally {
      await provider.destroy(sandbox.id);
    }
  });

  test("a PTY: resize reaches the terminal and the exact exit code comes back", async () => {
    const sandbox = await provider.create({ labels: {}, env: {} });
    try {
      const session = await provider.openPty!(sandbox.id, { argv: ["sh", "-c", 'stty size; while read line; do s=$(stty size); echo "size:$s"; [ "$s" = "40 120" ] && exit 42; done'], env: {}, cols: 80, rows: 24 });
      let output = "";
      session.onData((chunk) => (output += new TextDecoder().decode(chunk)));
      for (let i = 0; i < 100 && !output.includes("24 80"); i++) await Bun.sleep(20);
      session.resize(120, 40);
      // The new size arrives asynchronously: ask again until the terminal reports it.
      for (let i = 0; i < 200 && !output.includes("size:40 120"); i++) session.write(bytesOf("go\n")), await Bun.sleep(25);
      expect(await session.exited).toBe(42);
      expect(output).toContain("40 120");
      // The exit file was read and removed.
      let left = "";
      await provider.exec(sandbox.id, { argv: ["sh", "-c", "ls -a /tmp"], env: {}, onStdout: (c) => (left += Buffer.from(c)), onStderr: () => {} });
      expect(left).not.toContain(".sandboxes-pty-");
    } finally {
      await provider.destroy(sandbox.id);
    }
  });

  test("list filters by every given label on this side and hides our own labels", async () => {
    const a = await provider.create({ name: "list-a", labels: { team: "x", tier: "1" }, env: {} });
    const b = await provider.create({ labels: { team: "x", tier: "2" }, env: {} });
    const c = await provider.create({ labels: { team: "y" }, env: {} });
    try {
      expect((await provider.list({ labels: { team: "x" } })).map((r) => r.id).sort()).toEqual([a.id, b.id].sort());
      const tierOne = await provider.list({ labels: { team: "x", tier: "1" } });
      expect(tierOne).toHaveLength(1);
      expect(tierOne[0]).toMatchObject({ id: "list-a", name: "list-a", labels: { team: "x", tier: "1" }, state: "running" });
      // Without labels: every sprite of the account, over all pages (two per page here).
      expect((await provider.list({})).map((r) => r.id).sort()).toEqual([...fake.sprites.keys()].sort());
    } finally {
      for (const s of [a, b, c]) await provider.destroy(s.id);
    }
  });
});
