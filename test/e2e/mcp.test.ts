/**
 * `sandboxes mcp` through the compiled binary, driven by an MCP client on the official SDK:
 * every tool on local and Docker, the essential tools on each cloud provider's fake, bad input,
 * cancellation, timeouts, the clean-up when the session ends, and `mcp config`.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BUSYBOX, NODE, SOCKET, containersLeft, engine, ensureBinary, requireEngine, uniqueLabel } from "./_docker-helpers";
import { startFakeRegistry } from "../fakes/docker/registry";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { alive, listed, McpSession, waitFor, type ToolResult } from "./_mcp-helpers";
import { BINARY, cli, machines } from "../helpers";
import { startFakeE2B } from "../fakes/e2b/server";
import { FakeDaytona } from "../fakes/daytona/server";
import { startFakeModal } from "../fakes/modal/server";
import { startFakeSprites } from "../fakes/sprites/server";
import { startFakeHopx } from "../fakes/hopx/server";
import { startFakeVercel } from "../fakes/vercel/server";
import { startFakeCloudflare } from "../fakes/cloudflare/server";

setDefaultTimeout(120_000);

const homes = machines();
beforeAll(ensureBinary, 300_000);
afterAll(() => homes.removeAll());

/** Sandboxes of the local provider that still have files in this machine's state dir. */
const localLeft = (env: Record<string, string>) => {
  const dir = join(env.XDG_STATE_HOME!, "sandboxes", "local");
  return existsSync(dir) ? readdirSync(dir) : [];
};

const TOOLS = ["create_sandbox", "destroy_sandbox", "list_sandboxes", "read_file", "run", "write_file"];

