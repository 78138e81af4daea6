/**
 * Keys a user types (labels, env names, config tables, command names, help topics) are inert:
 * `__proto__`, `constructor`, `toString` are keys like any other, through the compiled binary, on
 * local, docker and the fakes of E2B, Vercel and Daytona (the fakes filter server-side too).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { FakeDaytona } from "../fakes/daytona/server";
import { startFakeE2B, type FakeE2B } from "../fakes/e2b/server";
import { startFakeVercel, type FakeVercel } from "../fakes/vercel/server";
import { cli, keptId, machines } from "../helpers";
import { BUSYBOX } from "./_docker-helpers";

const HOSTILE = ["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf"];
const { machine, removeAll } = machines();

let e2b: FakeE2B;
let vercel: FakeVercel;
const daytona = new FakeDaytona({ apiKey: "dummy" });

const engineUp = await fetch("http://docker/_ping", { unix: "/var/run/docker.sock" } as RequestInit)
  .then(async (r) => (await r.text()) === "OK" && (await fetch(`http://docker/images/${BUSYBOX}/json`, { unix: "/var/run/docker.sock" } as RequestInit)).ok)
  .catch(() => false);

beforeAll(async () => {
  e2b = await startFakeE2B();
  vercel = await startFakeVercel();
  daytona.start();
});

afterAll(async () => {
  await e2b?.close();
  await vercel?.close();
  await daytona.stop();
  removeAll();
});

/** The provider flags and the environment that reaches it. */
const PROVIDERS: Record<string, { skip?: boolean; args: string[]; env: () => Record<string, string> }> = {
  local: { args: ["-p", "local"], env: () => ({}) },
  docker: { skip: !engineUp, args: ["-p", "docker", "--image", BUSYBOX], env: () => ({ DOCKER_HOST: "unix:///var/run/docker.sock" }) },
  e2b: { args: ["-p", "e2b"], env: () => e2b.env() },
  vercel: { args: ["-p", "vercel"], env: () => vercel.env() },
  daytona: { args: ["-p", "daytona"], env: () => ({ DAYTONA_API_KEY: "dummy", DAYTONA_API_URL: daytona.apiUrl }) },
};

type Listed = { id: string; labels: Record<string, string> };
const listJson = async (env: Record<string, string>, provider: string, ...labels: string[]) => {
  const r = await cli(["list", "-p", provider, "--json", ...labels.flatMap((l) => ["-l", l])], { env });
  expect(r.code).toBe(0);
  return (JSON.parse(r.stdout) as { sandboxes: Listed[] }).sandboxes;
};

describe.each(Object.keys(PROVIDERS))("hostile label keys on %s", (name) => {
  const provider = PROVIDERS[name]!;
  test.skipIf(!!provider.skip)("round-trip through list --json, filter exactly, and destroy nothing they do not match", async () => {
    const { env } = machine(provider.env());
    const plain = keptId((await cli(["run", ...provider.args, "--keep", "-l", "plain=1", "true"], { env })).stderr);
    const hostile = await cli(["run", ...provider.args, "--keep", "-l", "__proto__=x", "-l", "constructor=y", "true"], { env });
    const hostileId = keptId(hostile.stderr);
    expect(plain).toBeDefined();
    expect(hostileId).toBeDefined();
    try {
      const found = await listJson(env, name, "__proto__=x");
      expect(found.map((s) => s.id)).toEqual([hostileId!]);
      expect(Object.entries(found[0]!.labels).sort()).toEqual([["__proto__", "x"], ["constructor", "y"]]);
      expect((await listJson(env, name, "constructor=y", "__proto__=x")).map((s) => s.id)).toEqual([hostileId!]);
      for (const key of HOSTILE) expect(await listJson(env, name, `${key}=nothing`)).toEqual([]);

      const destroyed = await cli(["destroy", "-p", name, "--all", "--yes", "--json", "-l", "toString=x"], { env });
      expect(destroyed.code).toBe(0);
      expect(JSON.parse(destroyed.stdout).destroyed).toEqual([]);
      const said = await cli(["destroy", "-p", name, "--all", "--yes", "-l", "__proto__=nothing"], { env });
      expect(said.stderr).toContain("no matching sandboxes");
      expect((await listJson(env, name)).map((s) => s.id).sort()).toEqual([plain!, hostileId!].sort());
    } finally {
      await cli(["destroy", "-p", name, plain!, hostileId!], { env });
    }
  }, 120_000);
});

describe("hostile words as commands, topics, env names and config tables", () => {
  test("sandboxes constructor / __proto__ / toString are unknown commands: one line, exit 2", async () => {
    const { env } = machine();
    for (const word of HOSTILE) {
      const r = await cli([word], { env });
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 2, stderr: `sandboxes: unknown command "${word}" (see sandboxes --help)\n` });
    }
  });

  test("sandboxes help toString is an unknown topic: one line, exit 2", async () => {
    const { env } = machine();
    for (const word of HOSTILE) {
      const r = await cli(["help", word], { env });
      expect({ code: r.code, stdout: r.stdout, lines: r.stderr.trimEnd().split("\n").length }).toEqual({ code: 2, stdout: "", lines: 1 });
      expect(r.stderr).toContain(`no help topic "${word}"`);
    }
  });

  test("run -e __proto__=1 -e constructor=2 sets both variables (local)", async () => {
    const { env } = machine();
    const r = await cli(["run", "-e", "__proto__=1", "-e", "constructor=2", "-e", "toString", "env"], { env: { ...env, toString: "3" } });
    expect(r.code).toBe(0);
    expect(r.stdout.split("\n").filter((l) => /^(__proto__|constructor|toString)=/.test(l)).sort()).toEqual(["__proto__=1", "constructor=2", "toString=3"]);
  });

  test("-e constructor without a value in this shell passes nothing (not Object's constructor)", async () => {
    const { env } = machine();
    const r = await cli(["run", "-e", "constructor", "-e", "hasOwnProperty", "env"], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(/^(constructor|hasOwnProperty)=/m);
  });

  test("config.toml tables named [providers.__proto__] and [providers.constructor] are inert", async () => {
    const { env, home } = machine();
    writeFileSync(join(env.XDG_CONFIG_HOME!, "config.toml"), '[providers.__proto__]\nimage = "x"\n[providers.constructor]\nhost = "y"\n[providers.local]\ntoString = "z"\n');
    const r = await cli(["run", "echo ok"], { env, cwd: home });
    expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 0, stdout: "ok\n" });
    expect((await cli(["providers", "--json"], { env })).code).toBe(0);
  });
});
