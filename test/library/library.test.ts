/**
 * The library (src/index.ts) against the real local provider: real namespaced processes, real
 * files. Each test gets its own HOME and state directory; docker is pointed at nothing so that
 * only what a test asks for is configured.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { run, runMany, Sandbox, SandboxesError } from "../../src/index";
import { PROVIDERS } from "../../src/providers/catalog";
import { Registry } from "../../src/core/registry";

const roots: string[] = [];
afterAll(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

function environment(extra: Record<string, string> = {}) {
  const root = mkdtempSync(join(tmpdir(), "sandboxes-lib-"));
  roots.push(root);
  const env = {
    HOME: join(root, "home"),
    XDG_CONFIG_HOME: join(root, "config"),
    XDG_STATE_HOME: join(root, "state"),
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    DOCKER_HOST: "unix:///nonexistent/docker.sock",
    ...extra,
  };
  mkdirSync(env.HOME, { recursive: true });
  const localSandboxes = () => {
    const dir = join(env.XDG_STATE_HOME, "sandboxes", "local");
    return existsSync(dir) ? readdirSync(dir) : [];
  };
  const registry = () => new Registry(join(env.XDG_STATE_HOME, "sandboxes")).entries().map((e) => e.id);
  return { env, root, localSandboxes, registry };
}

const errorCode = async (promise: Promise<unknown>) => {
  try {
    await promise;
  } catch (error) {
    if (error instanceof SandboxesError) return [error.code, error.message];
    throw error;
  }
  return undefined;
};

describe("run and runMany", () => {
  test("run: exact output and exit code, argv or a command line, stdin, and no sandbox left", async () => {
    const { env, localSandboxes } = environment();
    const line = await run("echo out; echo err >&2; exit 3", { environment: env });
    expect(line).toMatchObject({ stdout: "out\n", stderr: "err\n", exitCode: 3, timedOut: false, success: false, provider: "local" });
    expect(line.sandboxId).toStartWith("local-");
    const argv = await run(["printf", "%s|", "a b", "$HOME", "it's"], { environment: env });
    expect(argv.stdout).toBe("a b|$HOME|it's|");
    const piped = await run("tr a-z A-Z", { environment: env, stdin: "shout\n" });
    expect(piped.stdout).toBe("SHOUT\n");
    const bytes = await run("printf '\\377\\000A'", { environment: env });
    // A run's sandbox is its own: cwd is created, for a command line and for argv alike.
    expect((await run("pwd", { environment: env, cwd: "/tmp/made/here" })).stdout).toBe("/tmp/made/here\n");
    expect((await run(["pwd"], { environment: env, cwd: "/tmp/made/too" })).stdout).toBe("/tmp/made/too\n");
    expect((await runMany(["pwd"], { environment: env, cwd: "/tmp/made/many" }))[0]!.stdout).toBe("/tmp/made/many\n");
    expect([...bytes.stdoutBytes]).toEqual([255, 0, 65]);
    expect(localSandboxes()).toEqual([]);
  });

  test("a timeout kills the command: 124 and timedOut, sandbox gone", async () => {
    const { env, localSandboxes } = environment();
    const result = await run("echo before; sleep 30; echo after", { environment: env, timeoutMs: 500 });
    expect(result).toMatchObject({ stdout: "before\n", exitCode: 124, timedOut: true, success: false });
    expect(localSandboxes()).toEqual([]);
  });

  test("maxOutputBytes bounds what run() and exec() keep; the live callbacks still see every byte", async () => {
    const { env, localSandboxes } = environment();
    let live = 0;
    const result = await run("head -c 100000 /dev/zero; echo err >&2; exit 3", { environment: env, maxOutputBytes: 10, onStdout: (c) => void (live += c.length) });
    expect(result).toMatchObject({ exitCode: 3, stdout: "\0".repeat(10), stderr: "err\n", stdoutTotalBytes: 100_000, stderrTotalBytes: 4, stdoutTruncated: true, stderrTruncated: false, truncated: true });
    expect(result.stdoutBytes.length).toBe(10);
    expect(live).toBe(100_000);
    await using box = await Sandbox.create({ environment: env });
    expect(await box.exec("echo hello", { maxOutputBytes: 2 })).toMatchObject({ stdout: "he", stdoutTotalBytes: 6, truncated: true });
    expect(await box.exec("echo hello")).toMatchObject({ stdout: "hello\n", truncated: false });
    await expect(box.exec("true", { maxOutputBytes: -1 })).rejects.toMatchObject({ code: "bad_value" });
    await box.destroy();
    expect(localSandboxes()).toEqual([]);
  });

  test("a name that is not letters, digits, _ . and - is refused before anything is created", async () => {
    const { env, localSandboxes } = environment();
    await expect(Sandbox.create({ environment: env, name: "two\nlines" })).rejects.toMatchObject({ code: "bad_name" });
    await expect(Sandbox.create({ environment: env, name: "with space" })).rejects.toBeInstanceOf(SandboxesError);
    expect(localSandboxes()).toEqual([]);
  });

  test("runMany runs in one sandbox and stops at the first failure unless told not to", async () => {
    const { env, localSandboxes } = environment();
    const stopped = await runMany(["echo 1 > /tmp/f", "cat /tmp/f; exit 4", "echo never"], { environment: env });
    expect(stopped.map((r) => [r.stdout, r.exitCode])).toEqual([["", 0], ["1\n", 4]]);
    expect(new Set(stopped.map((r) => r.sandboxId)).size).toBe(1);
    const all = await runMany(["false", "echo still"], { environment: env, stopOnError: false });
    expect(all.map((r) => r.exitCode)).toEqual([1, 0]);
    expect(all[1]!.stdout).toBe("still\n");
    expect(localSandboxes()).toEqual([]);
  });
});

describe("Sandbox", () => {
  test("create, exec with env and cwd, files both ways, destroy (idempotent), registry kept in step", async () => {
    const { env, root, localSandboxes, registry } = environment();
    const box = await Sandbox.create({ environment: env, env: { GREETING: "hello" }, labels: { suite: "lib" } });
    try {
      expect(box.provider).toBe("local");
      expect(registry()).toEqual([box.id]);
      expect((await box.exec('echo "$GREETING $EXTRA"', { env: { EXTRA: "world" } })).stdout).toBe("hello world\n");
      expect((await box.exec("mkdir -p /tmp/w")).success).toBe(true);
      expect((await box.exec("pwd", { cwd: "/tmp/w" })).stdout).toBe("/tmp/w\n");
      expect(await errorCode(box.exec("pwd", { cwd: "/tmp/missing" }))).toEqual(["workdir_not_found", `working directory /tmp/missing does not exist in sandbox ${box.id}`]);
      const blob = new Uint8Array(70_000).map((_, i) => (i * 7) % 256);
      writeFileSync(join(root, "blob.bin"), blob);
      await box.upload(join(root, "blob.bin"), "/tmp/w/");
      expect((await box.exec("wc -c < /tmp/w/blob.bin")).stdout.trim()).toBe("70000");
      await box.download("/tmp/w/blob.bin", join(root, "back.bin"));
      expect(new Uint8Array(readFileSync(join(root, "back.bin")))).toEqual(blob);
    } finally {
      await box.destroy();
      await box.destroy();
    }
    expect(localSandboxes()).toEqual([]);
    expect(registry()).toEqual([]);
  });

  test("await using destroys the sandbox at the end of the block, also when the block throws", async () => {
    const { env, localSandboxes } = environment();
    const thrown = await (async () => {
      await using box = await Sandbox.create({ environment: env });
      expect(localSandboxes()).toEqual([box.id]);
      throw new Error("inside the block");
    })().catch((error: Error) => error.message);
    expect(thrown).toBe("inside the block");
    expect(localSandboxes()).toEqual([]);
  });

  test("find, getOrCreate and connect see the same sandbox; find is null when nothing matches", async () => {
    const { env, localSandboxes } = environment();
    expect(await Sandbox.find({ labels: { project: "p1" }, environment: env })).toBeNull();
    const made = await Sandbox.getOrCreate({ labels: { project: "p1" }, environment: env });
    try {
      await made.exec("echo kept > /tmp/state");
      const again = await Sandbox.getOrCreate({ labels: { project: "p1" }, environment: env });
      expect(again.id).toBe(made.id);
      const connected = await Sandbox.connect(made.id, { environment: env });
      expect((await connected.exec("cat /tmp/state")).stdout).toBe("kept\n");
      expect(await Sandbox.find({ labels: { project: "other" }, environment: env })).toBeNull();
      expect(await errorCode(Sandbox.find({ environment: env }))).toEqual(["find_without_key", "Sandbox.find needs labels or a name"]);
    } finally {
      await made.destroy();
    }
    expect(localSandboxes()).toEqual([]);
  });

  test("stream: output as it happens, then the exit event; leaving early stops the command", async () => {
    const { env, localSandboxes } = environment();
    await using box = await Sandbox.create({ environment: env });
    const events: string[] = [];
    for await (const event of box.stream("echo one; echo two >&2; exit 5")) events.push(event.type === "exit" ? `exit ${event.exitCode}` : `${event.type} ${event.text}`);
    expect(events.filter((e) => e.startsWith("stdout")).join("")).toBe("stdout one\n");
    expect(events.filter((e) => e.startsWith("stderr")).join("")).toBe("stderr two\n");
    expect(events.at(-1)).toBe("exit 5");

    const marker = `7${String(process.pid).padStart(7, "0").slice(-7)}`;
    const alive = () => Bun.spawnSync(["pgrep", "-f", `sleep ${marker}`]).exitCode === 0;
    for await (const event of box.stream(`echo started; sleep ${marker}`)) {
      expect(event).toMatchObject({ type: "stdout", text: "started\n" });
      break;
    }
    for (let i = 0; i < 100 && alive(); i++) await Bun.sleep(50);
    expect(alive()).toBe(false);
    expect((await box.exec("echo usable")).stdout).toBe("usable\n");
    await box.destroy();
    expect(localSandboxes()).toEqual([]);
  });

  test("pids: a local sandbox holds it; a provider that cannot enforce it refuses before creating anything", async () => {
    const { env, localSandboxes } = environment({ E2B_API_KEY: "e2b_unused", E2B_API_URL: "http://127.0.0.1:9" });
    const forks = "i=0; while [ $i -lt 40 ]; do sleep 5 & i=$((i+1)); done; echo started";
    const limited = await run(forks, { environment: env, provider: "local", pids: 20 });
    expect(limited.stderr).toContain("Cannot fork");
    expect(limited.exitCode).toBe(2);
    await using box = await Sandbox.create({ environment: env, provider: "local", pids: 20 });
    expect((await box.exec(["sh", "-c", forks])).exitCode).toBe(2);
    const refused = await errorCode(Sandbox.create({ environment: env, provider: "e2b", pids: 20 }));
    expect(refused).toEqual(["unsupported", "provider e2b cannot limit the number of processes (--pids)"]);
    await box.destroy();
    expect(localSandboxes()).toEqual([]);
  }, 30_000);

  test("fallback: an unusable provider is passed over; when none works the error names each", async () => {
    const { env, localSandboxes } = environment();
    const box = await Sandbox.create({ environment: env, provider: "docker", fallback: ["local"] });
    expect(box.provider).toBe("local");
    await box.destroy();
    const failed = await errorCode(Sandbox.create({ environment: env, provider: "docker", fallback: ["e2b"] }));
    expect(failed?.[0]).toBe("create_failed");
    expect(failed?.[1]).toStartWith("no provider could create the sandbox: docker: provider docker is not configured: ");
    expect(failed?.[1]).toContain("; e2b: provider e2b is not configured: set E2B_API_KEY");
    // A mistake in the options is not tried elsewhere.
    expect((await errorCode(Sandbox.create({ environment: env, provider: "lcoal", fallback: ["local"] })))?.[0]).toBe("unknown_provider");
    expect(localSandboxes()).toEqual([]);
  });

  test("a network policy is validated as the CLI validates it, and checked against the provider before anything is made", async () => {
    const { env, localSandboxes } = environment();
    expect(await errorCode(run("true", { environment: env, provider: "local", network: { mode: "default", allow: ["exa mple.com"] } }))).toEqual([
      "bad_allow_net",
      "--allow-net exa mple.com: expected a hostname, *.domain, an IP address or a CIDR, with an optional :PORT",
    ]);
    expect((await errorCode(Sandbox.create({ environment: env, provider: "local", network: { mode: "none", allow: ["example.com"] } })))?.[0]).toBe("conflicting_arguments");
    expect((await errorCode(Sandbox.create({ environment: env, provider: "local", network: { mode: "bridge" as never, allow: [] } })))?.[0]).toBe("bad_value");
    expect(localSandboxes()).toEqual([]);
  });
});

// From the sources (the npm package), a sandbox binds the project read-only for its helper; a
// PATH entry inside the project (npm run's node_modules/.bin) is bound before it, and that bind
// then covers it. A read-only bind's mounts are its own, in the mount tree, not that covered one.
describe("the library from the sources, with a PATH entry inside the project", () => {
  const projectBin = resolve(import.meta.dir, "../../node_modules/.bin");
  for (const [name, extra] of [
    ["bubblewrap", {}],
    ["util-linux", { SANDBOXES_LOCAL_ISOLATION: "unshare" }],
    ["util-linux without sandbox-start", { SANDBOXES_LOCAL_ISOLATION: "unshare", SANDBOXES_LOCAL_START: "off" }],
  ] as const) {
    test(name, async () => {
      expect(existsSync(projectBin)).toBe(true);
      const { env } = environment({ PATH: `${projectBin}:/usr/bin:/bin`, ...extra });
      const line = await run(`ls ${projectBin} >/dev/null && touch ${projectBin}/written 2>&1 | grep -o 'Read-only file system'`, { environment: env });
      expect(line).toMatchObject({ stdout: "Read-only file system\n", stderr: "", exitCode: 0 });
    });
  }
});

describe("the package", () => {
  test('`import { run, Sandbox } from "sandboxes"` works in a Bun program, and loads no cloud SDK', async () => {
    const { env, root } = environment();
    const project = join(root, "app");
    mkdirSync(join(project, "node_modules"), { recursive: true });
    symlinkSync(resolve(import.meta.dir, "../.."), join(project, "node_modules", "sandboxes"));
    writeFileSync(
      join(project, "main.ts"),
      [
        'import { run, Sandbox, providerNames } from "sandboxes";',
        'const result = await run("echo $((6 * 7))");',
        "const sdks = Object.keys(require.cache).filter((k) => /node_modules\\/(e2b|@daytonaio|modal|@hopx-ai|@fly|@vercel|@cloudflare)\\//.test(k));",
        "console.log(JSON.stringify({ stdout: result.stdout, code: result.exitCode, sandbox: typeof Sandbox.create, providers: providerNames(), sdks }));",
      ].join("\n"),
    );
    const child = Bun.spawnSync([process.execPath, join(project, "main.ts")], { cwd: project, env });
    expect(child.stderr.toString()).toBe("");
    expect(JSON.parse(child.stdout.toString())).toEqual({ stdout: "42\n", code: 0, sandbox: "function", providers: PROVIDERS.map((p) => p.name), sdks: [] });
  });
});