describe("mcp on the local provider", () => {
  const { env } = homes.machine();
  const label = uniqueLabel("mcp-local");
  let session: McpSession;
  beforeAll(async () => {
    session = await McpSession.start(["-p", "local", "-l", `suite=${label}`], env);
  });
  afterAll(() => session?.close());

  test("lists the six tools, each with a description, an input schema and an output schema", async () => {
    const { tools } = await session.client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(TOOLS);
    for (const tool of tools) {
      expect(tool.description!.length).toBeGreaterThan(80);
      expect(tool.inputSchema.type).toBe("object");
      expect(tool.outputSchema?.type).toBe("object");
    }
    const run = tools.find((t) => t.name === "run")!;
    expect(Object.keys(run.inputSchema.properties!).sort()).toEqual(["args", "code", "command", "env", "filename", "language", "sandbox_id", "stdin", "timeout_seconds"]);
    expect(run.description).toContain("1 MiB");
    expect(tools.find((t) => t.name === "read_file")!.description).toContain("5 MiB");
    expect(tools.find((t) => t.name === "write_file")!.description).toContain("5 MiB");
  });

  test("run: a command's exit code, stdout and stderr, with a non-zero exit as a result (not an error), in a sandbox that is gone afterwards", async () => {
    const result = await session.ok("run", { command: "echo out; echo err >&2; exit 3" });
    expect(result).toMatchObject({ provider: "local", exit_code: 3, stdout: "out\n", stderr: "err\n", timed_out: false, truncated: false, stdout_bytes: 4, stderr_bytes: 4 });
    expect(typeof result.duration_ms).toBe("number");
    expect(result.stdout_base64).toBeUndefined();
    expect((await listed(env, "local")).map((s) => s.id)).not.toContain(result.sandbox_id);
  });

  test("run: code by language, or by a filename's extension, with args, stdin and env", async () => {
    const python = await session.ok("run", { code: "import sys, os\nprint(sys.argv[1:], sys.stdin.read(), os.environ['GREETING'])", language: "python", args: ["a b", "c"], stdin: "piped", env: { GREETING: "hello" } });
    expect(python).toMatchObject({ exit_code: 0, stdout: "['a b', 'c'] piped hello\n" });
    const byName = await session.ok("run", { code: "echo \"$0 $1\"; exit 5", filename: "script.sh", args: ["x"] });
    expect(byName).toMatchObject({ exit_code: 5 });
    expect(byName.stdout as string).toEndWith("/main.sh x\n");
    const command = await session.ok("run", { command: "printf '%s|' \"$@\"", args: ["one two", "$HOME"] });
    expect(command.stdout).toBe("one two|$HOME|");
  });

  test("run: env keys are inert: __proto__ and constructor reach the program like any other name (issue 13)", async () => {
    // JSON.parse makes "__proto__" an own key, as the client's JSON-RPC message carries it.
    const env = JSON.parse('{"__proto__": "one", "constructor": "two", "PLAIN": "three"}');
    const result = await session.ok("run", { command: "env | grep -E '^(__proto__|constructor|PLAIN)=' | sort", env });
    expect(result).toMatchObject({ exit_code: 0, stdout: "PLAIN=three\n__proto__=one\nconstructor=two\n" });
    await session.fails("run", { command: "true", env: { GOOD: 1 } }, "bad_arguments");
  });

  test("run: output that is not UTF-8 comes with its exact bytes in base64", async () => {
    const result = await session.ok("run", { command: "printf 'a\\377b'" });
    expect(result.stdout_base64).toBe(Buffer.from([0x61, 0xff, 0x62]).toString("base64"));
    expect(result.stdout).toBe("a\uFFFDb");
  });

  test("run: each stream is capped at 1 MiB, with truncated and the full byte counts", async () => {
    const result = await session.ok("run", { command: "head -c 3000000 /dev/zero | tr '\\0' x; echo done >&2" });
    expect(result).toMatchObject({ exit_code: 0, truncated: true, stdout_bytes: 3_000_000, stderr: "done\n", stderr_bytes: 5 });
    expect((result.stdout as string).length).toBe(1024 * 1024);
  });

  test("run: timeout_seconds kills the program: timed_out true, exit 124, nothing left behind", async () => {
    const result = await session.ok("run", { command: "echo started; sleep 30; echo never", timeout_seconds: 1 });
    expect(result).toMatchObject({ exit_code: 124, timed_out: true, stdout: "started\n" });
    expect(await listed(env, "local", { suite: label })).toEqual([]);
  });

  test("create_sandbox, write_file, read_file, run in it, list_sandboxes, destroy_sandbox", async () => {
    const created = await session.ok<{ sandbox_id: string; provider: string; name: string; labels: Record<string, string>; keep: boolean }>("create_sandbox", { name: `box-${label}`, labels: { role: "work" } });
    expect(created).toMatchObject({ provider: "local", name: `box-${label}`, keep: false, labels: { suite: label, role: "work" } });
    expect(created.labels["mcp-session"]).toMatch(/^[0-9a-f]{8}$/);
    const id = created.sandbox_id;

    expect(await session.ok("write_file", { sandbox_id: id, path: "/tmp/deep/er/notes.txt", content: "héllo\n" })).toEqual({ sandbox_id: id, path: "/tmp/deep/er/notes.txt", bytes: 7 });
    expect(await session.ok("read_file", { sandbox_id: id, path: "/tmp/deep/er/notes.txt" })).toEqual({ content: "héllo\n", encoding: "utf8", bytes: 7 });
    const binary = Buffer.from([0, 1, 2, 0xff, 0xfe]);
    await session.ok("write_file", { sandbox_id: `box-${label}`, path: "/tmp/blob.bin", content: binary.toString("base64"), encoding: "base64" });
    expect(await session.ok("read_file", { sandbox_id: id, path: "/tmp/blob.bin" })).toEqual({ content: binary.toString("base64"), encoding: "base64", bytes: 5 });
    expect(await session.ok("read_file", { sandbox_id: id, path: "/tmp/deep/er/notes.txt", encoding: "base64" })).toMatchObject({ content: Buffer.from("héllo\n").toString("base64"), encoding: "base64" });

    const inside = await session.ok("run", { sandbox_id: id, command: "cat /tmp/deep/er/notes.txt; wc -c < /tmp/blob.bin" });
    expect(inside).toMatchObject({ sandbox_id: id, exit_code: 0, stdout: "héllo\n5\n" });
    const code = await session.ok("run", { sandbox_id: id, code: "print(open('/tmp/deep/er/notes.txt').read().upper(), end='')", filename: "shout.py" });
    expect(code).toMatchObject({ sandbox_id: id, exit_code: 0, stdout: "HÉLLO\n" });

    const list = await session.ok<{ sandboxes: Array<{ id: string; name: string; labels: Record<string, string>; provider: string; state: string }> }>("list_sandboxes", { labels: { suite: label } });
    expect(list.sandboxes).toEqual([expect.objectContaining({ id, name: `box-${label}`, provider: "local", state: "running", labels: created.labels })]);
    // The CLI sees it too (the registry knows it by name).
    expect((await cli(["exec", `box-${label}`, "cat /tmp/deep/er/notes.txt"], { env })).stdout).toBe("héllo\n");

    expect(await session.ok("destroy_sandbox", { sandbox_id: id })).toEqual({ sandbox_id: id, provider: "local", destroyed: true });
    expect(await listed(env, "local", { suite: label })).toEqual([]);
    await session.fails("run", { sandbox_id: id, command: "true" }, "unknown_sandbox");
  });

  test("bad input is a one-line tool error with the CLI's code, and the session goes on", async () => {
    await session.fails("run", { command: 5 }, "bad_arguments");
    await session.fails("run", { command: "true", surprise: 1 }, "bad_arguments");
    await session.fails("run", { command: "true", code: "print(1)", language: "python" }, "bad_arguments");
    await session.fails("run", {}, "bad_arguments");
    await session.fails("run", { code: "print(1)" }, "missing_language");
    await session.fails("run", { code: "print(1)", language: "cobol" }, "unknown_language");
    await session.fails("run", { code: "print(1)", filename: "main.xyz" }, "unknown_extension");
    await session.fails("run", { command: "true", timeout_seconds: -1 }, "bad_arguments");
    await session.fails("run", { command: "true", env: { "1BAD": "x" } }, "bad_arguments");
    await session.fails("run", { command: "true", sandbox_id: "no-such-sandbox" }, "unknown_sandbox");
    expect(await session.fails("create_sandbox", { provider: "lcoal" }, "unknown_provider")).toContain("local");
    expect(await session.fails("create_sandbox", { provider: "e2b" }, "not_configured")).toContain("E2B_API_KEY");
    await session.fails("create_sandbox", { labels: { "sandboxes.x": "y" } }, "bad_arguments");
    expect(await session.fails("create_sandbox", { name: "two\nlines" }, "bad_name")).toContain('"two\\nlines" is not valid');
    await session.fails("destroy_sandbox", { sandbox_id: "no-such-sandbox" }, "unknown_sandbox");
    await session.fails("list_sandboxes", { provider: "nope" }, "unknown_provider");
    await session.fails("read_file", { sandbox_id: "no-such-sandbox", path: "/tmp/x" }, "unknown_sandbox");
    await session.fails("write_file", { sandbox_id: "x", path: "/tmp/x", content: "%%%", encoding: "base64" }, "bad_arguments");
    await session.fails("write_file", { sandbox_id: "x", path: "/tmp/x", content: "x".repeat(5 * 1024 * 1024 + 1) }, "file_too_large");

    const box = (await session.ok<{ sandbox_id: string }>("create_sandbox", {})).sandbox_id;
    await session.fails("read_file", { sandbox_id: box, path: "/tmp/missing" }, "file_not_found");
    await session.fails("read_file", { sandbox_id: box, path: "/tmp" }, "not_a_file");
    await session.ok("run", { sandbox_id: box, command: "head -c 6000000 /dev/zero > /tmp/big" });
    expect(await session.fails("read_file", { sandbox_id: box, path: "/tmp/big" }, "file_too_large")).toContain("6000000 bytes");
    await session.ok("destroy_sandbox", { sandbox_id: box });

    expect(await session.ok("run", { command: "echo still here" })).toMatchObject({ stdout: "still here\n" });
  });

  test("cancellation stops the running command and removes the sandbox the call created", async () => {
    const marker = `sleep 98${Math.floor(Math.random() * 10)}.5`;
    const running = () => Bun.spawnSync(["pgrep", "-f", marker]).exitCode === 0;
    const stop = new AbortController();
    const pending = session.call("run", { command: `${marker}; echo never` }, { signal: stop.signal });
    pending.catch(() => {});
    await waitFor(running, "the command to start");
    expect(await listed(env, "local", { suite: label })).toHaveLength(1);
    stop.abort();
    await expect(pending).rejects.toThrow();
    await waitFor(async () => !running() && (await listed(env, "local", { suite: label })).length === 0, "the command and its sandbox to go");
    expect(await session.ok("run", { command: "echo after" })).toMatchObject({ stdout: "after\n" });
  });

  test("stdout carries MCP messages only; the server's own lines go to stderr", () => {
    expect(session.stderr).toContain("sandboxes mcp: serving MCP on stdio");
  });
});

