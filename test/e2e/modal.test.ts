/**
 * The compiled binary against the fake Modal (real gRPC over h2c, real SDK inside the binary):
 * each command in its own process, so labels, reuse and exec by id are proven across processes.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type FakeModal, startFakeModal, Status } from "../fakes/modal/server";
import { BINARY, cli, ensureBinary, freshHome } from "./_modal-helpers";

let fake: FakeModal;
let home: ReturnType<typeof freshHome>;
let env: Record<string, string>;

beforeAll(async () => {
  await ensureBinary();
  fake = await startFakeModal({ tokenId: "ak-e2e", tokenSecret: "as-e2e" });
  home = freshHome();
  env = { ...home, MODAL_SERVER_URL: fake.url, MODAL_TOKEN_ID: "ak-e2e", MODAL_TOKEN_SECRET: "as-e2e" };
}, 120_000);

afterAll(async () => {
  await fake?.stop();
});

/** Another machine, as far as our state goes: no registry of kept sandboxes. */
const elsewhere = () => ({ ...env, ...freshHome() });
const created = () => fake.calls.filter((c) => c.method === "SandboxCreateV2").length;
const idOf = (stdout: string) => (JSON.parse(stdout) as { sandbox_id: string }).sandbox_id;

describe("modal e2e: credentials and providers", () => {
  test("providers reports modal configured from the environment and makes no call at all", async () => {
    const before = fake.calls.length;
    const result = await cli(["providers"], env);
    expect(result.code).toBe(0);
    const row = result.stdout.split("\n").find((line) => line.startsWith("modal"));
    expect(row).toContain("yes");
    expect(row).toContain("MODAL_TOKEN_ID + MODAL_TOKEN_SECRET");
    expect(row).not.toContain("resize");
    expect(fake.calls.length).toBe(before);
  });

  test("a missing credential is one line naming the variables, exit 125, and no call", async () => {
    const before = fake.calls.length;
    const { MODAL_TOKEN_ID: _id, MODAL_TOKEN_SECRET: _secret, ...bare } = env;
    const result = await cli(["run", "-p", "modal", "echo hi"], { ...bare, ...freshHome() });
    expect(result.code).toBe(125);
    expect(result.stdout).toBe("");
    const lines = result.stderr.trim().split("\n");
    expect(lines[0]).toContain("provider modal is not configured");
    expect(lines[0]).toContain("MODAL_TOKEN_ID");
    expect(lines[0]).toContain("MODAL_TOKEN_SECRET");
    expect(lines.length).toBe(1);
    expect(fake.calls.length).toBe(before);
  });

  test("credentials from config.toml [providers.modal] work", async () => {
    const { MODAL_TOKEN_ID: _id, MODAL_TOKEN_SECRET: _secret, ...bare } = env;
    const place = freshHome();
    mkdirSync(join(place.XDG_CONFIG_HOME, "sandboxes"), { recursive: true });
    writeFileSync(join(place.XDG_CONFIG_HOME, "sandboxes", "config.toml"), '[providers.modal]\ntoken_id = "ak-e2e"\ntoken_secret = "as-e2e"\n');
    const listed = await cli(["providers"], { ...bare, ...place });
    expect(listed.stdout.split("\n").find((l) => l.startsWith("modal"))).toContain("config.toml");
    const result = await cli(["run", "-p", "modal", "echo from-config"], { ...bare, ...place });
    expect(result.stdout).toBe("from-config\n");
    expect(result.code).toBe(0);
    const auth = fake.calls.filter((c) => c.method === "AuthTokenGet").at(-1);
    expect(auth?.metadata["x-modal-token-id"]).toBe("ak-e2e");
  });

  test("credentials from ~/.modal.toml (the Modal CLI's file) work", async () => {
    const { MODAL_TOKEN_ID: _id, MODAL_TOKEN_SECRET: _secret, ...bare } = env;
    const place = freshHome();
    writeFileSync(join(place.HOME, ".modal.toml"), '[work]\ntoken_id = "ak-e2e"\ntoken_secret = "as-e2e"\nactive = true\n');
    const listed = await cli(["providers"], { ...bare, ...place });
    expect(listed.stdout.split("\n").find((l) => l.startsWith("modal"))).toContain(".modal.toml");
    const result = await cli(["run", "-p", "modal", "echo from-file"], { ...bare, ...place });
    expect(result.stdout).toBe("from-file\n");
    expect(result.code).toBe(0);
    const auth = fake.calls.filter((c) => c.method === "AuthTokenGet").at(-1);
    expect(auth?.metadata["x-modal-token-id"]).toBe("ak-e2e");
  });
});

