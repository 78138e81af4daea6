/**
 * The compiled binary against the fake Modal (real gRPC over h2c, real SDK inside the binary):
 * each command in its own process, so labels, reuse and exec by id are proven across processes.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type FakeModal, startFakeModal } from "../fakes/modal/server";
import { cli, ensureBinary, freshHome } from "./_modal-helpers";

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

});

describe("modal e2e: faults", () => {
  test("a dropped connection mid-stream loses no output", async () => {
    fake.faults.push({ method: "TaskExecStdioRead", drop: true, afterMessages: 1 });
    const result = await cli(["run", "-p", "modal", "echo one; sleep 0.3; echo two; sleep 0.3; echo three"], env);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe("one\ntwo\nthree\n");
    expect(fake.faults.at(-1)?.times).toBe(0);
  });

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
