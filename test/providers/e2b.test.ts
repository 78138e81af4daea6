/** The e2b provider in-process against the fake: what the shared suite does not reach. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readTerminal } from "../helpers";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProviderError, SandboxesError } from "../../src/base/errors";
import { e2bDescriptor } from "../../src/providers/e2b";
import { commandLine, exitCodeOf, isTransient } from "../../src/providers/e2b/provider";
import type { Provider } from "../../src/providers/types";
import { startFakeE2B, type FakeE2B } from "../fakes/e2b/server";
import { archiveOf } from "../helpers";

const stateDir = mkdtempSync(join(tmpdir(), "sandboxes-e2b-provider-"));
let fake: FakeE2B;
let provider: Provider;

beforeAll(async () => {
  fake = await startFakeE2B();
  provider = await e2bDescriptor.load({ env: fake.env(), config: {}, stateDir });
});

afterAll(async () => {
  await fake.close();
  rmSync(stateDir, { recursive: true, force: true });
});

describe("e2b helpers", () => {
  test("envd end events become 0-255 or 128+N", () => {
    expect(exitCodeOf({ exitCode: 0, status: "exit status 0" })).toBe(0);
    expect(exitCodeOf({ exitCode: 3, status: "exit status 3" })).toBe(3);
    expect(exitCodeOf({ exitCode: -1, status: "signal: killed" })).toBe(137);
    expect(exitCodeOf({ exitCode: -1, status: "signal: terminated" })).toBe(143);
    expect(exitCodeOf({ exitCode: -1, status: "" })).toBe(137);
  });

  test("argv survives the bash -l -c line unchanged", async () => {
    const argv = ["printf", "[%s]", "it's", "two words", "$HOME", "`x`", ""];
    const child = Bun.spawn(["bash", "-c", commandLine(argv)], { stdout: "pipe" });
    expect(await new Response(child.stdout).text()).toBe("[it's][two words][$HOME][`x`][]");
    expect(await child.exited).toBe(0);
  });

  test("transient: 429/5xx and dropped connections; not 4xx or our own errors", () => {
    expect(isTransient(Object.assign(new Error("503: busy"), { statusCode: 503 }))).toBe(true);
    expect(isTransient(Object.assign(new Error("Rate limit"), { name: "RateLimitError" }))).toBe(true);
    expect(isTransient(Object.assign(new TypeError("The socket connection was closed unexpectedly"), { code: "ECONNRESET" }))).toBe(true);
    expect(isTransient(Object.assign(new Error("400: bad template"), { statusCode: 400 }))).toBe(false);
    expect(isTransient(new ProviderError("e2b", "the API key was rejected", 401))).toBe(false);
  });
});

describe("e2b provider against the fake", () => {
  test("a PTY runs the asked argv, and resize reaches the terminal", async () => {
    const sandbox = await provider.create({ labels: {}, env: {} });
    try {
      const session = await provider.openPty!(sandbox.id, { argv: ["sh", "-c", 'stty size; while read line; do s=$(stty size); echo "size:$s"; [ "$s" = "40 120" ] && exit 3; done'], env: {}, cols: 80, rows: 24 });
      const terminal = readTerminal(session.output);
      for (let i = 0; i < 100 && !terminal.text().includes("24 80"); i++) await Bun.sleep(20);
      session.resize(120, 40);
      // The new size arrives asynchronously: ask again until the terminal reports it.
      for (let i = 0; i < 200 && !terminal.text().includes("size:40 120"); i++) session.write("\n"), await Bun.sleep(25);
      expect(await session.exited).toBe(3);
      await terminal.done;
      expect(terminal.text()).toContain("24 80");
      expect(terminal.text()).toContain("40 120");
    } finally {
      await provider.destroy(sandbox.id);
    }
  });

  test("keystrokes reach the PTY in the order typed, even when one SendInput is slow", async () => {
    const sandbox = await provider.create({ labels: {}, env: {} });
    try {
      const session = await provider.openPty!(sandbox.id, { argv: ["sh", "-c", 'stty -echo; echo ready; read line; echo "[$line]"'], env: {}, cols: 80, rows: 24 });
      const terminal = readTerminal(session.output);
      for (let i = 0; i < 100 && !terminal.text().includes("ready"); i++) await Bun.sleep(20);
      // Each SendInput is its own request: the first one held up must not let the others pass it.
      fake.fault({ match: "POST /process.Process/SendInput", kind: "slow", delayMs: 300 });
      for (const key of ["a", "b", "c", "\n"]) session.write(key);
      expect(await session.exited).toBe(0);
      await terminal.done;
      expect(terminal.text()).toContain("[abc]");
    } finally {
      fake.clearFaults();
      await provider.destroy(sandbox.id);
    }
  });

  test("files keep their modes both ways", async () => {
    const local = mkdtempSync(join(tmpdir(), "sandboxes-e2b-modes-"));
    writeFileSync(join(local, "run.sh"), "#!/bin/sh\necho ran\n", { mode: 0o755 });
    writeFileSync(join(local, "secret.txt"), "s\n", { mode: 0o600 });
    const packed = Bun.spawnSync(["tar", "-c", "-f", "-", "-C", local, "run.sh", "secret.txt"]).stdout;
    const sandbox = await provider.create({ labels: {}, env: {} });
    try {
      await provider.putArchive!(sandbox.id, "/home/user/modes", new Blob([new Uint8Array(packed)]));
      const out: Uint8Array[] = [];
      const result = await provider.exec(sandbox.id, { argv: ["sh", "-c", "stat -c '%n %a' run.sh secret.txt; ./run.sh"], env: {}, cwd: "/home/user/modes", onStdout: (c) => out.push(c), onStderr: () => {} });
      expect(result.exitCode).toBe(0);
      expect(Buffer.concat(out).toString()).toBe("run.sh 755\nsecret.txt 600\nran\n");
      const back = await archiveOf(provider, sandbox.id, "/home/user/modes");
      const listing = Bun.spawnSync(["tar", "-t", "-v", "-f", "-"], { stdin: back }).stdout.toString();
      expect(listing).toMatch(/^-rwxr-xr-x .* modes\/run\.sh$/m);
      expect(listing).toMatch(/^-rw------- .* modes\/secret\.txt$/m);
    } finally {
      await provider.destroy(sandbox.id);
      rmSync(local, { recursive: true, force: true });
    }
  });

  test("labels are stored as metadata; our own keys stay hidden; the name comes back", async () => {
    const sandbox = await provider.create({ name: "named-one", labels: { owner: "me" }, env: {} });
    try {
      expect(fake.sandboxes.get(sandbox.id)?.metadata).toMatchObject({ owner: "me", "sandboxes.name": "named-one" });
      const record = await provider.get(sandbox.id);
      expect(record).toMatchObject({ id: sandbox.id, name: "named-one", labels: { owner: "me" }, state: "running", image: "base" });
    } finally {
      await provider.destroy(sandbox.id);
    }
  });

  test("exec on an unknown id is a clear user error; a 503 on get is retried", async () => {
    const error = await provider.exec("ithisdoesnotexist000", { argv: ["true"], env: {}, onStdout: () => {}, onStderr: () => {} }).catch((e) => e);
    expect(error).toBeInstanceOf(SandboxesError);
    expect((error as Error).message).toContain("no e2b sandbox with id ithisdoesnotexist000");
    fake.fault({ match: "GET /sandboxes/ithisdoesnotexist000", kind: "status", status: 503, times: 1 });
    expect(await provider.get("ithisdoesnotexist000")).toBeNull();
    expect(fake.requests.filter((r) => r === "GET /sandboxes/ithisdoesnotexist000")).toHaveLength(2);
  });

  test("a working directory that does not exist is envd's own sentence, named for e2b", async () => {
    const sandbox = await provider.create({ labels: {}, env: {} });
    try {
      const error = await provider.exec(sandbox.id, { argv: ["true"], env: {}, cwd: "/home/user/nope", onStdout: () => {}, onStderr: () => {} }).catch((e) => e);
      expect(error).toBeInstanceOf(ProviderError);
      expect((error as Error).message).toBe("e2b: cannot run true in the sandbox: cwd '/home/user/nope' does not exist");
    } finally {
      await provider.destroy(sandbox.id);
    }
  });

  test("a rejected API key is a provider error that says what to check, not retried", async () => {
    const before = fake.requests.length;
    fake.fault({ match: "POST /v2/sandboxes", kind: "status", status: 401, times: 1 });
    const error = await provider.create({ labels: {}, env: {} }).catch((e) => e);
    expect(error).toBeInstanceOf(ProviderError);
    expect((error as ProviderError).message).toBe("e2b: the API key was rejected (status 401)");
    expect((error as ProviderError).hint).toContain("E2B_API_KEY");
    expect(fake.requests.slice(before).filter((r) => r === "POST /v2/sandboxes")).toHaveLength(1);
    expect(fake.sandboxes.size).toBe(0);
  });

  test("the lifetime comes from ttlSeconds, else ttl in config.toml, else E2B's 300 s", async () => {
    const configured = await e2bDescriptor.load({ env: fake.env(), config: { ttl: 900 }, stateDir });
    for (const [p, spec, expected] of [
      [provider, { ttlSeconds: 42 }, 42],
      [configured, {}, 900],
      [provider, {}, 300],
    ] as const) {
      const sandbox = await p.create({ labels: {}, env: {}, ...spec });
      expect(fake.creates.at(-1)?.timeout).toBe(expected);
      await p.destroy(sandbox.id);
    }
  });

  test("--network none asks E2B for a sandbox without internet access", async () => {
    const interfaces = async (id: string) => {
      const out: Uint8Array[] = [];
      await provider.exec(id, { argv: ["sh", "-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"], env: {}, onStdout: (c) => out.push(c), onStderr: () => {} });
      return Buffer.concat(out).toString().trim().split("\n");
    };
    const offline = await provider.create({ labels: {}, env: {}, network: { mode: "none", allow: [] } });
    const online = await provider.create({ labels: {}, env: {} });
    try {
      expect(fake.creates.at(-2)?.allow_internet_access).toBe(false);
      expect(fake.creates.at(-1)?.allow_internet_access).toBeUndefined();
      expect(await interfaces(offline.id)).toEqual(["lo"]);
      expect(await interfaces(online.id)).toContain("lo");
    } finally {
      await provider.destroy(offline.id);
      await provider.destroy(online.id);
    }
  });
});
