/**
 * The fake Vercel Sandbox API is faithful: the OFFICIAL @vercel/sandbox 3.5.0 (devDependency,
 * pinned) drives it through every call our own client makes — create on /v3 (image) and /v2
 * (runtime) with name, tags, env, timeout, vcpus and deny-all; get with resume; list with a tag
 * filter over pages; a command with its streamed logs; a detached command read through logs,
 * wait and kill; files written as a gzipped tar and read back; delete — and gets the answers its
 * own validators (zod) accept. The SDK has no base URL option, so its `fetch` sends
 * https://vercel.com/api/... to the fake.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Sandbox } from "@vercel/sandbox";
import { startFakeVercel, type FakeVercel } from "./server";

let fake: FakeVercel;
let credentials: { token: string; teamId: string; projectId: string; fetch: typeof fetch };

beforeAll(async () => {
  fake = await startFakeVercel({ pageSize: 2 });
  const toFake = ((input: string | URL | Request, init?: RequestInit) => fetch(String(input).replace("https://vercel.com/api", fake.url), init)) as typeof fetch;
  credentials = { token: fake.token, teamId: fake.teamId, projectId: fake.projectId, fetch: toFake };
});

afterAll(async () => {
  await fake.close();
});

describe("the official @vercel/sandbox against the fake", () => {
  test("create, get, commands (streamed, detached, killed), files, list by tag over pages, delete", async () => {
    const sandbox = await Sandbox.create({ ...credentials, name: "sdk-one", tags: { team: "alpha" }, env: { FROM_CREATE: "yes" }, timeout: 600_000, resources: { vcpus: 4 }, networkPolicy: "deny-all" });
    expect(fake.requests.at(-1)).toBe("POST /v3/sandboxes");
    expect(fake.queries.at(-1)?.get("teamId")).toBe(fake.teamId);
    expect(fake.creates.at(-1)).toMatchObject({ projectId: fake.projectId, name: "sdk-one", ports: [], timeout: 600_000, resources: { vcpus: 4 }, networkPolicy: { mode: "deny-all" }, env: { FROM_CREATE: "yes" }, tags: { team: "alpha" } });
    expect(sandbox.name).toBe("sdk-one");
    expect(sandbox.status).toBe("running");
    expect(sandbox.vcpus).toBe(4);
    expect(sandbox.memory).toBe(8192);
    expect(sandbox.tags).toEqual({ team: "alpha" });

    // A command with wait + logs: one NDJSON answer, output and exit code.
    const ran = await sandbox.runCommand({ cmd: "sh", args: ["-c", 'echo "$FROM_CREATE $PER_RUN"; pwd; echo oops >&2; exit 3'], env: { PER_RUN: "run" }, cwd: "/tmp" });
    expect(ran.exitCode).toBe(3);
    expect(await ran.stdout()).toBe("yes run\n/tmp\n");
    expect(await ran.stderr()).toBe("oops\n");
    expect(fake.commands.at(-1)).toMatchObject({ command: "sh", cwd: "/tmp", wait: true, logs: true, sudo: false });
    // deny-all: nothing but loopback in the sandbox (/proc/net is the reader's network namespace).
    const net = await sandbox.runCommand("sh", ["-c", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"]);
    expect((await net.stdout()).trim()).toBe("lo");

    // Detached: logs while it runs, then kill, then wait reports the signal.
    const detached = await sandbox.runCommand({ cmd: "sh", args: ["-c", "echo started; exec sleep 30"], detached: true });
    expect(detached.exitCode).toBeNull();
    for await (const log of detached.logs()) {
      expect(log).toEqual({ stream: "stdout", data: "started\n" });
      break;
    }
    await detached.kill("SIGTERM");
    const ended = await detached.wait();
    expect(ended.exitCode).toBe(143);
    const finished = await sandbox.runCommand({ cmd: "sh", args: ["-c", "echo done"], detached: true });
    expect((await finished.wait()).exitCode).toBe(0);
    expect(await finished.stdout()).toBe("done\n");

    // Files: a gzipped tar extracted at /, read back as bytes; a missing file is null.
    const bytes = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7919) % 256));
    await sandbox.writeFiles([{ path: "/tmp/blob.bin", content: bytes }, { path: "notes/hello.txt", content: Buffer.from("hello\n") }]);
    expect(fake.requests.at(-1)).toMatch(/^POST \/v2\/sandboxes\/sessions\/[^/]+\/fs\/write$/);
    expect(Buffer.compare((await sandbox.readFileToBuffer({ path: "/tmp/blob.bin" }))!, bytes)).toBe(0);
    expect((await sandbox.readFileToBuffer({ path: "notes/hello.txt" }))?.toString()).toBe("hello\n");
    expect(await sandbox.readFileToBuffer({ path: "/tmp/none.txt" })).toBeNull();

    // A runtime goes to /v2/sandboxes; two more sandboxes make three pages of two.
    const runtime = await Sandbox.create({ ...credentials, name: "sdk-two", runtime: "python3.13", tags: { team: "beta" } });
    expect(fake.requests.at(-1)).toBe("POST /v2/sandboxes");
    expect(runtime.runtime).toBe("python3.13");
    const third = await Sandbox.create({ ...credentials, tags: { team: "alpha" } });
    const everything = await (await Sandbox.list({ ...credentials })).toArray();
    expect(everything.map((s) => s.name).sort()).toEqual(["sdk-one", "sdk-two", third.name].sort());
    expect(fake.queries.filter((_, i) => fake.requests[i] === "GET /v2/sandboxes").map((q) => q.get("cursor"))).toEqual([null, "2"]);
    const alpha = await (await Sandbox.list({ ...credentials, tags: { team: "alpha" } })).toArray();
    expect(alpha.map((s) => s.name).sort()).toEqual(["sdk-one", third.name].sort());
    expect(fake.queries.at(-1)?.getAll("tags")).toEqual(["team:alpha"]);

    // get from "another process": by name, resuming; the files are still there.
    const again = await Sandbox.get({ ...credentials, name: "sdk-one", resume: true });
    expect(fake.queries.at(-1)?.get("resume")).toBe("true");
    expect(fake.queries.at(-1)?.get("projectId")).toBe(fake.projectId);
    expect((await (await again.runCommand("cat", ["notes/hello.txt"])).stdout())).toBe("hello\n");

    for (const s of [sandbox, runtime, third]) await s.delete();
    expect(fake.sandboxes.size).toBe(0);
    await expect(Sandbox.get({ ...credentials, name: "sdk-one" })).rejects.toMatchObject({ response: { status: 404 } });
  }, 60_000);

  test("a stopped session is resumed by the SDK; errors are the shapes it reads", async () => {
    const sandbox = await Sandbox.create({ ...credentials, name: "sdk-short", timeout: 1000 });
    await sandbox.writeFiles([{ path: "/tmp/kept.txt", content: Buffer.from("kept\n") }]);
    await Bun.sleep(1500);
    expect(fake.sandboxes.get("sdk-short")?.session.status).toBe("stopped");
    // 410 on the old session, then GET ?resume=true and the command again (sandbox.js withResume).
    const ran = await sandbox.runCommand("cat", ["/tmp/kept.txt"]);
    expect(await ran.stdout()).toBe("kept\n");
    expect(fake.requests.filter((r) => r === "GET /v2/sandboxes/sdk-short")).toHaveLength(1);

    await expect(Sandbox.create({ ...credentials, name: "sdk-short" })).rejects.toMatchObject({ response: { status: 409 }, json: { error: { code: "sandbox_already_exists" } } });
    await expect(Sandbox.create({ ...credentials, token: "wrong" })).rejects.toMatchObject({ response: { status: 403 } });
    await sandbox.delete();
    expect(fake.sandboxes.size).toBe(0);
  }, 30_000);
});