describe("modal e2e: run, exec, list, reuse, cp, destroy", () => {
  test("run streams stdout and stderr apart, passes the exit code, destroys the sandbox and exits by itself", async () => {
    const before = fake.running().length;
    const result = await cli(["run", "-p", "modal", "-e", "WHO=modal", 'echo "out $WHO"; echo err >&2; exit 3'], env, { guardMs: 30_000 });
    expect(result.killed).toBe(false);
    expect(result.code).toBe(3);
    expect(result.stdout).toBe("out modal\n");
    expect(result.stderr).toBe("err\n");
    expect(fake.running().length).toBe(before);
  });

  test("the image comes from --image and from config.toml", async () => {
    await cli(["run", "-p", "modal", "--image", "alpine:3.20", "true"], env);
    const image = fake.calls.filter((c) => c.method === "ImageGetOrCreate").at(-1)?.request as { image: { dockerfileCommands: string[] } };
    expect(image.image.dockerfileCommands[0]).toBe("FROM alpine:3.20");
    const place = { ...env, ...freshHome() };
    mkdirSync(join(place.XDG_CONFIG_HOME, "sandboxes"), { recursive: true });
    writeFileSync(join(place.XDG_CONFIG_HOME, "sandboxes", "config.toml"), '[providers.modal]\nimage = "node:22-slim"\n');
    await cli(["run", "-p", "modal", "true"], place);
    const configured = fake.calls.filter((c) => c.method === "ImageGetOrCreate").at(-1)?.request as { image: { dockerfileCommands: string[] } };
    expect(configured.image.dockerfileCommands[0]).toBe("FROM node:22-slim");
  });

  test("an image Modal cannot pull is one clear line, exit 125, no sandbox made", async () => {
    for (const image of ["does-not-exist:1", "ghcr.io/acme/private-tool:2"]) {
      const before = fake.sandboxes.size;
      const result = await cli(["run", "-p", "modal", "--image", image, "true"], env);
      expect(result.code).toBe(125);
      expect(result.stderr.trimEnd().split("\n")).toHaveLength(1);
      expect(result.stderr).toContain(`cannot use image ${image}`);
      expect(result.stderr).toContain("manifest unknown");
      expect(fake.sandboxes.size).toBe(before);
    }
  });

  test("a kept sandbox: labels, exec by id from another process, --reuse across processes, cp both ways, destroy", async () => {
    const kept = await cli(["run", "-p", "modal", "--keep", "-l", "team=e2e", "-l", "run=one", "--json", "echo first > /dev/null"], env);
    expect(kept.code).toBe(0);
    const id = idOf(kept.stdout);
    expect(id).toMatch(/^sb2-/);
    expect(fake.sandboxes.get(id)?.tags).toContainEqual({ tagName: "team", tagValue: "e2e" });

    // list with a label, from a process that never saw the sandbox: the filter is the server's.
    const list = await cli(["list", "-p", "modal", "-l", "team=e2e", "--json"], elsewhere());
    expect(list.code).toBe(0);
    const listed = (JSON.parse(list.stdout) as { sandboxes: Array<{ id: string; labels: Record<string, string> }> }).sandboxes;
    expect(listed.map((s) => s.id)).toEqual([id]);
    expect(listed[0]!.labels).toEqual({ team: "e2e", run: "one" });
    const sent = fake.calls.filter((c) => c.method === "SandboxListV2").at(-1)?.request as { tags: unknown[] };
    expect(sent.tags).toContainEqual({ tagName: "team", tagValue: "e2e" });
    const none = await cli(["list", "-p", "modal", "-l", "team=other", "--json"], elsewhere());
    expect((JSON.parse(none.stdout) as { sandboxes: unknown[] }).sandboxes).toEqual([]);

    // exec by id in another process: state persists between commands.
    const write = await cli(["exec", id, "echo persisted > state.txt; echo oops >&2; exit 4"], elsewhere());
    expect(write.code).toBe(4);
    expect(write.stderr).toBe("oops\n");
    const read = await cli(["exec", "-p", "modal", id, "cat state.txt"], elsewhere());
    expect(read.stdout).toBe("persisted\n");
    expect(read.code).toBe(0);

    // --reuse in another process finds it by label instead of creating one.
    const createsBefore = created();
    const reused = await cli(["run", "-p", "modal", "--reuse", "-l", "team=e2e", "cat state.txt"], elsewhere());
    expect(reused.code).toBe(0);
    expect(reused.stdout).toBe("persisted\n");
    expect(reused.stderr).toContain(`reusing sandbox ${id}`);
    expect(created()).toBe(createsBefore);
    expect(fake.sandboxes.get(id)?.terminated).toBe(false);

    // cp: a binary file in and back out, byte for byte.
    const local = freshHome().HOME;
    const bytes = new Uint8Array(300_000).map((_, i) => (i * 7919 + (i >> 8)) % 256);
    writeFileSync(join(local, "blob.bin"), bytes);
    const remoteDir = `/tmp/sandboxes-e2e-${id}`;
    expect((await cli(["exec", id, `mkdir -p ${remoteDir}`], env)).code).toBe(0);
    const up = await cli(["cp", join(local, "blob.bin"), `${id}:${remoteDir}`], elsewhere());
    expect(up.code).toBe(0);
    const size = await cli(["exec", id, `wc -c < ${remoteDir}/blob.bin`], env);
    expect(size.stdout.trim()).toBe("300000");
    const down = await cli(["cp", `${id}:${remoteDir}/blob.bin`, join(local, "back.bin")], elsewhere());
    expect(down.code).toBe(0);
    expect(new Uint8Array(readFileSync(join(local, "back.bin")))).toEqual(bytes);
    await cli(["exec", id, `rm -rf ${remoteDir}`], env);

    // destroy from another process; then the id is gone for everyone.
    const destroyed = await cli(["destroy", "-p", "modal", id], elsewhere());
    expect(destroyed.code).toBe(0);
    expect(destroyed.stdout.trim()).toBe(id);
    expect(fake.sandboxes.get(id)?.terminated).toBe(true);
    const after = await cli(["exec", "-p", "modal", id, "true"], elsewhere());
    expect(after.code).toBe(125);
    expect(after.stderr).toContain(id);
  }, 120_000);

  test("exec --timeout kills the command: exit 124", async () => {
    const kept = await cli(["run", "-p", "modal", "--keep", "--json", "true"], env);
    const id = idOf(kept.stdout);
    const result = await cli(["exec", id, "-t", "1", "echo started; sleep 30; echo never"], env);
    expect(result.code).toBe(124);
    expect(result.stdout).toBe("started\n");
    // The CLI may return as soon as the deadline passes; the fake finishes killing the command
    // (and closing its pipes) a moment later, so wait for that rather than race it.
    for (let i = 0; i < 50 && (fake.sandboxes.get(id)?.execs.size ?? 0) > 0; i++) await Bun.sleep(100);
    expect(fake.sandboxes.get(id)?.execs.size).toBe(0);
    await cli(["destroy", id], env);
  }, 60_000);

  test("stdin is piped to the command", async () => {
    const result = await cli(["run", "-p", "modal", "tr a-z A-Z"], env, { stdin: "shout\n" });
    expect(result.stdout).toBe("SHOUT\n");
    expect(result.code).toBe(0);
  });
});

