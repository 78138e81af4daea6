/**
 * The compiled binary against the fake E2B (real SDK inside the binary, real wire protocol):
 * every invocation is its own process, so reuse, exec by id and list by label only work if the
 * provider keeps them on the "server".
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startFakeE2B, type FakeE2B } from "../fakes/e2b/server";
import { BINARY, buildBinary, machine, removeMachines, sandboxes } from "./_e2b-helpers";
import { keptId } from "../helpers";

let fake: FakeE2B;
let env: Record<string, string>;
let home: string;

beforeAll(async () => {
  buildBinary();
  // Two sandboxes per page: list must follow x-next-token to see them all.
  fake = await startFakeE2B({ pageSize: 2, templates: ["base", "custom-template"] });
  ({ home, env } = machine());
  env = { ...env, ...fake.env() };
}, 60_000);

afterAll(async () => {
  await fake?.close();
  removeMachines();
});

beforeEach(() => fake.clearFaults());


describe("e2b through the compiled binary", () => {
  test("run streams output, passes the exit code through and destroys the sandbox", async () => {
    const before = fake.creates.length;
    const result = await sandboxes(["run", "-p", "e2b", "echo out; echo err >&2; exit 3"], env);
    expect(result.stdout).toBe("out\n");
    expect(result.stderr).toBe("err\n");
    expect(result.code).toBe(3);
    expect(fake.creates.length).toBe(before + 1);
    expect(fake.sandboxes.size).toBe(0);
  });

  test("--pids (e2b cannot limit processes) is one clear line and exit 125; nothing is created", async () => {
    const before = fake.creates.length;
    const result = await sandboxes(["run", "-p", "e2b", "--pids", "100", "true"], env);
    expect(result).toEqual({ code: 125, stdout: "", stderr: "sandboxes: provider e2b cannot limit the number of processes (--pids): use -p local or -p docker, or run without --pids\n" });
    expect(fake.creates.length).toBe(before);
  });

  test("with E2B_API_KEY set, e2b is picked without -p and --image picks the template", async () => {
    const result = await sandboxes(["run", "--image", "custom-template", "echo $HOME"], env);
    expect(result).toEqual({ code: 0, stdout: "/home/user\n", stderr: "" });
    expect(fake.creates.at(-1)?.templateID).toBe("custom-template");
    expect(fake.sandboxes.size).toBe(0);
  });

  test("kept sandbox: exec by id from another process (and another machine), list by label over pages, reuse, cp, destroy", async () => {
    const created = await sandboxes(["run", "-p", "e2b", "--keep", "--name", "web", "-l", "team=alpha", "--ttl", "600", "echo $GREETING > /tmp/greeting", "-e", "GREETING=hello"], env);
    expect(created.code).toBe(0);
    const id = keptId(created.stderr);
    expect(id).toBeDefined();
    expect(fake.sandboxes.get(id!)?.metadata).toMatchObject({ team: "alpha", "sandboxes.name": "web" });
    expect(fake.creates.at(-1)?.timeout).toBe(600);

    // A second process with no local registry at all: only the id and the server know the sandbox.
    const other = machine();
    const otherEnv = { ...other.env, ...fake.env() };
    const exec = await sandboxes(["exec", "-p", "e2b", id!, "cat /tmp/greeting; exit 4"], otherEnv);
    expect(exec).toEqual({ code: 4, stdout: "hello\n", stderr: "" });

    // Fill more than one page of the fake's list, with other labels.
    const noise: string[] = [];
    for (let i = 0; i < 3; i++) {
      const kept = await sandboxes(["run", "-p", "e2b", "--keep", "-l", `team=beta${i}`, "true"], env);
      noise.push(keptId(kept.stderr)!);
    }
    const listed = await sandboxes(["list", "-p", "e2b", "-l", "team=alpha", "--json"], otherEnv);
    expect(listed.code).toBe(0);
    const document = JSON.parse(listed.stdout) as { sandboxes: Array<{ id: string; name: string; labels: Record<string, string>; provider: string }> };
    expect(document.sandboxes).toHaveLength(1);
    expect(document.sandboxes[0]).toMatchObject({ id, name: "web", provider: "e2b", labels: { team: "alpha" } });
    const everything = await sandboxes(["list", "-p", "e2b", "--json"], otherEnv);
    const ids = (JSON.parse(everything.stdout) as { sandboxes: Array<{ id: string }> }).sandboxes.map((s) => s.id).sort();
    expect(ids).toEqual([id!, ...noise].sort());
    expect(fake.requests.filter((r) => r === "GET /v2/sandboxes").length).toBeGreaterThanOrEqual(3);

    const createsBefore = fake.creates.length;
    const reused = await sandboxes(["run", "-p", "e2b", "--reuse", "-l", "team=alpha", "cat /tmp/greeting"], otherEnv);
    expect(reused.code).toBe(0);
    expect(reused.stdout).toBe("hello\n");
    expect(reused.stderr).toContain(`reusing sandbox ${id}`);
    expect(fake.creates.length).toBe(createsBefore);
    expect(fake.sandboxes.has(id!)).toBe(true);

    const bytes = new Uint8Array(200_000).map((_, i) => (i * 31 + 7) % 256);
    writeFileSync(join(other.home, "blob.bin"), bytes);
    const up = await sandboxes(["cp", "-p", "e2b", join(other.home, "blob.bin"), `${id}:/tmp/blob.bin`], otherEnv);
    expect(up.code).toBe(0);
    const sum = await sandboxes(["exec", "-p", "e2b", id!, "wc -c < /tmp/blob.bin"], otherEnv);
    expect(sum.stdout.trim()).toBe("200000");
    const down = await sandboxes(["cp", "-p", "e2b", `${id}:/tmp/blob.bin`, join(other.home, "back.bin")], otherEnv);
    expect(down.code).toBe(0);
    expect(new Uint8Array(readFileSync(join(other.home, "back.bin")))).toEqual(bytes);

    // Binary stdout is passed through byte for byte.
    const raw = Bun.spawn([BINARY, "exec", "-p", "e2b", id!, "head -c 4096 /tmp/blob.bin"], { env: otherEnv, stdout: "pipe", stderr: "pipe" });
    expect(new Uint8Array(await new Response(raw.stdout).arrayBuffer())).toEqual(bytes.subarray(0, 4096));
    expect(await raw.exited).toBe(0);

    const destroyed = await sandboxes(["destroy", "-p", "e2b", id!, ...noise], otherEnv);
    expect(destroyed.code).toBe(0);
    expect(fake.sandboxes.size).toBe(0);
    const gone = await sandboxes(["exec", "-p", "e2b", id!, "true"], otherEnv);
    expect(gone.code).toBe(125);
    expect(gone.stderr).toContain(id!);
  }, 60_000);

  test("--timeout kills the command and exits 124; stdin is forwarded", async () => {
    const slow = await sandboxes(["run", "-p", "e2b", "--timeout", "1", "echo started; sleep 30"], env);
    expect(slow.code).toBe(124);
    expect(slow.stdout).toBe("started\n");
    const piped = await sandboxes(["run", "-p", "e2b", "tr a-z A-Z"], env, { stdin: "piped text\n" });
    expect(piped).toEqual({ code: 0, stdout: "PIPED TEXT\n", stderr: "" });
    expect(fake.sandboxes.size).toBe(0);
  });

  test("a stdin that stays open and silent does not keep run waiting once the command is done", async () => {
    // Like `sleep 1000 | sandboxes run …`: no byte and no EOF ever arrive.
    const silent = new ReadableStream<Uint8Array>({ start() {} });
    const child = Bun.spawn([BINARY, "run", "-p", "e2b", "echo done"], { env, stdin: silent, stdout: "pipe", stderr: "pipe" });
    const [stdout, code] = await Promise.all([new Response(child.stdout).text(), child.exited]);
    expect(code).toBe(0);
    expect(stdout).toBe("done\n");
    expect(fake.sandboxes.size).toBe(0);
  }, 20_000);

  test("an unknown template is one clear line naming e2b, exit 125", async () => {
    const result = await sandboxes(["run", "-p", "e2b", "--image", "no-such-template", "true"], env);
    expect(result.code).toBe(125);
    expect(result.stdout).toBe("");
    const first = result.stderr.split("\n")[0]!;
    expect(first).toStartWith("sandboxes: e2b: ");
    expect(first).toContain("no-such-template");
    expect(fake.sandboxes.size).toBe(0);
  });
});

describe("e2b faults", () => {
  test("transient 503s on create are retried and the run succeeds with one sandbox", async () => {
    const before = fake.creates.length;
    fake.fault({ match: "POST /v2/sandboxes", kind: "status", status: 503, times: 2 });
    const result = await sandboxes(["run", "-p", "e2b", "echo fine"], env);
    expect(result).toEqual({ code: 0, stdout: "fine\n", stderr: "" });
    expect(fake.creates.length).toBe(before + 1);
    expect(fake.sandboxes.size).toBe(0);
  });

  test("a create whose answer is lost (dropped connection) is found again, not repeated", async () => {
    const before = fake.creates.length;
    fake.fault({ match: "POST /v2/sandboxes", kind: "drop-after", times: 1 });
    const result = await sandboxes(["run", "-p", "e2b", "echo once"], env);
    expect(result).toEqual({ code: 0, stdout: "once\n", stderr: "" });
    expect(fake.creates.length).toBe(before + 1);
    expect(fake.sandboxes.size).toBe(0);
  });

  test("429 and 500 on list and a dropped connect are retried", async () => {
    const kept = await sandboxes(["run", "-p", "e2b", "--keep", "-l", "fault=yes", "true"], env);
    const id = keptId(kept.stderr)!;
    fake.fault({ match: "GET /v2/sandboxes", kind: "status", status: 429, times: 1 });
    fake.fault({ match: "GET /v2/sandboxes", kind: "status", status: 500, times: 1 });
    const listed = await sandboxes(["list", "-p", "e2b", "-l", "fault=yes", "--json"], env);
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout).sandboxes.map((s: { id: string }) => s.id)).toEqual([id]);
    fake.fault({ match: `POST /v2/sandboxes/${id}/connect`, kind: "drop", times: 1 });
    const exec = await sandboxes(["exec", "-p", "e2b", id, "echo still here"], env);
    expect(exec).toEqual({ code: 0, stdout: "still here\n", stderr: "" });
    fake.fault({ match: `DELETE /sandboxes/${id}`, kind: "status", status: 503, times: 1 });
    expect((await sandboxes(["destroy", "-p", "e2b", id], env)).code).toBe(0);
    expect(fake.sandboxes.size).toBe(0);
  });

  test("a slow answer within the request timeout is simply waited for", async () => {
    fake.fault({ match: "POST /v2/sandboxes", kind: "slow", delayMs: 1500 });
    const result = await sandboxes(["run", "-p", "e2b", "echo patient"], env);
    expect(result).toEqual({ code: 0, stdout: "patient\n", stderr: "" });
    expect(fake.sandboxes.size).toBe(0);
  });

  test("after the retry budget: one clear line naming e2b, exit 125, nothing leaked", async () => {
    const before = fake.requests.filter((r) => r === "POST /v2/sandboxes").length;
    fake.fault({ match: "POST /v2/sandboxes", kind: "status", status: 503, times: 1000 });
    const result = await sandboxes(["run", "-p", "e2b", "echo never"], env);
    expect(result.code).toBe(125);
    expect(result.stdout).toBe("");
    const lines = result.stderr.trimEnd().split("\n");
    expect(lines[0]).toStartWith("sandboxes: e2b: creating a sandbox");
    expect(lines[0]).toContain("503");
    expect(lines.filter((l) => !l.startsWith("  hint:"))).toHaveLength(1);
    expect(fake.requests.filter((r) => r === "POST /v2/sandboxes").length - before).toBe(4);
    expect(fake.sandboxes.size).toBe(0);
  });

  test("dropped connections on every create attempt: still never two sandboxes", async () => {
    const before = fake.creates.length;
    fake.fault({ match: "POST /v2/sandboxes", kind: "drop-after", times: 1000 });
    const result = await sandboxes(["run", "-p", "e2b", "echo recovered"], env);
    expect(result).toEqual({ code: 0, stdout: "recovered\n", stderr: "" });
    expect(fake.creates.length).toBe(before + 1);
    expect(fake.sandboxes.size).toBe(0);
  });
});

describe("e2b credentials and health", () => {
  test("without E2B_API_KEY, -p e2b is one line naming the variable, exit 125", async () => {
    const bare = machine();
    const result = await sandboxes(["run", "-p", "e2b", "true"], { ...bare.env, E2B_API_URL: fake.url, E2B_SANDBOX_URL: fake.url });
    expect(result.code).toBe(125);
    expect(result.stdout).toBe("");
    expect(result.stderr.trimEnd().split("\n")[0]).toBe("sandboxes: provider e2b is not configured: set E2B_API_KEY (or api_key under [providers.e2b] in config.toml)");
  });

  test("api_key in config.toml configures e2b; providers never calls the service", async () => {
    const configured = machine();
    const configDir = join(configured.env.XDG_CONFIG_HOME!, "sandboxes");
    Bun.spawnSync(["mkdir", "-p", configDir]);
    writeFileSync(join(configDir, "config.toml"), `[providers.e2b]\napi_key = "${fake.env().E2B_API_KEY}"\ntemplate = "custom-template"\n`);
    const requestsBefore = fake.requests.length;
    const report = await sandboxes(["providers", "--json"], { ...configured.env, E2B_API_URL: fake.url, E2B_SANDBOX_URL: fake.url });
    expect(report.code).toBe(0);
    const e2b = (JSON.parse(report.stdout) as { providers: Array<{ name: string; configured: boolean; source: string }> }).providers.find((p) => p.name === "e2b");
    expect(e2b).toMatchObject({ configured: true, source: "config.toml" });
    expect(fake.requests.length).toBe(requestsBefore);

    const ran = await sandboxes(["run", "-p", "e2b", "echo from config"], { ...configured.env, E2B_API_URL: fake.url, E2B_SANDBOX_URL: fake.url });
    expect(ran).toEqual({ code: 0, stdout: "from config\n", stderr: "" });
    expect(fake.creates.at(-1)?.templateID).toBe("custom-template");
    expect(fake.sandboxes.size).toBe(0);
  });

  test("providers without a key says what to set", async () => {
    const bare = machine();
    const report = await sandboxes(["providers", "--json"], bare.env);
    const e2b = (JSON.parse(report.stdout) as { providers: Array<{ name: string; configured: boolean; missing: string }> }).providers.find((p) => p.name === "e2b");
    expect(e2b).toMatchObject({ configured: false, missing: "set E2B_API_KEY (or api_key under [providers.e2b] in config.toml)" });
  });
});
