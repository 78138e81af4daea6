/**
 * One-shot runs on docker through the compiled binary: `run` of a plain command in a throwaway
 * container makes the command the container's own process (no keepalive, no exec). What the
 * binary did is read back from the engine itself: its event log names every exec it created,
 * and its container list shows what is left.
 */
import { describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BINARY, BUSYBOX, dockerE2eSuite, containersLeft, engine, uniqueLabel, USER_IMAGE } from "./_docker-helpers";

const { cli, label } = dockerE2eSuite();
const TIMEOUT = 60_000;

interface EngineEvent {
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
}

/** The engine's container events for our label since `since` (seconds), up to now. */
async function eventsFor(mark: string, since: number): Promise<EngineEvent[]> {
  const filters = encodeURIComponent(JSON.stringify({ type: ["container"], label: [`sandboxes.label.e2e=${mark}`] }));
  // A past `until` makes the engine answer at once with what it has, instead of streaming.
  const until = (Date.now() / 1000).toFixed(3);
  const response = await fetch(`http://docker/events?since=${since}&until=${until}&filters=${filters}`, { unix: "/var/run/docker.sock" } as RequestInit);
  return (await response.text())
    .split("\n")
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line) as EngineEvent);
}

/** Once the container is gone: its events, which must show one container and no exec at all. */
async function oneShotEvents(mark: string, since: number): Promise<EngineEvent[]> {
  expect(await containersLeft("e2e", mark)).toEqual([]);
  const events = await eventsFor(mark, since);
  expect(new Set(events.map((e) => e.Actor.ID)).size).toBe(1);
  expect(events.filter((e) => e.Action.startsWith("exec_"))).toEqual([]);
  return events;
}

const nowSeconds = () => Math.floor(Date.now() / 1000) - 1;

/** Spawns the binary with raw bytes on stdin and collects raw stdout/stderr bytes. */
async function runBytes(args: string[], stdin: Uint8Array<ArrayBuffer>) {
  const child = Bun.spawn([BINARY, ...args], { env: cli.env(), stdin: new Blob([stdin]), stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).bytes(), new Response(child.stderr).text(), child.exited]);
  return { stdout, stderr, code };
}