describe("modal e2e: process lifetime", () => {
  test("the binary exits by itself while a kept sandbox (and its router channel) lives on", async () => {
    const result = await cli(["run", "-p", "modal", "--keep", "--json", "echo alive"], env, { guardMs: 30_000 });
    expect(result.killed).toBe(false);
    expect(result.code).toBe(0);
    const id = idOf(result.stdout);
    expect(fake.sandboxes.get(id)?.terminated).toBe(false);
    const exec = await cli(["exec", id, "echo still"], elsewhere(), { guardMs: 30_000 });
    expect(exec.killed).toBe(false);
    expect(exec.stdout).toBe("still\n");
    await cli(["destroy", id], env);
  });

  test("Ctrl-C during run destroys the sandbox and exits 130", async () => {
    const runningBefore = fake.running().map((s) => s.id);
    const starts = () => fake.calls.filter((c) => c.method === "TaskExecStart").length;
    const startsBefore = starts();
    const child = Bun.spawn([BINARY, "run", "-p", "modal", "echo started; sleep 30"], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", NO_COLOR: "1", ...env },
      stdout: "pipe",
      stderr: "pipe",
    });
    for (let i = 0; i < 200 && starts() === startsBefore; i++) await Bun.sleep(25);
    expect(starts()).toBe(startsBefore + 1);
    await Bun.sleep(200);
    child.kill("SIGINT");
    const guard = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const [stdout, code] = await Promise.all([new Response(child.stdout).text(), child.exited]);
    clearTimeout(guard);
    expect(code).toBe(130);
    expect(stdout).toBe("started\n");
    expect(fake.running().map((s) => s.id)).toEqual(runningBefore);
  });
});

