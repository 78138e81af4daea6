/** The Daytona provider in-process (real SDK, local fake): what the shared suite does not cover. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readTerminal } from "../helpers";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { daytonaDescriptor } from "../../src/providers/daytona";
import { imageSource } from "../../src/providers/daytona/provider";
import type { Provider } from "../../src/providers/types";
import { FakeDaytona } from "../fakes/daytona/server";
import { pathInside } from "../fakes/namespaces";

const fake = new FakeDaytona({ apiKey: "unit-key" });
let provider: Provider;

beforeAll(async () => {
  fake.start();
  provider = await daytonaDescriptor.load({ env: { DAYTONA_API_KEY: "unit-key", DAYTONA_API_URL: fake.apiUrl }, config: {}, stateDir: "/nonexistent" });
});

afterAll(async () => {
  await provider.close?.();
  await fake.stop();
});

/**
 * Alive and not a zombie (an orphan's zombie stays when PID 1 does not reap). A fake sandbox has
 * a pid namespace of its own: its pids are read in its /proc, through its holder's root.
 */
function running(pid: number, proc: string): boolean {
  try {
    const stat = readFileSync(`${proc}/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

const procOf = (daytona: FakeDaytona, id: string) => pathInside(daytona.sandboxes.get(id)!.held, "/proc");

const text = (chunks: Uint8Array[]) => Buffer.concat(chunks).toString("utf8");

describe("daytona descriptor", () => {
  const ctx = (env: Record<string, string>, config: Record<string, unknown> = {}) => ({ env, config, stateDir: "/nonexistent" });

  test("says which variable to set when there is no key", async () => {
    expect(await daytonaDescriptor.detect(ctx({}))).toEqual({ configured: false, missing: "set DAYTONA_API_KEY (or api_key under [providers.daytona] in config.toml)" });
  });

  test("the environment beats config.toml; URL and target are reported", async () => {
    expect(await daytonaDescriptor.detect(ctx({ DAYTONA_API_KEY: "k" }, { api_key: "file" }))).toEqual({ configured: true, source: "DAYTONA_API_KEY" });
    expect(await daytonaDescriptor.detect(ctx({}, { api_key: "file", api_url: "http://x/api", target: "eu" }))).toEqual({
      configured: true,
      source: "config.toml",
      details: "api http://x/api, target eu",
    });
  });
});

describe("--image", () => {
  test("registry references are images, bare names snapshots, prefixes decide", () => {
    expect(imageSource(undefined)).toEqual({});
    expect(imageSource("python:3.12")).toEqual({ image: "python:3.12" });
    expect(imageSource("ghcr.io/me/box")).toEqual({ image: "ghcr.io/me/box" });
    expect(imageSource("my-snapshot")).toEqual({ snapshot: "my-snapshot" });
    expect(imageSource("snapshot:daytonaio/sandbox:0.4")).toEqual({ snapshot: "daytonaio/sandbox:0.4" });
    expect(imageSource("image:ubuntu")).toEqual({ image: "ubuntu" });
  });
});

describe("daytona provider against the fake", () => {
  test("names are native: get() by name finds the sandbox", async () => {
    const created = await provider.create({ name: "unit-named", labels: {}, env: {} });
    expect(created.name).toBe("unit-named");
    expect((await provider.get("unit-named"))?.id).toBe(created.id);
    await provider.destroy(created.id);
    expect(await provider.get("unit-named")).toBeNull();
  });

  test("labels of ours and the SDK's are hidden; the user's are kept", async () => {
    const created = await provider.create({ labels: { team: "unit" }, env: {} });
    expect(created.labels).toEqual({ team: "unit" });
    const stored = fake.sandboxes.get(created.id)!.labels;
    expect(Object.keys(stored).sort()).toEqual(["code-toolbox-language", "sandboxes.create-token", "team"]);
    await provider.destroy(created.id);
  });

  test("exec on a sandbox Daytona stopped while idle starts it first", async () => {
    const created = await provider.create({ labels: {}, env: {} });
    await fetch(`${fake.apiUrl}/sandbox/${created.id}/stop`, { method: "POST", headers: { authorization: "Bearer unit-key" } });
    expect(fake.sandboxes.get(created.id)!.state).toBe("stopped");
    const fresh = await daytonaDescriptor.load({ env: { DAYTONA_API_KEY: "unit-key", DAYTONA_API_URL: fake.apiUrl }, config: {}, stateDir: "/nonexistent" });
    expect((await fresh.get(created.id))?.state).toBe("stopped");
    const out: Uint8Array[] = [];
    const outcome = await fresh.exec(created.id, { argv: ["echo", "awake"], env: {}, onStdout: (c) => out.push(c), onStderr: () => {} });
    expect(outcome).toEqual({ exitCode: 0, timedOut: false });
    expect(text(out)).toBe("awake\n");
    expect(fake.sandboxes.get(created.id)!.state).toBe("started");
    await fresh.destroy(created.id);
  });

  test("an aborted exec returns 130 and its process tree is killed", async () => {
    const created = await provider.create({ labels: {}, env: {} });
    const controller = new AbortController();
    const pidsFile = join(fake.sandboxes.get(created.id)!.dir, "pids");
    // Abort once the command has started its tree (it writes the pids first).
    void (async () => {
      while (!existsSync(pidsFile) || !readFileSync(pidsFile, "utf8").includes("\n")) await Bun.sleep(10);
      controller.abort("SIGINT");
    })();
    const outcome = await provider.exec(created.id, {
      argv: ["sh", "-c", "sleep 30 & echo $$ $! > pids; sleep 30; echo never"],
      env: {},
      signal: controller.signal,
      onStdout: () => {},
      onStderr: () => {},
    });
    expect(outcome.timedOut).toBe(false);
    expect(outcome.exitCode).toBe(130);
    expect(fake.sandboxes.get(created.id)!.sessions.size).toBe(0);
    const pids = readFileSync(join(fake.sandboxes.get(created.id)!.dir, "pids"), "utf8").trim().split(" ").map(Number);
    expect(pids).toHaveLength(2);
    const proc = procOf(fake, created.id);
    for (let i = 0; i < 200 && pids.some((pid) => running(pid, proc)); i++) await Bun.sleep(10);
    for (const pid of pids) expect(running(pid, proc)).toBe(false);
    await provider.destroy(created.id);
  });

  test("when the log stream cannot open, the output still arrives whole, stdout and stderr apart", async () => {
    const created = await provider.create({ labels: {}, env: {} });
    fake.inject({ match: /\/command\/[^/]+\/logs$/, status: 502, times: 1 });
    const out: Uint8Array[] = [];
    const err: Uint8Array[] = [];
    const outcome = await provider.exec(created.id, { argv: ["sh", "-c", "echo one; echo two >&2; sleep 0.3; echo three; exit 4"], env: {}, onStdout: (c) => out.push(c), onStderr: (c) => err.push(c) });
    fake.clearFaults();
    // One follow attempt (refused), then the stored logs were read.
    expect(fake.requests.filter((r) => r.includes(created.id) && r.endsWith("/logs"))).toHaveLength(2);
    expect(outcome).toEqual({ exitCode: 4, timedOut: false });
    expect(text(out)).toBe("one\nthree\n");
    expect(text(err)).toBe("two\n");
    await provider.destroy(created.id);
  });

  test("a log stream that outlives its command does not hang exec, and no output is lost or repeated", async () => {
    const older = new FakeDaytona({ logsOutliveCommand: true }).start();
    try {
      const client = await daytonaDescriptor.load({ env: { DAYTONA_API_KEY: "k", DAYTONA_API_URL: older.apiUrl }, config: {}, stateDir: "/nonexistent" });
      const created = await client.create({ labels: {}, env: {} });
      const out: Uint8Array[] = [];
      const err: Uint8Array[] = [];
      const outcome = await client.exec(created.id, { argv: ["sh", "-c", "echo a; echo b >&2; echo c; exit 2"], env: {}, onStdout: (c) => out.push(c), onStderr: (c) => err.push(c) });
      expect(outcome).toEqual({ exitCode: 2, timedOut: false });
      expect(text(out)).toBe("a\nc\n");
      expect(text(err)).toBe("b\n");
      await client.destroy(created.id);
    } finally {
      await older.stop();
    }
  });

  test("timeout: the sandbox's own `timeout` ends the whole tree even where a session delete would not", async () => {
    const older = new FakeDaytona({ sessionDeleteSparesCommands: true }).start();
    try {
      const client = await daytonaDescriptor.load({ env: { DAYTONA_API_KEY: "k", DAYTONA_API_URL: older.apiUrl }, config: {}, stateDir: "/nonexistent" });
      const created = await client.create({ labels: {}, env: {} });
      const outcome = await client.exec(created.id, { argv: ["sh", "-c", "sleep 30 & echo $$ $! > pids; sleep 30"], env: {}, timeoutMs: 700, onStdout: () => {}, onStderr: () => {} });
      expect(outcome).toEqual({ exitCode: 124, timedOut: true });
      const pids = readFileSync(join(older.sandboxes.get(created.id)!.dir, "pids"), "utf8").trim().split(" ").map(Number);
      const proc = procOf(older, created.id);
      for (let i = 0; i < 50 && pids.some((pid) => running(pid, proc)); i++) await Bun.sleep(100);
      for (const pid of pids) expect(running(pid, proc)).toBe(false);
      await client.destroy(created.id);
    } finally {
      await older.stop();
    }
  });

  test("a sandbox still starting is waited for (the SDK polls until started)", async () => {
    const slow = new FakeDaytona({ initialState: "creating" }).start();
    try {
      const client = await daytonaDescriptor.load({ env: { DAYTONA_API_KEY: "k", DAYTONA_API_URL: slow.apiUrl }, config: {}, stateDir: "/nonexistent" });
      const created = await client.create({ labels: {}, env: {} });
      expect(created.state).toBe("running");
      expect(slow.requests.filter((r) => r === `GET /api/sandbox/${created.id}`).length).toBeGreaterThan(0);
      await client.destroy(created.id);
    } finally {
      await slow.stop();
    }
  });

  test("a create that fails after Daytona made the sandbox (failed build, error after the work) leaves nothing", async () => {
    const failing = new FakeDaytona({ initialState: "creating", failBuild: true }).start();
    try {
      const client = await daytonaDescriptor.load({ env: { DAYTONA_API_KEY: "k", DAYTONA_API_URL: failing.apiUrl }, config: {}, stateDir: "/nonexistent" });
      await expect(client.create({ image: "python:3.12", labels: {}, env: {} })).rejects.toThrow(/daytona: create sandbox failed: .*build_failed/);
      expect(failing.live()).toHaveLength(0);
      expect(failing.requests).toContain("POST /api/sandbox");
    } finally {
      await failing.stop();
    }
    fake.inject({ match: "POST /api/sandbox", afterHandling: true, status: 400, times: 1 });
    await expect(provider.create({ labels: { after: "work" }, env: {} })).rejects.toThrow("daytona: create sandbox failed: Bad Request (status 400)");
    fake.clearFaults();
    expect(fake.live().filter((s) => s.labels.after === "work")).toHaveLength(0);
  });

  test("argv is passed verbatim: quotes, spaces, dollars and newlines", async () => {
    const created = await provider.create({ labels: {}, env: {} });
    const out: Uint8Array[] = [];
    const args = ["it's", "two words", "$HOME", "line\nbreak", "*"];
    await provider.exec(created.id, { argv: ["printf", "[%s]", ...args], env: { "WITH_QUOTE": "a'b" }, onStdout: (c) => out.push(c), onStderr: () => {} });
    expect(text(out)).toBe(args.map((a) => `[${a}]`).join(""));
    await provider.destroy(created.id);
  });

  test("pty: the typed command line stays hidden, resize reaches the terminal, input flows", async () => {
    const created = await provider.create({ labels: {}, env: {} });
    const session = await provider.openPty!(created.id, { argv: ["sh", "-c", 'stty size; read line; echo got:$line; while read line; do s=$(stty size); echo "size:$s"; [ "$s" = "40 120" ] && exit 3; done'], env: { PTY_VAR: "x" }, cols: 100, rows: 30 });
    const terminal = readTerminal(session.output);
    for (let i = 0; i < 100 && !terminal.text().includes("30 100"); i++) await Bun.sleep(20);
    session.write("hello\r");
    for (let i = 0; i < 200 && !terminal.text().includes("got:hello"); i++) await Bun.sleep(10);
    session.resize(120, 40);
    // The new size arrives asynchronously: ask again until the terminal reports it.
    for (let i = 0; i < 200 && !terminal.text().includes("size:40 120"); i++) session.write("\r"), await Bun.sleep(25);
    expect(await session.exited).toBe(3);
    await terminal.done;
    expect(terminal.text()).toContain("30 100");
    expect(terminal.text()).toContain("got:hello");
    expect(terminal.text()).toContain("40 120");
    expect(terminal.text()).not.toContain("printf");
    expect(terminal.text()).not.toContain("exec sh");
    await provider.destroy(created.id);
  });
});

describe("daytona fake: one filesystem and process space per sandbox", () => {
  const run = async (id: string, script: string) => {
    const out: Uint8Array[] = [];
    const outcome = await provider.exec(id, { argv: ["sh", "-c", script], env: {}, onStdout: (c) => out.push(c), onStderr: () => {} });
    return { ...outcome, stdout: text(out) };
  };

  test("a file written in sandbox A's /tmp is not in sandbox B's, and A's processes are not in B's /proc", async () => {
    const a = await provider.create({ labels: {}, env: {} });
    const b = await provider.create({ labels: {}, env: {} });
    const stop = new AbortController();
    const sleeper = provider.exec(a.id, { argv: ["sleep", "31337"], env: {}, signal: stop.signal, onStdout: () => {}, onStderr: () => {} });
    try {
      expect((await run(a.id, "echo only-a > /tmp/mark-a")).exitCode).toBe(0);
      // The bracket keeps grep from finding its own command line.
      const look = "cat /tmp/mark-a 2>/dev/null || echo no-file; if cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -q 'sleep 3133[7]'; then echo sleeper; else echo no-sleeper; fi";
      let inA = "";
      for (let i = 0; i < 100 && !inA.includes("sleeper\n"); i++) inA = (await run(a.id, look)).stdout;
      expect(inA).toBe("only-a\nsleeper\n");
      expect((await run(b.id, look)).stdout).toBe("no-file\nno-sleeper\n");
      expect((await run(b.id, "echo $HOME; pwd")).stdout).toBe("/home/daytona\n/home/daytona\n");
    } finally {
      stop.abort();
      await sleeper.catch(() => {});
      await provider.destroy(a.id);
      await provider.destroy(b.id);
    }
  });
});

describe("daytona uploads: backpressure", () => {
  test("the SDK's streamed upload, as the provider uses it, reads the archive only as fast as the receiver takes it: a slow one holds the sender, whose memory stays flat", () => {
    // In a process of its own (its peak memory is its own): 120 MiB to a receiver of ~25 MB/s.
    const run = Bun.spawnSync([process.execPath, join(import.meta.dir, "../fakes/daytona/slow-upload.ts")], { stdout: "pipe", stderr: "pipe" });
    expect(run.stderr.toString()).toBe("");
    const { seconds, read, readSoFar, peak } = JSON.parse(run.stdout.toString()) as { seconds: number; read: number; readSoFar: number[]; peak: number };
    const MiB = 1024 * 1024;
    expect(read).toBe(120 * MiB);
    // Read ahead of the receiver, the whole source would be in memory within the first samples.
    expect(readSoFar[3]!).toBeLessThan(60 * MiB);
    expect(seconds).toBeGreaterThan(3);
    expect(peak).toBeLessThan(250 * MiB);
  }, 60_000);
});
