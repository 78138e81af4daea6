/** The hopx provider in-process against the fake: what the shared suite does not reach. */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hopxDescriptor } from "../../src/providers/hopx";
import { commandLine } from "../../src/providers/hopx/pty";
import { writeFileRequest } from "../../src/providers/hopx/provider";
import type { ExecSpec, Provider } from "../../src/providers/types";
import { archiveOf } from "../helpers";
import { startFakeHopx, type FakeHopx } from "../fakes/hopx/server";

const stateDir = mkdtempSync(join(tmpdir(), "sandboxes-hopx-provider-"));
let fake: FakeHopx;
let provider: Provider;
let id: string;

beforeAll(async () => {
  fake = await startFakeHopx();
  provider = await hopxDescriptor.load({ env: fake.env(), config: {}, stateDir });
  id = (await provider.create({ labels: {}, env: {} })).id;
});

afterAll(async () => {
  await provider.destroy(id).catch(() => {});
  await fake.close();
  rmSync(stateDir, { recursive: true, force: true });
});

async function run(argv: string[], extra: Partial<ExecSpec> = {}) {
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  const outcome = await provider.exec(id, { argv, env: {}, onStdout: (c) => out.push(c), onStderr: (c) => err.push(c), ...extra });
  return { ...outcome, stdout: Buffer.concat(out), stderr: Buffer.concat(err) };
}

/** The test's `sleep 301N` processes still alive in the sandbox (ps works: the fake has its own /proc). */
async function sleepers(): Promise<string[]> {
  const ps = (await run(["ps", "-eo", "args"])).stdout.toString().split("\n");
  expect(ps).toContain("ps -eo args");
  return ps.filter((line) => line.startsWith("sleep 301"));
}

describe("hopx exec through the agent", () => {
  test("argv words reach the command unchanged; binary output comes back byte for byte", async () => {
    const words = await run(["printf", "[%s]", "it's", "two words", "$HOME", "`x`", ""]);
    expect(words.stdout.toString()).toBe("[it's][two words][$HOME][`x`][]");
    const binary = await run(["sh", "-c", "printf '\\000\\377\\200abc\\n'; printf '\\376' >&2"]);
    expect([...binary.stdout]).toEqual([0, 255, 128, 97, 98, 99, 10]);
    expect([...binary.stderr]).toEqual([254]);
    expect(fake.commands.at(-1)).toMatchObject({ command: "/bin/sh", timeout: 86_400 });
  });

  test("a timeout kills the whole process tree in the sandbox, not only the shell", async () => {
    const result = await run(["sh", "-c", "sleep 3011 & sleep 3012; echo never"], { timeoutMs: 800 });
    expect(result).toMatchObject({ exitCode: 124, timedOut: true });
    // The agent's own bound stays behind ours: the limit plus the grace for its answer.
    expect(fake.commands.at(-1)).toMatchObject({ timeout: 31 });
    expect(await sleepers()).toEqual([]);
  });

  test("an aborted exec kills the command in the sandbox and returns 130", async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort("SIGINT"), 300);
    expect(await run(["sh", "-c", "sleep 3013 & sleep 3014"], { signal: controller.signal })).toMatchObject({ exitCode: 130, timedOut: false });
    expect(await sleepers()).toEqual([]);
  });

  test("stdin larger than one chunk arrives whole and in order, as a stream", async () => {
    const bytes = new Uint8Array(2_500_000).map((_, i) => (i * 7 + (i >> 12)) % 256);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let offset = 0; offset < bytes.length; offset += 300_000) controller.enqueue(bytes.subarray(offset, offset + 300_000));
        controller.close();
      },
    });
    const result = await run(["sh", "-c", "cat > /tmp/in.bin; wc -c < /tmp/in.bin; ls /tmp | grep -c sandboxes || true"], { stdin: stream });
    expect(result.stdout.toString().replace(/ /g, "")).toBe("2500000\n0\n");
    const back = await new Bun.Archive(await archiveOf(provider, id, "/tmp/in.bin")).files();
    expect(new Uint8Array(await back.get("in.bin")!.arrayBuffer())).toEqual(bytes);
  }, 30_000);

  test("a command that never reads a silent stdin still finishes", async () => {
    const silent = new ReadableStream<Uint8Array>({ start() {} });
    expect((await run(["echo", "done"], { stdin: silent })).stdout.toString()).toBe("done\n");
  });

  test("a working directory the agent cannot enter is its own sentence, named for hopx", async () => {
    await expect(run(["pwd"], { cwd: "/no/such/dir" })).rejects.toThrow("hopx: pwd did not finish in the sandbox: chdir /no/such/dir: no such file or directory");
  });

  test("an expired token is refreshed once and the call goes through", async () => {
    fake.fault({ match: "POST /commands/run", kind: "status", status: 401 });
    const before = fake.requests.filter((r) => r.endsWith("/token/refresh")).length;
    expect((await run(["echo", "again"])).stdout.toString()).toBe("again\n");
    expect(fake.requests.filter((r) => r.endsWith("/token/refresh")).length).toBe(before + 1);
  });

  test("a command is never sent twice: a dropped answer is an error that says it may still run", async () => {
    fake.fault({ match: "POST /commands/run", kind: "drop-after" });
    await expect(run(["true"])).rejects.toThrow("hopx: cannot run true in sandbox");
    expect(fake.commands.filter((c) => JSON.stringify(c.args).includes('"true"')).length).toBe(1);
  });
});