describe("mcp --pids", () => {
  test("every sandbox of the session holds the limit: 10 background sleeps start, 40 do not", async () => {
    const { env } = homes.machine();
    const session = await McpSession.start(["-p", "local", "--pids", "20", "-l", `suite=${uniqueLabel("mcp-pids")}`], env);
    try {
      const forks = (count: number) => `i=0; while [ $i -lt ${count} ]; do sleep 5 & i=$((i+1)); done; echo "$i started"`;
      expect(await session.ok("run", { command: forks(10) })).toMatchObject({ exit_code: 0, stdout: "10 started\n" });
      const many = await session.ok<{ exit_code: number; stderr: string }>("run", { command: forks(40) });
      expect(many.stderr).toContain("Cannot fork");
      expect(many.exit_code).toBe(2);
    } finally {
      await session.close();
    }
  });
});

describe("mcp --network and --allow-net", () => {
  test("the session's policy holds in its sandboxes: the host is reached only when listed, none has only lo", async () => {
    const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("from the host\n") });
    const target = `host.sandboxes.internal:${server.port}`;
    const fetchHost = `curl -fsS --max-time 20 http://${target}/`;
    const { env } = homes.machine();
    const listedSession = await McpSession.start(["-p", "local", "--allow-net", target, "-l", `suite=${uniqueLabel("mcp-net")}`], env);
    const closedSession = await McpSession.start(["-p", "local", "-l", `suite=${uniqueLabel("mcp-net")}`], env);
    const noneSession = await McpSession.start(["-p", "local", "--network", "none", "-l", `suite=${uniqueLabel("mcp-net")}`], env);
    try {
      expect(await listedSession.ok("run", { command: fetchHost })).toMatchObject({ exit_code: 0, stdout: "from the host\n" });
      const closed = await closedSession.ok<{ exit_code: number; stdout: string }>("run", { command: fetchHost });
      expect(closed.exit_code).not.toBe(0);
      expect(closed.stdout).not.toContain("from the host");
      const interfaces = await noneSession.ok<{ stdout: string }>("run", { command: "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '" });
      expect(interfaces.stdout).toBe("lo\n");
    } finally {
      await Promise.all([listedSession.close(), closedSession.close(), noneSession.close()]);
      server.stop(true);
    }
  });

  test("a bad --allow-net entry is a usage error (one line, exit 2) before the server starts; mcp config writes the entries", async () => {
    const { env } = homes.machine();
    const bad = await cli(["mcp", "--allow-net", "not a host"], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);
    expect(bad.stderr).toContain("--allow-net");
    const snippet = await cli(["mcp", "config", "claude", "--allow-net", "pypi.org", "--allow-net", "host.sandboxes.internal:5432"], { env });
    expect(snippet.code).toBe(0);
    expect(snippet.stdout).toContain("mcp --allow-net pypi.org --allow-net host.sandboxes.internal:5432");
  });
});

