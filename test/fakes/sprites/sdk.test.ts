/**
 * The fake Sprites API is faithful: the OFFICIAL client (@fly/sprites, pinned) drives it through
 * every call our own client makes, and where both send the same request our provider's matches
 * the client's. Our provider's own behaviour is in test/providers/sprites.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { APIError, ExecError, FilesystemError, SpritesClient } from "@fly/sprites";
import { spritesDescriptor } from "../../../src/providers/sprites";
import type { Provider } from "../../../src/providers/types";
import { startFakeSprites, type FakeSprites } from "./server";

const stateDir = mkdtempSync(join(tmpdir(), "sandboxes-sprites-sdk-"));
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