describe("modal e2e: Ctrl-C during exec in a kept sandbox", () => {
  test("stops the command and everything it started, not only our wait for it", async () => {
    const kept = await cli(["run", "-p", "modal", "--keep", "--json", "true"], env);
    const id = idOf(kept.stdout);
    // The fake runs commands as processes of this machine: the very process can be watched.
    const marker = `7${String(process.pid).padStart(7, "0").slice(-7)}`;
    const alive = () => Bun.spawnSync(["pgrep", "-f", `sleep ${marker}`]).exitCode === 0;
    const child = Bun.spawn([BINARY, "exec", id, `echo started; sleep ${marker} & sleep ${marker}; echo not-reached`], {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", NO_COLOR: "1", ...env },
      stdout: "pipe",
      stderr: "pipe",
    });
    const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("started\n");
    for (let i = 0; i < 100 && !alive(); i++) await Bun.sleep(50);
    expect(alive()).toBe(true);
    child.kill("SIGINT");
    const guard = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const code = await child.exited;
    clearTimeout(guard);
    reader.releaseLock();
    expect(code).toBe(130);
    for (let i = 0; i < 100 && alive(); i++) await Bun.sleep(50);
    expect(alive()).toBe(false);
    // The sandbox itself is the user's and stays, usable.
    const after = await cli(["exec", id, "echo still here"], env);
    expect(after.stdout).toBe("still here\n");
    await cli(["destroy", id], env);
  });
});