describe("mcp session end: what the session created goes, kept sandboxes stay and are named", () => {
  async function sessionWithSandboxes(env: Record<string, string>, label: string) {
    const session = await McpSession.start(["-p", "local", "-l", `suite=${label}`], env);
    const gone = (await session.ok<{ sandbox_id: string }>("create_sandbox", {})).sandbox_id;
    const kept = (await session.ok<{ sandbox_id: string }>("create_sandbox", { keep: true })).sandbox_id;
    expect((await listed(env, "local", { suite: label })).map((s) => s.id).sort()).toEqual([gone, kept].sort());
    return { session, gone, kept };
  }

  test("the client closes stdin", async () => {
    const { env } = homes.machine();
    const label = uniqueLabel("mcp-stdin");
    const { session, gone, kept } = await sessionWithSandboxes(env, label);
    const pid = session.pid;
    await session.close();
    await waitFor(() => !alive(pid), "the server to exit");
    expect(session.stderr).toContain("session ending (stdin closed)");
    expect(session.stderr.trim().split("\n").at(-1)).toBe(`sandboxes mcp: kept sandboxes: ${kept} (local); remove them with \`sandboxes destroy ID\``);
    expect((await listed(env, "local", { suite: label })).map((s) => s.id)).toEqual([kept]);
    expect(localLeft(env)).not.toContain(gone);
    await cli(["destroy", kept], { env });
    expect(localLeft(env)).toEqual([]);
  });

  test.each(["SIGTERM", "SIGINT"] as const)("the server gets %s, also while a run is in flight", async (signal) => {
    const { env } = homes.machine();
    const label = uniqueLabel("mcp-signal");
    const { session, kept } = await sessionWithSandboxes(env, label);
    const pending = session.call("run", { command: "echo started; sleep 60" });
    pending.catch(() => {});
    await waitFor(async () => (await listed(env, "local", { suite: label })).length === 3, "the run's sandbox");
    const pid = session.pid;
    process.kill(pid, signal);
    await waitFor(() => !alive(pid), "the server to exit");
    expect(session.stderr).toContain(`session ending (${signal})`);
    expect((await listed(env, "local", { suite: label })).map((s) => s.id)).toEqual([kept]);
    expect(localLeft(env)).toEqual([kept]);
    await session.close().catch(() => {});
    await cli(["destroy", kept], { env });
  });

  test("the server's parent dies while its stdin stays open: the orphaned server notices and cleans up", async () => {
    const { env, home } = homes.machine();
    const label = uniqueLabel("mcp-orphan");
    const writerPid = join(home, "writer.pid");
    // sh stands between the client and the server, and a writer of our own (cat, then a sleep)
    // feeds the server's stdin, so that it stays open after sh is gone. fd 3: sh gives a
    // background pipeline /dev/null as stdin before its redirections.
    const script = `exec 3<&0; sh -c 'echo $$ > "$1"; cat; exec sleep 600' writer "$1" <&3 3<&- | "$0" mcp --provider local -l suite=${label} & wait`;
    const transport = new StdioClientTransport({ command: "sh", args: ["-c", script, BINARY, writerPid], env, stderr: "pipe" });
    let stderr = "";
    transport.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const client = new Client({ name: "orphan", version: "0" });
    await client.connect(transport);
    try {
      const created = (await client.callTool({ name: "create_sandbox", arguments: {} })) as ToolResult;
      const id = (created.structuredContent as { sandbox_id: string }).sandbox_id;
      expect((await listed(env, "local", { suite: label })).map((s) => s.id)).toEqual([id]);
      const shell = transport.pid!;
      const server = Number(Bun.spawnSync(["pgrep", "-P", String(shell), "-f", "mcp --provider local"]).stdout.toString().trim());
      expect(server).toBeGreaterThan(0);
      process.kill(shell, "SIGKILL");
      await waitFor(() => !alive(server), "the orphaned server to exit");
      expect(stderr).toContain("session ending (client gone)");
      expect(await listed(env, "local", { suite: label })).toEqual([]);
      expect(localLeft(env)).toEqual([]);
    } finally {
      await client.close().catch(() => {});
      if (existsSync(writerPid)) process.kill(Number(readFileSync(writerPid, "utf8")), "SIGKILL");
    }
  });

  test("the client is killed (SIGKILL) and never says goodbye", async () => {
    const { env } = homes.machine();
    const label = uniqueLabel("mcp-killed");
    const client = Bun.spawn([process.execPath, join(import.meta.dir, "_mcp-client.ts"), BINARY, "mcp", "-p", "local", "-l", `suite=${label}`], { env: { ...env, PATH: process.env.PATH! }, stdout: "pipe", stderr: "pipe" });
    const reader = (client.stdout as ReadableStream<Uint8Array>).getReader();
    const first = JSON.parse(new TextDecoder().decode((await reader.read()).value)) as { server_pid: number; sandbox_id: string };
    expect((await listed(env, "local", { suite: label })).map((s) => s.id)).toEqual([first.sandbox_id]);
    client.kill("SIGKILL");
    await client.exited;
    await waitFor(() => !alive(first.server_pid), "the orphaned server to exit");
    expect(await listed(env, "local", { suite: label })).toEqual([]);
    expect(localLeft(env)).toEqual([]);
  });
});

