/**
 * Sprites: our provider in-process against the fake, for what the shared suite does not reach.
 * The fake itself is proven faithful by the official client in test/fakes/sprites/sdk.test.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProviderError, SandboxesError } from "../../src/base/errors";
import { spritesDescriptor } from "../../src/providers/sprites";
import { isTransient, parseLabels } from "../../src/providers/sprites/provider";
import type { Provider } from "../../src/providers/types";
import { startFakeSprites, type FakeSprites } from "../fakes/sprites/server";

const stateDir = mkdtempSync(join(tmpdir(), "sandboxes-sprites-provider-"));
let fake: FakeSprites;
let provider: Provider;

beforeAll(async () => {
  // Two per page: the provider has to follow the continuation token.
  fake = await startFakeSprites({ pageSize: 2, token: "sdk-token" });
  provider = await spritesDescriptor.load({ env: fake.env(), config: {}, stateDir });
});

afterAll(async () => {
  await fake.close();
  rmSync(stateDir, { recursive: true, force: true });
});

const bytesOf = (text: string) => new TextEncoder().encode(text);

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