describe("docker one-shot run: the command is the container's process", () => {
  test("exit code, stdout and stderr kept apart; the engine saw create, attach, start, die and no exec", async () => {
    const mark = label("oneshot");
    const since = nowSeconds();
    const result = await cli.run(["run", "-p", "docker", "--image", BUSYBOX, "-l", `e2e=${mark}`, "-e", "WHO=world", "echo out $WHO; echo err >&2; exit 3"]);
    expect(result.stdout).toBe("out world\n");
    expect(result.stderr).toBe("err\n");
    expect(result.code).toBe(3);
    const events = await oneShotEvents(mark, since);
    const actions = events.map((e) => e.Action);
    expect(actions.slice(0, 3)).toEqual(["create", "attach", "start"]);
    expect(events.find((e) => e.Action === "die")?.Actor.Attributes.exitCode).toBe("3");
  }, TIMEOUT);

  test("a command killed by a signal exits 128+N; arguments after -- reach it quoted", async () => {
    const mark = label("oneshot-signal");
    const since = nowSeconds();
    const killed = await cli.run(["run", "-p", "docker", "--image", BUSYBOX, "-l", `e2e=${mark}`, "kill -KILL $$"]);
    expect(killed.code).toBe(137);
    const args = await cli.run(["run", "-p", "docker", "--image", BUSYBOX, "-l", `e2e=${mark}`, 'printf "[%s]"', "--", "a b", "c'd"]);
    // The extra arguments are appended to the command line, quoted.
    expect(args.stdout).toBe("[a b][c'd]");
    expect(args.code).toBe(0);
    expect(await containersLeft("e2e", mark)).toEqual([]);
    expect((await eventsFor(mark, since)).filter((e) => e.Action.startsWith("exec_"))).toEqual([]);
  }, TIMEOUT);

  test("stdin and stdout are byte-exact (4 MiB of random bytes through cat)", async () => {
    const mark = label("oneshot-stdin");
    const since = nowSeconds();
    const input = new Uint8Array(randomBytes(4 * 1024 * 1024));
    const result = await runBytes(["run", "-p", "docker", "--image", BUSYBOX, "-l", `e2e=${mark}`, "cat"], input);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe("");
    expect(result.stdout.length).toBe(input.length);
    expect(Buffer.compare(Buffer.from(result.stdout), Buffer.from(input))).toBe(0);
    await oneShotEvents(mark, since);
  }, TIMEOUT);

  test("an endless stdin pipe does not outlive the command", async () => {
    const mark = label("oneshot-endless");
    const chunk = new TextEncoder().encode("y\n".repeat(4096));
    const endless = new ReadableStream<Uint8Array>({ pull: (controller) => controller.enqueue(chunk) });
    const child = Bun.spawn([BINARY, "run", "-p", "docker", "--image", BUSYBOX, "-l", `e2e=${mark}`, "head -c 6"], { env: cli.env(), stdin: endless, stdout: "pipe", stderr: "pipe" });
    const [stdout, code] = await Promise.all([new Response(child.stdout).text(), child.exited]);
    expect(stdout).toBe("y\ny\ny\n");
    expect(code).toBe(0);
    expect(await containersLeft("e2e", mark)).toEqual([]);
  }, TIMEOUT);

  test("--timeout kills the whole container: 124, output so far kept, nothing left", async () => {
    const mark = label("oneshot-timeout");
    const since = nowSeconds();
    const result = await cli.run(["run", "-p", "docker", "--image", BUSYBOX, "-l", `e2e=${mark}`, "--timeout", "1", "echo begun; sleep 30 & sleep 30; echo never"]);
    expect(result.stdout).toBe("begun\n");
    expect(result.code).toBe(124);
    expect(result.stderr).toContain("timed out after 1s");
    const events = await oneShotEvents(mark, since);
    expect(events.map((e) => e.Action)).toContain("kill");
  }, TIMEOUT);

  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    test(`${signal} mid-run exits ${code}; the container is gone`, async () => {
      const mark = label(`oneshot-${signal.toLowerCase()}`);
      const since = nowSeconds();
      const child = cli.spawn(["run", "-p", "docker", "--image", BUSYBOX, "-l", `e2e=${mark}`, "echo started; sleep 60; echo finished"]);
      const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
      let seen = "";
      while (!seen.includes("started\n")) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += new TextDecoder().decode(value);
      }
      expect(seen).toBe("started\n");
      child.kill(signal);
      expect(await child.exited).toBe(code);
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += new TextDecoder().decode(value);
      }
      expect(seen).toBe("started\n");
      await oneShotEvents(mark, since);
    }, TIMEOUT);
  }
});

test("an image without sh: docker-init's one clear line, exit 127, nothing left", async () => {
  // An image of one text file, imported offline through the engine.
  const dir = join(cli.home, "nosh");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "hello.txt"), "hi\n");
  const tar = Bun.spawnSync(["tar", "-c", "-C", dir, "."]).stdout;
  const image = `sandboxes-test/dockerfast-nosh:${uniqueLabel("e2e")}`;
  const [repo, tag] = image.split(":");
  const imported = await fetch(`http://docker/images/create?fromSrc=-&repo=${repo}&tag=${tag}`, { method: "POST", unix: "/var/run/docker.sock", headers: { "content-type": "application/x-tar" }, body: tar } as RequestInit);
  expect(imported.status).toBe(200);
  await imported.text();
  try {
    const mark = label("oneshot-nosh");
    const result = await cli.run(["run", "-p", "docker", "--image", image, "-l", `e2e=${mark}`, "true"]);
    expect(result.code).toBe(127);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain("exec sh failed: No such file or directory");
    expect(await containersLeft("e2e", mark)).toEqual([]);
  } finally {
    await engine("DELETE", `/images/${image}?force=true`);
  }
}, TIMEOUT);