describe("mcp on Docker (containers with --network none)", () => {
  const { env } = homes.machine({ DOCKER_HOST: "unix:///var/run/docker.sock" });
  const label = uniqueLabel("mcp-docker");
  let session: McpSession;
  beforeAll(async () => {
    await requireEngine();
    session = await McpSession.start(["-p", "docker", "-i", BUSYBOX, "--network", "none", "-l", `suite=${label}`], env);
  });
  afterAll(async () => {
    await session?.close();
  });

  test("create_sandbox reports an image pull as progress notifications when the client asks for them", async () => {
    const registry = await startFakeRegistry(SOCKET, BUSYBOX);
    const image = `${registry.host}/sbx/mcp:v1`;
    const progress: Array<{ progress: number; message?: string }> = [];
    try {
      const result = (await session.client.callTool({ name: "create_sandbox", arguments: { image } }, undefined, { onprogress: (p) => void progress.push(p), timeout: 120_000 })) as ToolResult;
      expect(result.isError ?? false).toBe(false);
      expect(progress.at(0)?.message).toBe(`pulling ${image}…`);
      expect(progress.at(-1)?.message).toBe(`pulled ${image}`);
      expect(progress.map((p) => p.progress)).toEqual(progress.map((_, index) => index + 1));
      const id = (result.structuredContent as { sandbox_id: string }).sandbox_id;
      expect(await session.ok("run", { sandbox_id: id, command: "cat /etc/fake-registry" })).toMatchObject({ exit_code: 0, stdout: expect.stringMatching(/^served at /) });
      await session.ok("destroy_sandbox", { sandbox_id: id });
    } finally {
      registry.stop();
      await engine("DELETE", `/images/${image}?force=true`);
    }
  });

  test("every tool, then nothing left once the session ends", async () => {
    // --network none: the container has nothing but loopback.
    const run = await session.ok("run", { command: "echo out; echo err >&2; ls /sys/class/net; exit 4" });
    expect(run).toMatchObject({ provider: "docker", exit_code: 4, stdout: "out\nlo\n", stderr: "err\n" });

    const timed = await session.ok("run", { command: "sleep 30", timeout_seconds: 1 });
    expect(timed).toMatchObject({ timed_out: true, exit_code: 124 });

    const created = await session.ok<{ sandbox_id: string; provider: string }>("create_sandbox", { image: NODE, labels: { role: "node" } });
    expect(created.provider).toBe("docker");
    const id = created.sandbox_id;
    await session.ok("write_file", { sandbox_id: id, path: "/srv/app/data.json", content: '{"n": 41}' });
    expect(await session.ok("read_file", { sandbox_id: id, path: "/srv/app/data.json" })).toEqual({ content: '{"n": 41}', encoding: "utf8", bytes: 9 });
    const code = await session.ok("run", { sandbox_id: id, code: "console.log(JSON.parse(require('fs').readFileSync('/srv/app/data.json')).n + 1, process.argv[2])", language: "javascript", args: ["arg"] });
    expect(code).toMatchObject({ exit_code: 0, stdout: "42 arg\n" });

    const list = await session.ok<{ sandboxes: Array<{ id: string; image: string }> }>("list_sandboxes", { provider: "docker", labels: { suite: label } });
    expect(list.sandboxes.map((s) => s.id)).toEqual([id]);
    const second = (await session.ok<{ sandbox_id: string }>("create_sandbox", {})).sandbox_id;
    expect(await session.ok("destroy_sandbox", { sandbox_id: second })).toMatchObject({ destroyed: true });

    // Cancelled mid-run: the container of that call goes.
    const stop = new AbortController();
    const pending = session.call("run", { command: "echo started; sleep 60" }, { signal: stop.signal });
    pending.catch(() => {});
    await waitFor(async () => (await listed(env, "docker", { suite: label })).length === 2, "the run's container");
    stop.abort();
    await expect(pending).rejects.toThrow();
    await waitFor(async () => (await listed(env, "docker", { suite: label })).length === 1, "the cancelled run's container to go");
    expect((await listed(env, "docker", { suite: label })).map((s) => s.id)).toEqual([id]);

    const pid = session.pid;
    await session.close();
    await waitFor(() => !alive(pid), "the server to exit");
    expect(await containersLeft("suite", label)).toEqual([]);
  });
});

