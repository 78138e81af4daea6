/**
 * The compiled binary against the fake Vercel Sandbox API (our own client inside the binary, the
 * real wire protocol): every invocation is its own process, so reuse, exec by id and list by label
 * only work if the provider keeps them on the "server".
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startFakeVercel, type FakeVercel } from "../fakes/vercel/server";
import { cli, interruptRun, keptId, machines, plain } from "../helpers";
import { buildBinary } from "./_e2b-helpers";

let fake: FakeVercel;
let env: Record<string, string>;
const { machine, removeAll } = machines();

beforeAll(async () => {
  buildBinary();
  // Two sandboxes per page: list must follow the cursor to see them all.
  fake = await startFakeVercel({ pageSize: 2 });
  env = machine(fake.env()).env;
}, 60_000);

afterAll(async () => {
  await fake?.close();
  removeAll();
});

beforeEach(() => fake.clearFaults());

const run = (args: string[], withEnv = env, stdin?: string) => cli(args, { env: withEnv, stdin });

const sandboxPosts = () => fake.requests.filter((r) => r === "POST /v3/sandboxes" || r === "POST /v2/sandboxes").length;

describe("vercel through the compiled binary", () => {
  test("run streams output, passes the exit code through and deletes the sandbox", async () => {
    const before = fake.creates.length;
    const result = await run(["run", "-p", "vercel", "echo out; echo err >&2; exit 3"]);
    expect(plain(result)).toEqual({ code: 3, stdout: "out\n", stderr: "err\n" });
    expect(fake.creates.length).toBe(before + 1);
    expect(fake.creates.at(-1)?.name).toMatch(/^sandboxes-[0-9a-f]{10}$/);
    expect(fake.sandboxes.size).toBe(0);
  });

  test("with the Vercel credentials set, vercel is picked without -p", async () => {
    const before = fake.creates.length;
    const result = await run(["run", "echo $HOME"]);
    expect(plain(result)).toEqual({ code: 0, stdout: "/home/vercel-sandbox\n", stderr: "" });
    expect(fake.creates.length).toBe(before + 1);
    expect(fake.sandboxes.size).toBe(0);
  });

  test("--image, --cpus, --ttl and --network none reach the create; --memory off the 2048 MB/vCPU ratio is one line", async () => {
    const result = await run(["run", "-p", "vercel", "--image", "python3.13", "--cpus", "2", "--ttl", "120", "--network", "none", "echo mapped"]);
    expect(plain(result)).toEqual({ code: 0, stdout: "mapped\n", stderr: "" });
    expect(fake.creates.at(-1)).toMatchObject({ runtime: "python3.13", resources: { vcpus: 2 }, timeout: 120_000, networkPolicy: { mode: "deny-all" } });
    const before = sandboxPosts();
    const memory = await run(["run", "-p", "vercel", "--memory", "1g", "true"]);
    expect(memory.code).toBe(125);
    expect(memory.stdout).toBe("");
    const lines = memory.stderr.trimEnd().split("\n");
    expect(lines).toEqual(["sandboxes: provider vercel does not set memory on its own: every vCPU comes with 2048 MB: drop --memory, or use --cpus N for N x 2048 MB"]);
    expect(sandboxPosts()).toBe(before);
    expect(fake.sandboxes.size).toBe(0);
  });

  test("kept sandbox: exec by id from another machine, list by label over pages, reuse, cp, destroy", async () => {
    const created = await run(["run", "-p", "vercel", "--keep", "--name", "web", "-l", "team=alpha", "echo $GREETING > /tmp/greeting", "-e", "GREETING=hello"]);
    expect(created.code).toBe(0);
    const id = keptId(created.stderr);
    // The sandbox's name is its id.
    expect(id).toBe("web");
    expect(fake.sandboxes.get("web")?.tags).toEqual({ team: "alpha" });

    // A second machine with no local registry at all: only the name and the server know the sandbox.
    const other = machine(fake.env());
    const exec = await run(["exec", "-p", "vercel", "web", "cat /tmp/greeting; exit 4"], other.env);
    expect(plain(exec)).toEqual({ code: 4, stdout: "hello\n", stderr: "" });

    // More than one page of the fake's list, with other labels.
    const noise: string[] = [];
    for (let i = 0; i < 3; i++) {
      const kept = await run(["run", "-p", "vercel", "--keep", "-l", `team=beta${i}`, "true"]);
      noise.push(keptId(kept.stderr)!);
    }
    const listed = await run(["list", "-p", "vercel", "-l", "team=alpha", "--json"], other.env);
    expect(listed.code).toBe(0);
    const document = JSON.parse(listed.stdout) as { sandboxes: Array<{ id: string; name: string; labels: Record<string, string>; provider: string }> };
    expect(document.sandboxes).toHaveLength(1);
    expect(document.sandboxes[0]).toMatchObject({ id: "web", name: "web", provider: "vercel", labels: { team: "alpha" } });
    const everything = await run(["list", "-p", "vercel", "--json"], other.env);
    const ids = (JSON.parse(everything.stdout) as { sandboxes: Array<{ id: string }> }).sandboxes.map((s) => s.id).sort();
    expect(ids).toEqual(["web", ...noise].sort());
    const plainList = await run(["list", "-p", "vercel", "-l", "team=alpha"], other.env);
    expect(plainList.stdout).toContain("web");

    const createsBefore = fake.creates.length;
    const reused = await run(["run", "-p", "vercel", "--reuse", "-l", "team=alpha", "cat /tmp/greeting"], other.env);
    expect(reused.code).toBe(0);
    expect(reused.stdout).toBe("hello\n");
    expect(reused.stderr).toContain("reusing sandbox web");
    expect(fake.creates.length).toBe(createsBefore);

    const bytes = new Uint8Array(200_000).map((_, i) => (i * 31 + 7) % 256);
    writeFileSync(join(other.home, "blob.bin"), bytes);
    const up = await run(["cp", "-p", "vercel", join(other.home, "blob.bin"), "web:/tmp/blob.bin"], other.env);
    expect(up.code).toBe(0);
    const size = await run(["exec", "-p", "vercel", "web", "wc -c < /tmp/blob.bin"], other.env);
    expect(size.stdout.trim()).toBe("200000");
    const down = await run(["cp", "-p", "vercel", "web:/tmp/blob.bin", join(other.home, "back.bin")], other.env);
    expect(down.code).toBe(0);
    expect(new Uint8Array(readFileSync(join(other.home, "back.bin")))).toEqual(bytes);
    // A directory both ways keeps its tree.
    mkdirSync(join(other.home, "tree", "sub"), { recursive: true });
    writeFileSync(join(other.home, "tree", "sub", "x.txt"), "nested\n");
    expect((await run(["cp", "-p", "vercel", join(other.home, "tree"), "web:/home/vercel-sandbox/"], other.env)).code).toBe(0);
    expect((await run(["exec", "-p", "vercel", "web", "cat ~/tree/sub/x.txt"], other.env)).stdout).toBe("nested\n");
    const treeBack = join(other.home, "tree-back");
    expect((await run(["cp", "-p", "vercel", "web:/home/vercel-sandbox/tree", treeBack], other.env)).code).toBe(0);
    expect(readFileSync(join(treeBack, "sub", "x.txt"), "utf8")).toBe("nested\n");

    const destroyed = await run(["destroy", "-p", "vercel", "web", ...noise], other.env);
    expect(destroyed.code).toBe(0);
    expect(fake.sandboxes.size).toBe(0);
    const gone = await run(["exec", "-p", "vercel", "web", "true"], other.env);
    expect(gone.code).toBe(125);
    expect(gone.stderr).toContain("web");
  }, 60_000);

  test("-w: run creates the directory; exec into a missing one is one line and exit 125", async () => {
    const ran = await run(["run", "-p", "vercel", "-w", "/tmp/wd-run/a b", "--", "pwd"]);
    expect(plain(ran)).toEqual({ code: 0, stdout: "/tmp/wd-run/a b\n", stderr: "" });
    const kept = await run(["run", "-p", "vercel", "-n", "wd-vercel", "--keep", "--", "mkdir", "-p", "/tmp/there"]);
    expect(kept.code).toBe(0);
    const missing = await run(["exec", "-p", "vercel", "wd-vercel", "-w", "/tmp/not-there", "--", "echo should-not-run"]);
    expect(missing.stdout).toBe("");
    expect(missing.stderr).toMatch(/^sandboxes: working directory \/tmp\/not-there does not exist in sandbox wd-vercel: /);
    expect(missing.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(missing.code).toBe(125);
    expect(plain(await run(["exec", "-p", "vercel", "wd-vercel", "-w", "/tmp/there", "--", "pwd"]))).toEqual({ code: 0, stdout: "/tmp/there\n", stderr: "" });
    expect((await run(["destroy", "-p", "vercel", "wd-vercel"])).code).toBe(0);
    expect(fake.sandboxes.size).toBe(0);
  });

  test("--timeout kills the command and exits 124; stdin is forwarded", async () => {
    const slow = await run(["run", "-p", "vercel", "--timeout", "1", "echo started; sleep 30"]);
    expect(slow.code).toBe(124);
    expect(slow.stdout).toBe("started\n");
    const piped = await run(["run", "-p", "vercel", "tr a-z A-Z"], env, "piped text\n");
    expect(plain(piped)).toEqual({ code: 0, stdout: "PIPED TEXT\n", stderr: "" });
    expect(fake.sandboxes.size).toBe(0);
  });

  for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    test(`${signal} during run deletes the sandbox and exits ${code}`, async () => {
      const before = fake.creates.length;
      const { firstLine, exitCode } = await interruptRun(["run", "-p", "vercel", "echo started; sleep 30"], env, signal, () => {
        expect(fake.sandboxes.size).toBe(1);
      });
      expect(firstLine).toBe("started\n");
      expect(exitCode).toBe(code);
      expect(fake.creates.length).toBe(before + 1);
      expect(fake.sandboxes.size).toBe(0);
    });
  }
});

describe("vercel faults", () => {
  test("transient 503s on create are retried and the run succeeds with one sandbox", async () => {
    const before = fake.creates.length;
    fake.fault({ match: "POST /v3/sandboxes", kind: "status", status: 503, times: 2 });
    const result = await run(["run", "-p", "vercel", "echo fine"]);
    expect(plain(result)).toEqual({ code: 0, stdout: "fine\n", stderr: "" });
    expect(fake.creates.length).toBe(before + 1);
    expect(fake.sandboxes.size).toBe(0);
  });

  test("a create whose answer is lost (dropped connection) is found again, not repeated", async () => {
    const before = fake.creates.length;
    fake.fault({ match: "POST /v3/sandboxes", kind: "drop-after", times: 1 });
    const result = await run(["run", "-p", "vercel", "echo once"]);
    expect(plain(result)).toEqual({ code: 0, stdout: "once\n", stderr: "" });
    expect(fake.creates.length).toBe(before + 1);
    expect(fake.sandboxes.size).toBe(0);
  });

  test("429 and 500 on list, a 502 on the command and a 503 on delete are retried", async () => {
    const kept = await run(["run", "-p", "vercel", "--keep", "-l", "fault=yes", "true"]);
    const id = keptId(kept.stderr)!;
    fake.fault({ match: "GET /v2/sandboxes", kind: "status", status: 429, times: 1 });
    fake.fault({ match: "GET /v2/sandboxes", kind: "status", status: 500, times: 1 });
    const listed = await run(["list", "-p", "vercel", "-l", "fault=yes", "--json"]);
    expect(listed.code).toBe(0);
    expect(JSON.parse(listed.stdout).sandboxes.map((s: { id: string }) => s.id)).toEqual([id]);
    fake.fault({ match: `POST /v2/sandboxes/sessions/${fake.sandboxes.get(id)!.session.id}/cmd`, kind: "status", status: 502, times: 1 });
    const exec = await run(["exec", "-p", "vercel", id, "echo still here"]);
    expect(plain(exec)).toEqual({ code: 0, stdout: "still here\n", stderr: "" });
    fake.fault({ match: `DELETE /v2/sandboxes/${id}`, kind: "status", status: 503, times: 1 });
    expect((await run(["destroy", "-p", "vercel", id])).code).toBe(0);
    expect(fake.sandboxes.size).toBe(0);
  });

  test("after the retry budget: one clear line naming vercel, exit 125, nothing leaked", async () => {
    const before = sandboxPosts();
    fake.fault({ match: "POST /v3/sandboxes", kind: "status", status: 503, times: 1000 });
    const result = await run(["run", "-p", "vercel", "echo never"]);
    expect(result.code).toBe(125);
    expect(result.stdout).toBe("");
    const lines = result.stderr.trimEnd().split("\n");
    expect(lines[0]).toStartWith("sandboxes: vercel: creating sandbox sandboxes-");
    expect(lines[0]).toContain("503");
    expect(lines.filter((l) => !l.startsWith("  hint:"))).toHaveLength(1);
    expect(sandboxPosts() - before).toBe(4);
    expect(fake.sandboxes.size).toBe(0);
  });
});

describe("vercel credentials", () => {
  test("without VERCEL_TOKEN, -p vercel is one line naming what to set, exit 125", async () => {
    const { VERCEL_TOKEN: _, ...rest } = fake.env();
    const bare = machine(rest);
    const result = await run(["run", "-p", "vercel", "true"], bare.env);
    expect(result.code).toBe(125);
    expect(result.stdout).toBe("");
    expect(result.stderr.trimEnd().split("\n")).toEqual(["sandboxes: provider vercel is not configured: set VERCEL_TOKEN (or token, team_id, project_id under [providers.vercel] in config.toml)"]);
  });

  test("token, team_id, project_id and api_url in config.toml configure vercel; providers never calls the service", async () => {
    const configured = machine();
    const configDir = join(configured.env.XDG_CONFIG_HOME!, "sandboxes");
    mkdirSync(configDir, { recursive: true });
    writeFileSync(join(configDir, "config.toml"), `[providers.vercel]\ntoken = "${fake.token}"\nteam_id = "${fake.teamId}"\nproject_id = "${fake.projectId}"\napi_url = "${fake.url}"\n`);
    const requestsBefore = fake.requests.length;
    const report = await run(["providers", "--json"], configured.env);
    expect(report.code).toBe(0);
    const vercel = (JSON.parse(report.stdout) as { providers: Array<{ name: string; configured: boolean; source: string }> }).providers.find((p) => p.name === "vercel");
    expect(vercel).toMatchObject({ configured: true, source: "config.toml" });
    expect(fake.requests.length).toBe(requestsBefore);
    const ran = await run(["run", "-p", "vercel", "echo from config"], configured.env);
    expect(plain(ran)).toEqual({ code: 0, stdout: "from config\n", stderr: "" });
    expect(fake.sandboxes.size).toBe(0);
  });

  test("providers without credentials says what to set", async () => {
    const report = await run(["providers", "--json"], machine().env);
    const vercel = (JSON.parse(report.stdout) as { providers: Array<{ name: string; configured: boolean; missing: string }> }).providers.find((p) => p.name === "vercel");
    expect(vercel).toMatchObject({ configured: false, missing: "set VERCEL_TOKEN, VERCEL_TEAM_ID, VERCEL_PROJECT_ID (or token, team_id, project_id under [providers.vercel] in config.toml)" });
  });

  test("a rejected token is one line naming vercel and the variables, exit 125", async () => {
    const wrong = machine({ ...fake.env(), VERCEL_TOKEN: "wrong" });
    const result = await run(["run", "-p", "vercel", "true"], wrong.env);
    expect(result.code).toBe(125);
    const lines = result.stderr.trimEnd().split("\n");
    expect(lines[0]).toStartWith("sandboxes: vercel: the token was rejected");
    expect(lines[0]).toContain("403");
    expect(result.stderr).toContain("VERCEL_TOKEN");
    expect(fake.sandboxes.size).toBe(0);
  });
});

describe("vercel fake after the e2e tests", () => {
  test("the fake holds no sandbox", () => {
    expect([...fake.sandboxes.keys()]).toEqual([]);
    expect(fake.creates.length).toBeGreaterThan(5);
  });
});