describe("modal e2e: faults", () => {
  test("transient UNAVAILABLE on create is retried and makes exactly one sandbox", async () => {
    const sandboxesBefore = fake.sandboxes.size;
    fake.faults.push({ method: "SandboxCreateV2", code: Status.UNAVAILABLE, times: 2 });
    const result = await cli(["run", "-p", "modal", "echo survived"], env);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe("survived\n");
    expect(fake.sandboxes.size).toBe(sandboxesBefore + 1);
  });

  test("a create whose reply is lost (even on a server ignoring idempotency keys) makes one sandbox", async () => {
    fake.honorIdempotencyKey = false;
    try {
      const runningBefore = fake.running().map((s) => s.id);
      const sandboxesBefore = fake.sandboxes.size;
      fake.faults.push({ method: "SandboxCreateV2", code: Status.UNAVAILABLE, times: 2, after: true });
      const result = await cli(["run", "-p", "modal", "--keep", "--json", "echo once"], env);
      expect(result.code).toBe(0);
      const id = idOf(result.stdout);
      // The first create did make it: the retry found it by its token instead of making another.
      expect(fake.sandboxes.size).toBe(sandboxesBefore + 1);
      expect(fake.running().map((s) => s.id)).toEqual([...runningBefore, id]);
      await cli(["destroy", id], env);
      expect(fake.running().map((s) => s.id)).toEqual(runningBefore);
    } finally {
      fake.honorIdempotencyKey = true;
    }
  });

  test("RESOURCE_EXHAUSTED on list is retried with backoff", async () => {
    fake.faults.push({ method: "SandboxListV2", code: Status.RESOURCE_EXHAUSTED, times: 2 });
    const result = await cli(["list", "-p", "modal", "--json"], env);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toHaveProperty("sandboxes");
    expect(fake.faults.at(-1)?.times).toBe(0);
  });

  test("a dropped connection mid-stream loses no output", async () => {
    fake.faults.push({ method: "TaskExecStdioRead", drop: true, afterMessages: 1 });
    const result = await cli(["run", "-p", "modal", "echo one; sleep 0.3; echo two; sleep 0.3; echo three"], env);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe("one\ntwo\nthree\n");
    expect(fake.faults.at(-1)?.times).toBe(0);
  });

  test("after the retry budget: one line naming modal and the status, exit 125, nothing leaked", async () => {
    const runningBefore = fake.running().length;
    fake.faults.push({ method: "SandboxCreateV2", code: Status.UNAVAILABLE, times: 1000 });
    try {
      const result = await cli(["run", "-p", "modal", "echo never"], env);
      expect(result.code).toBe(125);
      expect(result.stdout).toBe("");
      const first = result.stderr.split("\n")[0]!;
      expect(first).toStartWith("sandboxes: modal: create sandbox failed");
      expect(first).toContain("UNAVAILABLE");
      expect(result.stderr).not.toContain("    at ");
      expect(fake.running().length).toBe(runningBefore);
    } finally {
      fake.faults.at(-1)!.times = 0;
    }
  }, 60_000);
});

describe("modal e2e: nothing leaked", () => {
  test("every sandbox the tests made is terminated", () => {
    expect(fake.running().map((s) => s.id)).toEqual([]);
  });
});

// The real service, only when real credentials are in the environment (never in CI without them).
const real = Boolean(process.env.MODAL_TOKEN_ID && process.env.MODAL_TOKEN_SECRET && !process.env.MODAL_SERVER_URL);
describe.skipIf(!real)("modal e2e: the real service", () => {
  test("run, keep, exec by id, list by label, destroy", async () => {
    const realEnv = { ...freshHome(), MODAL_TOKEN_ID: process.env.MODAL_TOKEN_ID!, MODAL_TOKEN_SECRET: process.env.MODAL_TOKEN_SECRET! };
    const label = `e2e-${Date.now().toString(36)}`;
    const kept = await cli(["run", "-p", "modal", "--keep", "-l", `suite=${label}`, "--json", "echo hello"], realEnv, { guardMs: 300_000 });
    expect(kept.code).toBe(0);
    const id = idOf(kept.stdout);
    try {
      const exec = await cli(["exec", "-p", "modal", id, "echo out; echo err >&2; exit 3"], { ...realEnv, ...freshHome() }, { guardMs: 120_000 });
      expect([exec.code, exec.stdout, exec.stderr]).toEqual([3, "out\n", "err\n"]);
      const list = await cli(["list", "-p", "modal", "-l", `suite=${label}`, "--json"], realEnv, { guardMs: 120_000 });
      expect((JSON.parse(list.stdout) as { sandboxes: Array<{ id: string }> }).sandboxes.map((s) => s.id)).toEqual([id]);
    } finally {
      expect((await cli(["destroy", "-p", "modal", id], realEnv, { guardMs: 120_000 })).code).toBe(0);
    }
  }, 600_000);
});
