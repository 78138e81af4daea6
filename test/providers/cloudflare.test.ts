/**
 * The cloudflare provider's own pieces, in-process against the hand-written fake Worker: env
 * through env(1), stdin as a stream, what is and is not sent again, and the terminal's kill.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { readTerminal } from "../helpers";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStore } from "../../src/base/store";
import { cloudflareDescriptor } from "../../src/providers/cloudflare";
import { partsOf, withEnv } from "../../src/providers/cloudflare/provider";
import type { Provider } from "../../src/providers/types";
import { startFakeCloudflare, type FakeCloudflare } from "../fakes/cloudflare/server";

const stateDir = mkdtempSync(join(tmpdir(), "sandboxes-provider-cloudflare-"));
let fake: FakeCloudflare;
let provider: Provider;
let id = "";

beforeAll(async () => {
  fake = await startFakeCloudflare();
  provider = await cloudflareDescriptor.load({ env: fake.env(), config: {}, stateDir });
  id = (await provider.create({ labels: {}, env: { ODD: `a=b 'c' "d"\nline two $HOME` } })).id;
});

afterAll(async () => {
  await provider.destroy(id).catch(() => {});
  await fake.close();
  rmSync(stateDir, { recursive: true, force: true });
});

beforeEach(() => fake.clearFaults());

async function exec(argv: string[], extra: Partial<Parameters<Provider["exec"]>[1]> = {}) {
  let out = "";
  let err = "";
  const outcome = await provider.exec(id, { argv, env: {}, onStdout: (c) => (out += Buffer.from(c)), onStderr: (c) => (err += Buffer.from(c)), ...extra });
  return { ...outcome, out, err };
}

describe("cloudflare provider", () => {
  test("env reaches the command through env(1) unchanged, also before a program named with '='", async () => {
    expect(withEnv({}, ["a=b"])).toEqual(["a=b"]);
    expect(withEnv({ K: "v" }, ["ls"])).toEqual(["env", "K=v", "ls"]);
    expect(withEnv({ K: "v" }, ["./x=y"])).toEqual(["env", "K=v", "sh", "-c", 'exec "$@"', "sh", "./x=y"]);
    expect((await exec(["sh", "-c", 'printf "%s|%s" "$ODD" "$X"'], { env: { X: "y  z" } })).out).toBe(`a=b 'c' "d"\nline two $HOME|y  z`);
    const odd = await exec(["sh", "-c", "mkdir -p /tmp/bin && printf '#!/bin/sh\\necho \"ran $X\"\\n' > '/tmp/bin/x=y' && chmod +x '/tmp/bin/x=y'"]);
    expect(odd.exitCode).toBe(0);
    expect((await exec(["/tmp/bin/x=y"], { env: { X: "it" } })).out).toBe("ran it\n");
  });

  test("stdin as a stream is read to its end and redirected; the file is gone afterwards", async () => {
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("one\n"));
        controller.enqueue(new TextEncoder().encode("two\n"));
        controller.close();
      },
    });
    expect((await exec(["sort", "-r"], { stdin: stream })).out).toBe("two\none\n");
    expect((await exec(["ls", "-A", "/workspace"])).out).toBe("");
  });

  test("a stdin past 32 MiB is refused once that much is read: an endless one ends, and no exec is sent", async () => {
    let pulled = 0;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled += 1 << 20;
        controller.enqueue(new Uint8Array(1 << 20));
      },
    });
    const execs = () => fake.requests.filter((r) => r === `POST /v1/sandbox/${id}/exec`).length;
    const before = execs();
    await expect(exec(["wc", "-c"], { stdin: endless })).rejects.toThrow("stdin is more than the 33554432 bytes a cloudflare sandbox can take");
    // Read up to the limit and a little past it (the stream's own read-ahead), not on and on.
    expect(pulled).toBeLessThan(40 * (1 << 20));
    expect(execs()).toBe(before);
  });

  test("an exec refused with a 503 runs once after the retry; one dropped after it started is not sent again", async () => {
    fake.fault({ match: `POST /v1/sandbox/${id}/exec`, kind: "status", status: 503, times: 1 });
    expect((await exec(["sh", "-c", "echo x >> /tmp/once; wc -l < /tmp/once"])).out.trim()).toBe("1");
    fake.fault({ match: `POST /v1/sandbox/${id}/exec`, kind: "drop-after", times: 1 });
    await expect(exec(["sh", "-c", "echo x >> /tmp/twice"])).rejects.toThrow(/cloudflare/);
    // The dropped command ran on: wait until its line is there, then count.
    for (let i = 0; i < 200 && (await exec(["sh", "-c", "cat /tmp/twice 2>/dev/null"])).out === ""; i++) await Bun.sleep(10);
    expect((await exec(["sh", "-c", "wc -l < /tmp/twice"])).out.trim()).toBe("1");
  });

  test("an unknown sandbox is one line naming it; --image is refused before any request", async () => {
    await expect(provider.exec("aaaaaaaaaaaaaaaaaaaaaaaaaa", { argv: ["true"], env: {}, onStdout: () => {}, onStderr: () => {} })).rejects.toThrow(
      "no cloudflare sandbox aaaaaaaaaaaaaaaaaaaaaaaaaa was created from this machine",
    );
    const before = fake.requests.length;
    await expect(provider.create({ image: "ubuntu", labels: {}, env: {} })).rejects.toThrow("cannot choose an image");
    expect(fake.requests.length).toBe(before);
  });

  test("the records are private and keyed by Worker URL", async () => {
    expect(openStore(stateDir).get<{ url: string }>("cloudflare", id)?.url).toBe(fake.url);
    expect((await Bun.file(join(stateDir, "state.db")).stat()).mode & 0o777).toBe(0o600);
    const elsewhere = await cloudflareDescriptor.load({ env: { CLOUDFLARE_SANDBOX_URL: "http://127.0.0.1:9" }, config: {}, stateDir });
    expect(await elsewhere.list({})).toEqual([]);
    expect(await elsewhere.get(id)).toBeNull();
  });

  test("killing a terminal kills its program in the container, though the bridge keeps terminals alive", async () => {
    const session = await provider.openPty!(id, { argv: ["sh", "-c", "echo ready; exec sleep 3019"], env: {}, cols: 80, rows: 24 });
    const terminal = readTerminal(session.output);
    for (let i = 0; i < 100 && !terminal.text().includes("ready"); i++) await Bun.sleep(20);
    const running = () => [...fake.containers.live.values()].flatMap((c) => fake.containers.processesOf(c)).map((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8");
      } catch {
        return "";
      }
    });
    expect(running().some((line) => line.includes("3019"))).toBe(true);
    await session.kill();
    await Bun.sleep(100);
    expect(running().filter((line) => line.includes("3019"))).toEqual([]);
    expect(await session.exited).toBe(137);
    await terminal.done;
  });
});

describe("cloudflare cp parts", () => {
  /** The parts of `chunks` cut at `size`, each read from its file before the next is asked for. */
  const cut = async (chunks: number[][], size: number) => {
    const stream = new ReadableStream<Uint8Array>({ start(c) { for (const chunk of chunks) c.enqueue(new Uint8Array(chunk)); c.close(); } });
    const parts: number[][] = [];
    for await (const part of partsOf(stream, size)) parts.push([...(await part.file().bytes())]);
    return parts;
  };

  test("a stream cut at the size whatever its chunks: exact multiples end without an empty part, an empty stream is one empty part", async () => {
    expect(await cut([[1, 2, 3], [4, 5], [6, 7, 8, 9]], 4)).toEqual([[1, 2, 3, 4], [5, 6, 7, 8], [9]]);
    expect(await cut([[1, 2, 3, 4, 5, 6, 7, 8]], 4)).toEqual([[1, 2, 3, 4], [5, 6, 7, 8]]);
    expect(await cut([[1], [2], [3], [4]], 2)).toEqual([[1, 2], [3, 4]]);
    expect(await cut([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]], 3)).toEqual([[1, 2, 3], [4, 5, 6], [7, 8, 9], [10]]);
    expect(await cut([], 4)).toEqual([[]]);
  });

  test("a consumer that stops early stops the stream's reading, and no part's file is left", async () => {
    let cancelled = false;
    const stream = new ReadableStream<Uint8Array>({ pull(c) { c.enqueue(new Uint8Array(8)); }, cancel() { cancelled = true; } });
    const files: string[] = [];
    for await (const part of partsOf(stream, 16)) {
      files.push((part.file() as unknown as { name: string }).name);
      break;
    }
    expect(cancelled).toBe(true);
    expect(files.length).toBe(1);
    expect(await Bun.file(files[0]!).exists()).toBe(false);
  });
});