/** Each cloud provider's fake: run, create_sandbox, write_file, read_file, and nothing left. */
interface CloudCase {
  provider: string;
  start(): Promise<{ env: Record<string, string>; stop(): Promise<void> }>;
}

const CLOUDS: CloudCase[] = [
  { provider: "e2b", start: async () => { const f = await startFakeE2B(); return { env: f.env(), stop: () => f.close() }; } },
  {
    provider: "daytona",
    start: async () => {
      const f = new FakeDaytona({ apiKey: "dummy" }).start();
      return { env: { DAYTONA_API_KEY: "dummy", DAYTONA_API_URL: f.apiUrl }, stop: () => f.stop() };
    },
  },
  {
    provider: "modal",
    start: async () => {
      const f = await startFakeModal();
      return { env: { ...f.env() }, stop: () => f.stop() };
    },
  },
  { provider: "sprites", start: async () => { const f = await startFakeSprites(); return { env: f.env(), stop: () => f.close() }; } },
  { provider: "hopx", start: async () => { const f = await startFakeHopx(); return { env: f.env(), stop: () => f.close() }; } },
  { provider: "vercel", start: async () => { const f = await startFakeVercel(); return { env: f.env(), stop: () => f.close() }; } },
  { provider: "cloudflare", start: async () => { const f = await startFakeCloudflare({ mode: "bridge" }); return { env: f.env(), stop: () => f.close() }; } },
];

