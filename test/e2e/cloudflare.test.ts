/**
 * The compiled binary against a fake Cloudflare sandbox Worker: the REAL bridge router of
 * @cloudflare/sandbox 0.12.10 in Bun behind fake Durable Objects (our own client inside the
 * binary). Every invocation is its own process: a kept sandbox is found again only through the
 * local registry the provider keeps (the bridge has no list and no metadata).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startFakeCloudflare, type FakeCloudflare } from "../fakes/cloudflare/server";
import { BINARY, cli, interruptRun, keptId, machines, plain } from "../helpers";
import { buildBinary } from "./_e2b-helpers";

let fake: FakeCloudflare;
let env: Record<string, string>;
/** The first machine's HOME, for local files to copy. */
let home = "";
const { machine, removeAll } = machines();

beforeAll(async () => {
  buildBinary();
  fake = await startFakeCloudflare({ mode: "bridge" });
  ({ env, home } = machine(fake.env()));
}, 60_000);

afterAll(async () => {
  await fake?.close();
  removeAll();
});

beforeEach(() => fake.clearFaults());

const run = (args: string[], withEnv = env, stdin?: string) => cli(args, { env: withEnv, stdin });
const creates = () => fake.requests.filter((r) => r === "POST /v1/sandbox").length;

/** Command lines of the processes running in the fake's containers right now. */
function processesInContainers(): string[] {
  const lines: string[] = [];
  for (const container of fake.containers.live.values()) {
    for (const pid of fake.containers.processesOf(container)) {
      try {
        lines.push(readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " "));
      } catch {}
    }
  }
  return lines;
}