describe("hopx sandboxes", () => {
  test("create maps image, ttl, network and env; a numeric image is a template id", async () => {
    const made = await provider.create({ image: "42", labels: { k: "v" }, env: { A: "1" }, ttlSeconds: 120, network: { mode: "none", allow: [] }, name: "box" });
    try {
      expect(fake.creates.at(-1)).toEqual({ template_id: "42", timeout_seconds: 120, internet_access: false, env_vars: { A: "1" } });
      expect(await provider.get(made.id)).toMatchObject({ id: made.id, name: "box", labels: { k: "v" }, state: "running", image: "42" });
    } finally {
      await provider.destroy(made.id);
    }
  });

  test("a paused sandbox is resumed before its agent is used", async () => {
    const other = await hopxDescriptor.load({ env: fake.env(), config: {}, stateDir });
    fake.sandboxes.get(id)!.status = "paused";
    const out: Uint8Array[] = [];
    await other.exec(id, { argv: ["echo", "awake"], env: {}, onStdout: (c) => out.push(c), onStderr: () => {} });
    expect(Buffer.concat(out).toString()).toBe("awake\n");
    expect(fake.requests).toContain(`POST /v1/sandboxes/${id}/resume`);
  });

  test("an unknown id: get() is null and exec is one user error naming it", async () => {
    expect(await provider.get("nope-000")).toBeNull();
    await expect(provider.exec("nope-000", { argv: ["true"], env: {}, onStdout: () => {}, onStderr: () => {} })).rejects.toThrow("no hopx sandbox with id nope-000");
  });

  test("the terminal line: env and cwd quoted, argv exec'd behind the marker", () => {
    expect(commandLine({ argv: ["sh", "-c", "echo $X"], env: { X: "a b" }, cwd: "/tmp/my dir", cols: 80, rows: 24 })).toBe(
      " printf '\\036\\036sandboxes\\036\\036'; cd -- '/tmp/my dir' && exec env 'X=a b' sh -c 'echo $X'\n",
    );
  });
});

describe("hopx files/write body, written as the file is read", () => {
  test("is JSON.stringify's, byte for byte, however the file arrives in chunks (base64 takes 3 bytes at a time)", async () => {
    const data = new Uint8Array(1000).map((_, i) => (i * 131 + 17) % 256);
    const path = "/tmp/ünïcode \"quoted\".tar";
    const expected = JSON.stringify({ path, content: Buffer.from(data).toString("base64"), encoding: "base64", overwrite: true, mode: "0600" });
    for (const size of [1, 2, 3, 4, 5, 7, 64, 999, 1000]) {
      const chunks: Uint8Array[] = [];
      for (let at = 0; at < data.length; at += size) chunks.push(data.slice(at, at + size));
      const source = { stream: () => new ReadableStream<Uint8Array>({ start(c) { for (const chunk of chunks) c.enqueue(chunk); c.close(); } }) };
      const written: Uint8Array[] = [];
      await writeFileRequest(path, source, (chunk) => written.push(chunk));
      expect(Buffer.concat(written).toString("utf8")).toBe(expected);
    }
    const none: Uint8Array[] = [];
    await writeFileRequest("/e", { stream: () => new Blob([]).stream() }, (chunk) => none.push(chunk));
    expect(Buffer.concat(none).toString("utf8")).toBe(JSON.stringify({ path: "/e", content: "", encoding: "base64", overwrite: true, mode: "0600" }));
  });
});