describe("docker runs that keep the keepalive and exec path", () => {
  test("--ttl, --workdir and --keep take the exec path (the engine saw an exec)", async () => {
    for (const flags of [["--ttl", "60"], ["--workdir", "/tmp"], ["--keep"]]) {
      const mark = label("execpath");
      const since = nowSeconds();
      const result = await cli.run(["run", "-p", "docker", "--image", BUSYBOX, "-l", `e2e=${mark}`, ...flags, "pwd"]);
      expect(result.code).toBe(0);
      expect(result.stdout).toBe(flags[0] === "--workdir" ? "/tmp\n" : "/\n");
      if (flags[0] === "--keep") {
        const id = /kept sandbox ([0-9a-f]{64})/.exec(result.stderr)?.[1];
        expect((await cli.run(["destroy", id!])).code).toBe(0);
      }
      expect(await containersLeft("e2e", mark)).toEqual([]);
      const execs = (await eventsFor(mark, since)).filter((e) => e.Action.startsWith("exec_create"));
      expect(execs.length).toBeGreaterThan(0);
    }
  }, TIMEOUT);

  test("a --workdir that does not exist is created by the image's user, as on every provider (core/workdir.ts)", async () => {
    const mark = label("workdir");
    const result = await cli.run(["run", "-p", "docker", "--image", USER_IMAGE, "-l", `e2e=${mark}`, "--workdir", "/tmp/no/such/dir", "pwd; stat -c %U ."]);
    expect(result.stderr).toBe("");
    expect(result.stdout).toBe("/tmp/no/such/dir\nsandbox\n");
    expect(result.code).toBe(0);
    expect(await containersLeft("e2e", mark)).toEqual([]);
  }, TIMEOUT);
});

/** A bounded 256 MiB allocation (the same as test/e2e/local-limits.test.ts): a command substitution sh keeps in memory. */
const ALLOCATE_256M = 'x=$(head -c 268435456 /dev/zero | tr "\\0" a); echo "${#x} bytes"';

describe("docker --memory: a program the kernel kills for exceeding it exits 137 and sandboxes says so in one line, as on local", () => {
  test("a one-shot run", async () => {
    const mark = label("oom");
    const killed = await cli.run(["run", "-p", "docker", "--image", BUSYBOX, "--network", "none", "--memory", "64m", "-l", `e2e=${mark}`, ALLOCATE_256M]);
    expect(killed.stdout).toBe("");
    const lines = killed.stderr.split("\n").filter((line) => line.includes("memory limit"));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toEndWith("the program was killed: it exceeded the memory limit (--memory 64m)");
    expect(killed.code).toBe(137);
    // A program that is SIGKILLed otherwise gets no such line.
    const other = await cli.run(["run", "-p", "docker", "--image", BUSYBOX, "--network", "none", "--memory", "64m", "-l", `e2e=${mark}`, "kill -9 $$"]);
    expect(other.code).toBe(137);
    expect(other.stderr).not.toContain("memory limit");
    expect(await containersLeft("e2e", mark)).toEqual([]);
  }, TIMEOUT);

  test("an exec in a kept container, with limit_hit in --json", async () => {
    const mark = label("oom-kept");
    const kept = await cli.run(["run", "--keep", "-p", "docker", "--image", BUSYBOX, "--network", "none", "--memory", "64m", "-l", `e2e=${mark}`, "true"]);
    expect(kept.code).toBe(0);
    const id = /kept sandbox (\S+)/.exec(kept.stderr)![1]!;
    const killed = await cli.run(["exec", "--json", id, ALLOCATE_256M]);
    expect(JSON.parse(killed.stdout)).toMatchObject({ exit_code: 137, limit_hit: "memory" });
    expect(killed.code).toBe(137);
    const fine = await cli.run(["exec", id, ALLOCATE_256M.replace("268435456", "16777216")]);
    expect(fine).toEqual({ code: 0, stdout: "16777216 bytes\n", stderr: "" });
    expect((await cli.run(["destroy", id])).code).toBe(0);
  }, TIMEOUT);
});