describe.each(CLOUDS)("mcp on the $provider fake", ({ provider, start }) => {
  let fake: Awaited<ReturnType<CloudCase["start"]>>;
  let env: Record<string, string>;
  const remote = `/tmp/sandboxes-e2e-mcp-${provider}-${process.pid}`;
  beforeAll(async () => {
    fake = await start();
    env = homes.machine(fake.env).env;
  });
  afterAll(async () => {
    await fake?.stop();
    rmSync(remote, { recursive: true, force: true });
  });

  test("run, create_sandbox, write_file, read_file; nothing left when the session ends", async () => {
    const session = await McpSession.start(["-p", provider], env);
    const run = await session.ok("run", { command: "echo out; echo err >&2; exit 3" });
    expect(run).toMatchObject({ provider, exit_code: 3, stdout: "out\n", stderr: "err\n", timed_out: false });

    const created = await session.ok<{ sandbox_id: string; provider: string }>("create_sandbox", {});
    expect(created.provider).toBe(provider);
    const id = created.sandbox_id;
    await session.ok("write_file", { sandbox_id: id, path: `${remote}/sub/hello.txt`, content: "hi from mcp\n" });
    expect(await session.ok("read_file", { sandbox_id: id, path: `${remote}/sub/hello.txt` })).toEqual({ content: "hi from mcp\n", encoding: "utf8", bytes: 12 });
    expect(await session.ok("run", { sandbox_id: id, command: `cat ${remote}/sub/hello.txt` })).toMatchObject({ exit_code: 0, stdout: "hi from mcp\n" });
    expect((await listed(env, provider)).map((s) => s.id)).toEqual([id]);

    const pid = session.pid;
    await session.close();
    await waitFor(() => !alive(pid), "the server to exit");
    expect(await listed(env, provider)).toEqual([]);
  });
});

describe("the MCP SDK is loaded by `sandboxes mcp` only", () => {
  const ROOT = join(import.meta.dir, "../..");
  /** Modules loaded by `bun src/main.ts ...args` (see _release-trace.ts). */
  async function loaded(args: string[], stdin?: string): Promise<string[]> {
    const { env, home } = homes.machine();
    const out = join(home, "trace.json");
    const child = Bun.spawn([process.execPath, "--preload", join(ROOT, "test/e2e/_release-trace.ts"), join(ROOT, "src/main.ts"), ...args], {
      env: { ...env, SANDBOXES_TRACE_OUT: out },
      stdin: stdin === undefined ? "ignore" : new Blob([stdin]),
      stdout: "pipe",
      stderr: "pipe",
    });
    await child.exited;
    return JSON.parse(readFileSync(out, "utf8")) as string[];
  }
  const sdk = (modules: string[]) => modules.filter((m) => m.includes("node_modules/@modelcontextprotocol/") || m.includes("node_modules/zod/"));

  test("serving loads it (control)", async () => {
    expect(sdk(await loaded(["mcp", "-p", "local"], ""))).not.toEqual([]);
  });

  test.each(["mcp --help", "mcp config cursor", "list --json", "run true", "completion bash"])("`sandboxes %s` does not", async (line) => {
    expect(sdk(await loaded(line.split(" ")))).toEqual([]);
  });
});