describe("cloudflare through the compiled binary", () => {
  test("run streams output, passes the exit code through and destroys the sandbox", async () => {
    const before = creates();
    const result = await run(["run", "-p", "cloudflare", "echo out; echo err >&2; exit 3"]);
    expect(plain(result)).toEqual({ code: 3, stdout: "out\n", stderr: "err\n" });
    expect(creates()).toBe(before + 1);
    expect(fake.live()).toEqual([]);
  });

  test("with CLOUDFLARE_SANDBOX_URL set, cloudflare is picked without -p; commands start in /workspace", async () => {
    const before = creates();
    const result = await run(["run", "pwd; echo $HOME"]);
    expect(plain(result)).toEqual({ code: 0, stdout: "/workspace\n/root\n", stderr: "" });
    expect(creates()).toBe(before + 1);
    expect(fake.live()).toEqual([]);
  });

  test("--image is one clear line and exit 125; nothing is created", async () => {
    const before = fake.requests.length;
    const result = await run(["run", "-p", "cloudflare", "--image", "ubuntu:24.04", "true"]);
    expect(result.code).toBe(125);
    expect(result.stdout).toBe("");
    const lines = result.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toStartWith("sandboxes: provider cloudflare cannot choose an image per sandbox (--image)");
    expect(fake.requests.slice(before)).toEqual([]);
  });

  test("kept sandbox: exec by id and by name from new processes, list by label, reuse, cp, destroy", async () => {
    const created = await run(["run", "-p", "cloudflare", "--keep", "--name", "web", "-l", "team=alpha", "-e", "GREETING=hello", 'echo "$GREETING" > /tmp/greeting']);
    expect(created.code).toBe(0);
    const id = keptId(created.stderr)!;
    expect(id).toMatch(/^[a-z2-7]{26}$/);
    expect(fake.live()).toEqual([id]);

    // A new process on the same machine: the sandbox env given at create time still applies.
    const exec = await run(["exec", "-p", "cloudflare", id, 'cat /tmp/greeting; echo "$GREETING"; exit 4']);
    expect(plain(exec)).toEqual({ code: 4, stdout: "hello\nhello\n", stderr: "" });
    const byName = await run(["exec", "web", "-w", "/tmp", "--", "sh", "-c", "pwd; printf '[%s]' \"$1\"", "sh", "it's a $HOME"]);
    expect(plain(byName)).toEqual({ code: 0, stdout: "/tmp\n[it's a $HOME]", stderr: "" });

    const other = await run(["run", "-p", "cloudflare", "--keep", "-l", "team=beta", "true"]);
    const otherId = keptId(other.stderr)!;
    const listed = await run(["list", "-p", "cloudflare", "-l", "team=alpha", "--json"]);
    expect(listed.code).toBe(0);
    const document = JSON.parse(listed.stdout) as { sandboxes: Array<{ id: string; name: string; labels: Record<string, string>; provider: string; state: string }> };
    expect(document.sandboxes).toEqual([expect.objectContaining({ id, name: "web", provider: "cloudflare", state: "running", labels: { team: "alpha" } })]);
    const everything = JSON.parse((await run(["list", "-p", "cloudflare", "--json"])).stdout) as { sandboxes: Array<{ id: string }> };
    expect(everything.sandboxes.map((s) => s.id).sort()).toEqual([id, otherId].sort());
    expect((await run(["list", "-p", "cloudflare", "-l", "team=alpha"])).stdout).toContain(id);

    // Another machine has no registry: it sees nothing and says so in one line.
    const elsewhere = machine(fake.env());
    expect(JSON.parse((await run(["list", "-p", "cloudflare", "--json"], elsewhere.env)).stdout).sandboxes).toEqual([]);
    const lost = await run(["exec", "-p", "cloudflare", id, "true"], elsewhere.env);
    expect(lost.code).toBe(125);
    expect(lost.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(lost.stderr).toContain(id);

    const before = creates();
    const reused = await run(["run", "-p", "cloudflare", "--reuse", "-l", "team=alpha", "cat /tmp/greeting"]);
    expect(reused.code).toBe(0);
    expect(reused.stdout).toBe("hello\n");
    expect(reused.stderr).toContain(`reusing sandbox ${id}`);
    expect(creates()).toBe(before);

    // cp both ways, outside /workspace (the file routes only take /workspace: archives are staged there).
    const bytes = new Uint8Array(200_000).map((_, i) => (i * 31 + 7) % 256);
    writeFileSync(join(home, "blob.bin"), bytes);
    expect((await run(["cp", "-p", "cloudflare", join(home, "blob.bin"), `${id}:/tmp/blob.bin`])).code).toBe(0);
    expect((await run(["exec", id, "wc -c < /tmp/blob.bin; ls -A /workspace"])).stdout.trim()).toBe("200000");
    expect((await run(["cp", "-p", "cloudflare", `${id}:/tmp/blob.bin`, join(home, "back.bin")])).code).toBe(0);
    expect(new Uint8Array(readFileSync(join(home, "back.bin")))).toEqual(bytes);
    mkdirSync(join(home, "tree", "sub"), { recursive: true });
    writeFileSync(join(home, "tree", "sub", "x.txt"), "nested\n");
    expect((await run(["cp", join(home, "tree"), `${id}:/workspace/`])).code).toBe(0);
    expect((await run(["exec", id, "cat /workspace/tree/sub/x.txt"])).stdout).toBe("nested\n");
    rmSync(join(home, "tree"), { recursive: true });
    expect((await run(["cp", `${id}:/workspace/tree`, home])).code).toBe(0);
    expect(readFileSync(join(home, "tree", "sub", "x.txt"), "utf8")).toBe("nested\n");
    // Nothing of ours is left in /workspace.
    expect((await run(["exec", id, "ls -A /workspace"])).stdout).toBe("tree\n");

    const destroyed = await run(["destroy", "-p", "cloudflare", id, otherId]);
    expect(destroyed.code).toBe(0);
    expect(fake.live()).toEqual([]);
    const gone = await run(["exec", "-p", "cloudflare", id, "true"]);
    expect(gone.code).toBe(125);
    expect(gone.stderr).toContain(id);
  }, 90_000);

  test("--timeout kills the command and exits 124; a program's own 124 passes; stdin is forwarded", async () => {
    const slow = await run(["run", "-p", "cloudflare", "--timeout", "1", "echo started; sleep 30"]);
    expect(slow.code).toBe(124);
    expect(slow.stdout).toBe("started\n");
    expect(plain(await run(["run", "-p", "cloudflare", "exit 124"]))).toEqual({ code: 124, stdout: "", stderr: "" });
    const piped = await run(["run", "-p", "cloudflare", "tr a-z A-Z"], env, "piped text\n");
    expect(plain(piped)).toEqual({ code: 0, stdout: "PIPED TEXT\n", stderr: "" });
    expect(fake.live()).toEqual([]);
  });

  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    test(`${signal} during run destroys the sandbox and exits ${code}`, async () => {
      const before = creates();
      const { firstLine, exitCode } = await interruptRun(["run", "-p", "cloudflare", "echo started; sleep 30"], env, signal, () => {
        expect(fake.live()).toHaveLength(1);
      });
      expect(firstLine).toBe("started\n");
      expect(exitCode).toBe(code);
      expect(creates()).toBe(before + 1);
      expect(fake.live()).toEqual([]);
    });
  }

  test("Ctrl-C during exec in a kept sandbox kills the command's process tree there", async () => {
    const kept = await run(["run", "-p", "cloudflare", "--keep", "true"]);
    const id = keptId(kept.stderr)!;
    const child = Bun.spawn([BINARY, "exec", id, "sh -c 'sleep 3017' & echo started; wait"], { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("started\n");
    expect(processesInContainers().some((line) => line.includes("sleep 3017"))).toBe(true);
    child.kill("SIGINT");
    expect(await child.exited).toBe(130);
    reader.releaseLock();
    expect(processesInContainers().filter((line) => line.includes("sleep 3017"))).toEqual([]);
    expect((await run(["destroy", id])).code).toBe(0);
    expect(fake.live()).toEqual([]);
  });
});

describe("cloudflare faults", () => {
  test("transient 503s on create are retried and the run succeeds", async () => {
    const before = creates();
    fake.fault({ match: "POST /v1/sandbox", kind: "status", status: 503, times: 2 });
    const result = await run(["run", "-p", "cloudflare", "echo fine"]);
    expect(plain(result)).toEqual({ code: 0, stdout: "fine\n", stderr: "" });
    expect(creates()).toBe(before + 3);
    expect(fake.live()).toEqual([]);
  });

  test("a refused exec (502 before it started) is sent again and runs once; a 503 on delete is retried", async () => {
    const kept = await run(["run", "-p", "cloudflare", "--keep", "true"]);
    const id = keptId(kept.stderr)!;
    fake.fault({ match: `POST /v1/sandbox/${id}/exec`, kind: "status", status: 502, times: 1 });
    const exec = await run(["exec", id, "echo ran >> /tmp/count; cat /tmp/count"]);
    expect(plain(exec)).toEqual({ code: 0, stdout: "ran\n", stderr: "" });
    fake.fault({ match: `DELETE /v1/sandbox/${id}`, kind: "status", status: 503, times: 1 });
    expect((await run(["destroy", id])).code).toBe(0);
    expect(fake.live()).toEqual([]);
  });

  test("after the retry budget: one clear line naming cloudflare, exit 125, nothing leaked", async () => {
    const before = creates();
    fake.fault({ match: "POST /v1/sandbox", kind: "status", status: 503, times: 1000 });
    const result = await run(["run", "-p", "cloudflare", "echo never"]);
    expect(result.code).toBe(125);
    expect(result.stdout).toBe("");
    const lines = result.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toStartWith("sandboxes: cloudflare: creating a sandbox failed");
    expect(lines[0]).toContain("503");
    expect(creates() - before).toBe(4);
    expect(fake.live()).toEqual([]);
  });
});

describe("cloudflare credentials", () => {
  test("without CLOUDFLARE_SANDBOX_URL, -p cloudflare is one line naming the variable, exit 125", async () => {
    const bare = machine({ CLOUDFLARE_SANDBOX_API_KEY: "some-key" });
    const result = await run(["run", "-p", "cloudflare", "true"], bare.env);
    expect(result.code).toBe(125);
    expect(result.stdout).toBe("");
    expect(result.stderr.trimEnd().split("\n")).toEqual([
      "sandboxes: provider cloudflare is not configured: set CLOUDFLARE_SANDBOX_URL to your sandbox Worker's URL (or url under [providers.cloudflare] in config.toml)",
    ]);
  });

  test("url and api_key in config.toml configure cloudflare; providers never calls the Worker", async () => {
    const configured = machine();
    const configDir = join(configured.env.XDG_CONFIG_HOME!, "sandboxes");
    mkdirSync(configDir, { recursive: true });
    writeFileSync(join(configDir, "config.toml"), `[providers.cloudflare]\nurl = "${fake.url}"\napi_key = "${fake.env().CLOUDFLARE_SANDBOX_API_KEY}"\n`);
    const requestsBefore = fake.requests.length;
    const report = await run(["providers", "--json"], configured.env);
    expect(report.code).toBe(0);
    const entry = (JSON.parse(report.stdout) as { providers: Array<{ name: string; configured: boolean; source: string }> }).providers.find((p) => p.name === "cloudflare");
    expect(entry).toMatchObject({ configured: true, source: "config.toml" });
    expect(fake.requests.length).toBe(requestsBefore);
    expect(plain(await run(["run", "-p", "cloudflare", "echo from config"], configured.env))).toEqual({ code: 0, stdout: "from config\n", stderr: "" });
    expect(fake.live()).toEqual([]);
  });

  test("providers shows cloudflare configured from the environment, or says what to set", async () => {
    const shown = (JSON.parse((await run(["providers", "--json"])).stdout) as { providers: Array<{ name: string; configured: boolean; source?: string }> }).providers.find((p) => p.name === "cloudflare");
    expect(shown).toMatchObject({ configured: true, source: "CLOUDFLARE_SANDBOX_URL" });
    const report = await run(["providers", "--json"], machine().env);
    const missing = (JSON.parse(report.stdout) as { providers: Array<{ name: string; configured: boolean; missing: string }> }).providers.find((p) => p.name === "cloudflare");
    expect(missing).toMatchObject({ configured: false, missing: "set CLOUDFLARE_SANDBOX_URL to your sandbox Worker's URL (or url under [providers.cloudflare] in config.toml)" });
  });

  test("a wrong API key is one line naming cloudflare and the variable, exit 125", async () => {
    const wrong = machine({ CLOUDFLARE_SANDBOX_URL: fake.url, CLOUDFLARE_SANDBOX_API_KEY: "wrong" });
    const result = await run(["run", "-p", "cloudflare", "true"], wrong.env);
    expect(result.code).toBe(125);
    const lines = result.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toStartWith("sandboxes: cloudflare: the Worker refused the API key");
    expect(lines[0]).toContain("401");
    expect(lines[0]).toContain("CLOUDFLARE_SANDBOX_API_KEY");
    expect(fake.live()).toEqual([]);
  });
});

describe("cloudflare fake after the e2e tests", () => {
  test("the fake holds no sandbox", () => {
    expect(fake.live()).toEqual([]);
    expect(fake.containers.live.size).toBe(0);
    expect(creates()).toBeGreaterThan(5);
  });
});