describe("mcp config", () => {
  test("prints the snippet for each client, with the session flags in it", async () => {
    const { env } = homes.machine();
    const claude = await cli(["mcp", "config", "claude", "-p", "docker", "--network", "none", "--pids", "100"], { env });
    expect(claude).toMatchObject({ code: 0, stderr: "" });
    expect(claude.stdout).toBe(`claude mcp add --scope user sandboxes -- ${BINARY} mcp --provider docker --network none --pids 100\n`);
    const cursor = await cli(["mcp", "config", "cursor"], { env });
    expect(JSON.parse(cursor.stdout)).toEqual({ mcpServers: { sandboxes: { command: BINARY, args: ["mcp"] } } });
    const vscode = await cli(["mcp", "config", "vscode", "-l", "team=a"], { env });
    expect(JSON.parse(vscode.stdout)).toEqual({ servers: { sandboxes: { type: "stdio", command: BINARY, args: ["mcp", "--label", "team=a"] } } });
    const json = await cli(["mcp", "config"], { env });
    expect(JSON.parse(json.stdout)).toEqual({ mcpServers: { sandboxes: { command: BINARY, args: ["mcp"] } } });
  });

  test("with sandboxes on PATH the entry says just `sandboxes`", async () => {
    const { env, home } = homes.machine();
    mkdirSync(join(home, "bin"));
    Bun.spawnSync(["ln", "-s", BINARY, join(home, "bin", "sandboxes")]);
    const result = await cli(["mcp", "config", "cursor"], { env: { ...env, PATH: `${join(home, "bin")}:${env.PATH}` } });
    expect(JSON.parse(result.stdout).mcpServers.sandboxes.command).toBe("sandboxes");
  });

  test("--write merges into each client's file, keeps the other entries and the file's mode, and shows the change", async () => {
    const { env, home } = homes.machine();
    writeFileSync(join(home, ".claude.json"), JSON.stringify({ numStartups: 3, mcpServers: { other: { command: "other", args: [] } } }), { mode: 0o600 });
    const claude = await cli(["mcp", "config", "claude", "--write", "--yes"], { env });
    expect(claude.code).toBe(0);
    expect(claude.stdout).toBe("");
    expect(claude.stderr).toContain(`--- ${join(home, ".claude.json")} (no entry)`);
    expect(claude.stderr).toContain('+   "command": ');
    const written = JSON.parse(readFileSync(join(home, ".claude.json"), "utf8"));
    expect(written).toEqual({ numStartups: 3, mcpServers: { other: { command: "other", args: [] }, sandboxes: { type: "stdio", command: BINARY, args: ["mcp"], env: {} } } });
    expect(statSync(join(home, ".claude.json")).mode & 0o777).toBe(0o600);

    const cursor = await cli(["mcp", "config", "cursor", "--write", "--yes", "-p", "docker"], { env });
    expect(cursor.code).toBe(0);
    expect(JSON.parse(readFileSync(join(home, ".cursor", "mcp.json"), "utf8"))).toEqual({ mcpServers: { sandboxes: { command: BINARY, args: ["mcp", "--provider", "docker"] } } });
    // Changing an existing entry shows the old lines too.
    const again = await cli(["mcp", "config", "cursor", "--write", "--yes"], { env });
    expect(again.stderr).toContain('-     "--provider",');
    expect(JSON.parse(readFileSync(join(home, ".cursor", "mcp.json"), "utf8")).mcpServers.sandboxes.args).toEqual(["mcp"]);
    const same = await cli(["mcp", "config", "cursor", "--write", "--yes"], { env });
    expect(same.code).toBe(0);
    expect(same.stderr).toContain("nothing to change");

    const project = join(home, "project");
    mkdirSync(join(project, ".vscode"), { recursive: true });
    writeFileSync(join(project, ".vscode", "mcp.json"), JSON.stringify({ servers: { db: { type: "stdio", command: "db" } }, inputs: [] }));
    const vscode = await cli(["mcp", "config", "vscode", "--write", "--yes"], { env, cwd: project });
    expect(vscode.code).toBe(0);
    expect(JSON.parse(readFileSync(join(project, ".vscode", "mcp.json"), "utf8"))).toEqual({ servers: { db: { type: "stdio", command: "db" }, sandboxes: { type: "stdio", command: BINARY, args: ["mcp"] } }, inputs: [] });
    expect(readdirSync(join(project, ".vscode"))).toEqual(["mcp.json"]);
  });

  test("--write without a terminal needs --yes, never clobbers a file it cannot parse, and bad usage is exit 2", async () => {
    const { env, home } = homes.machine();
    const noYes = await cli(["mcp", "config", "cursor", "--write"], { env });
    expect(noYes.code).toBe(2);
    expect(noYes.stderr.trim().split("\n").at(-1)).toBe(`sandboxes: refusing to change ${join(home, ".cursor", "mcp.json")} without confirmation: add --yes`);
    expect(existsSync(join(home, ".cursor", "mcp.json"))).toBe(false);

    mkdirSync(join(home, ".cursor"));
    writeFileSync(join(home, ".cursor", "mcp.json"), "{ broken");
    const broken = await cli(["mcp", "config", "cursor", "--write", "--yes"], { env });
    expect(broken.code).toBe(1);
    expect(broken.stderr).toStartWith(`sandboxes: cannot parse ${join(home, ".cursor", "mcp.json")}`);
    expect(readFileSync(join(home, ".cursor", "mcp.json"), "utf8")).toBe("{ broken");

    expect((await cli(["mcp", "config", "json", "--write", "--yes"], { env })).code).toBe(2);
    const unknown = await cli(["mcp", "config", "zed"], { env });
    expect(unknown).toMatchObject({ code: 2, stdout: "" });
    expect(unknown.stderr).toBe('sandboxes: unknown client "zed": choose one of claude, cursor, vscode, json\n');
    expect((await cli(["mcp", "serve"], { env })).code).toBe(2);
    expect((await cli(["mcp", "--network", "wide"], { env })).code).toBe(2);
  });
});
