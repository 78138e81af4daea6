/**
 * The one conformance suite: the same behaviours through the public Provider interface, for
 * every provider. Each of the eleven capabilities of src/providers/types.ts gates its cases with
 * a visible `test.skipIf` (a missing capability shows as a skip, never as an empty pass), so the
 * suite is told the capabilities up front: the descriptor's static copy, which the first case
 * holds the loaded provider to.
 *
 *   testProvider("local", localDescriptor.capabilities, () => localDescriptor.load(ctx));
 */
import { archiveOf, readTerminal } from "../helpers";
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Capabilities, CreateSpec, ExecSpec, Provider, PtySession, SandboxRecord } from "../../src/providers/types";

/**
 * Facts about a sandbox asked of its backend (the fake's own state, the Docker Engine), never of
 * the code under test: what the suite cannot see through the interface.
 */
export interface Backend {
  /** The CPUs and memory (MiB) the backend gave the sandbox, as it recorded them. */
  resources(id: string): Promise<{ cpus: number; memoryMb: number }>;
}

export interface ConformanceOptions {
  /** Image/template for create(), when the provider needs one. */
  image?: string;
  /** Image for the resources case, when the provider takes --cpus/--memory only with one (Daytona). */
  resourcesImage?: string;
  /** Extra time per test for slow providers (ms). */
  timeout?: number;
  /** Required when capabilities.resources: where the suite reads what the backend received. */
  backend?: Backend;
  /**
   * Why get() cannot be asked about an id on its own (the CLI has no look-up by id that does not
   * also act on the sandbox): skips "get() of an unknown id is null" with this reason.
   */
  noLookupById?: string;
}

/** The shortest lifetime the ttl case asks for, in seconds. */
const TTL_SECONDS = 2;

async function run(provider: Provider, id: string, script: string, extra: Partial<ExecSpec> = {}) {
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  const { onStdout, onStderr, ...rest } = extra;
  const outcome = await provider.exec(id, {
    argv: ["sh", "-c", script],
    env: {},
    ...rest,
    onStdout: (c) => (out.push(c), onStdout?.(c)),
    onStderr: (c) => (err.push(c), onStderr?.(c)),
  });
  return { ...outcome, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") };
}

/** Polls `check` until it returns a value other than undefined; fails naming `what` after `ms`. */
export async function until<T>(what: string, check: () => T | undefined | Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await Bun.sleep(25);
  }
}

/** A PTY session with its output gathered as text. */
const collect = (session: PtySession) => readTerminal(session.output);

/** Counts the processes whose command line starts with `sleep N` (the pattern never matches itself). */
const countSleeps = (n: number) => {
  const digits = String(n);
  return `for p in /proc/[0-9]*; do tr '\\0' ' ' < "$p/cmdline" 2>/dev/null; echo; done | grep -c "^sleep ${digits.slice(0, -1)}[${digits.slice(-1)}]"`;
};

export function testProvider(name: string, caps: Capabilities, factory: () => Promise<Provider>, options: ConformanceOptions = {}) {
  const timeout = options.timeout ?? 30_000;
  describe(`provider conformance: ${name}`, () => {
    let provider: Provider;
    let sandbox: SandboxRecord;
    const created: string[] = [];
    const label = `conf-${Date.now().toString(36)}`;

    const ensure = async () => {
      provider ??= await factory();
      if (!sandbox) {
        sandbox = await provider.create({ image: options.image, labels: { suite: label }, env: { CREATED_WITH: "yes" } });
        created.push(sandbox.id);
      }
      return { provider, sandbox };
    };
    /** Another sandbox of the suite's, for a case that changes how it is created. */
    const createExtra = async (spec: Partial<CreateSpec>) => {
      const extra = await provider.create({ image: options.image, labels: { suite: label }, env: {}, ...spec });
      created.push(extra.id);
      return extra;
    };

    afterAll(async () => {
      for (const id of created) await provider?.destroy(id).catch(() => {});
      await provider?.close?.();
    }, timeout);

    test("create returns a running sandbox that get() finds; the provider declares the capabilities the suite was told", async () => {
      const { provider, sandbox } = await ensure();
      expect(provider.capabilities).toEqual(caps);
      expect(sandbox.id).toBeTruthy();
      expect(sandbox.provider).toBe(provider.name);
      expect(sandbox.state).toBe("running");
      const again = await provider.get(sandbox.id);
      expect(again?.id).toBe(sandbox.id);
    }, timeout);

    test.skipIf(options.noLookupById !== undefined)("get() of an unknown id is null", async () => {
      const { provider } = await ensure();
      expect(await provider.get("does-not-exist-0000")).toBeNull();
    }, timeout);

    test("exec keeps stdout and stderr apart and returns the exit code", async () => {
      const { provider, sandbox } = await ensure();
      const result = await run(provider, sandbox.id, "echo out; echo err >&2; exit 7");
      expect(result.stdout).toBe("out\n");
      expect(result.stderr).toBe("err\n");
      expect(result.exitCode).toBe(7);
      expect(result.timedOut).toBe(false);
    }, timeout);

    test("exec passes env (sandbox env and per-command env) and cwd", async () => {
      const { provider, sandbox } = await ensure();
      const result = await run(provider, sandbox.id, 'echo "$CREATED_WITH $GREETING"; pwd', { env: { GREETING: "hi there" }, cwd: "/tmp" });
      expect(result.stdout).toBe("yes hi there\n/tmp\n");
    }, timeout);

    test("a command killed by a signal reports 128+N", async () => {
      const { provider, sandbox } = await ensure();
      const result = await run(provider, sandbox.id, "kill -9 $$");
      expect(result.exitCode).toBe(137);
    }, timeout);

    test("timeout kills the command, reports timedOut and 124, and leaves no process behind", async () => {
      const { provider, sandbox } = await ensure();
      const result = await run(provider, sandbox.id, "sleep 3011", { timeoutMs: 1000 });
      expect(result.timedOut).toBe(true);
      expect(result.exitCode).toBe(124);
      const left = await until("the timed-out sleep to be gone", async () => {
        const count = (await run(provider, sandbox.id, countSleeps(3011))).stdout.trim();
        return count === "0" ? count : undefined;
      });
      expect(left).toBe("0");
    }, timeout);

    test.skipIf(!caps.labels)("labels: list() finds the sandbox by its labels and not by others", async () => {
      const { provider, sandbox } = await ensure();
      const mine = await provider.list({ labels: { suite: label } });
      expect(mine.map((s) => s.id)).toContain(sandbox.id);
      expect(mine.find((s) => s.id === sandbox.id)?.labels.suite).toBe(label);
      const none = await provider.list({ labels: { suite: `${label}-other` } });
      expect(none.map((s) => s.id)).not.toContain(sandbox.id);
    }, timeout);

    test.skipIf(!caps.files)("files: a binary file round-trips byte for byte; directories keep modes", async () => {
      const { provider, sandbox } = await ensure();
      const bytes = new Uint8Array(70_000).map((_, i) => (i * 7919) % 256);
      const tar = await new Bun.Archive({ "blob.bin": bytes, "dir/nested/x.txt": "nested\n" }).blob();
      await provider.putArchive!(sandbox.id, "/tmp/conf-files", tar);
      const listing = await run(provider, sandbox.id, "cat /tmp/conf-files/dir/nested/x.txt; wc -c < /tmp/conf-files/blob.bin");
      expect(listing.stdout.replace(/ /g, "")).toBe("nested\n70000\n");
      const back = await archiveOf(provider, sandbox.id, "/tmp/conf-files/blob.bin");
      const files = await new Bun.Archive(back).files();
      const file = files.get("blob.bin");
      expect(file).toBeDefined();
      expect(new Uint8Array(await file!.arrayBuffer())).toEqual(bytes);
    }, timeout);

    test.skipIf(!caps.stdin)("stdin is forwarded to the command", async () => {
      const { provider, sandbox } = await ensure();
      const result = await run(provider, sandbox.id, "tr a-z A-Z", { stdin: new TextEncoder().encode("piped input\n") });
      expect(result.stdout).toBe("PIPED INPUT\n");
    }, timeout);

    test.skipIf(!caps.streaming)("streaming: the first line arrives before the command ends", async () => {
      const { provider, sandbox } = await ensure();
      // The command waits (10 s at most) for a file that is made only once its first line has
      // arrived here: "second" proves the line came while the command was still running.
      const flag = `/tmp/conf-stream-${Date.now().toString(36)}`;
      let released: Promise<unknown> | undefined;
      const result = await run(
        provider,
        sandbox.id,
        `echo first; i=0; while [ ! -e ${flag} ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; [ -e ${flag} ] && echo second || echo gave-up`,
        { onStdout: () => void (released ??= run(provider, sandbox.id, `touch ${flag}`)) },
      );
      await released;
      expect(result.stdout).toBe("first\nsecond\n");
      expect(result.exitCode).toBe(0);
    }, timeout);

    test.skipIf(!caps.pty)("pty: runs a command in a terminal of the requested size", async () => {
      const { provider, sandbox } = await ensure();
      const session = await provider.openPty!(sandbox.id, { argv: ["sh", "-c", "stty size; exit 5"], env: {}, cols: 91, rows: 27 });
      const output = collect(session);
      expect(await session.exited).toBe(5);
      // Output may trail the exit a little: wait for it rather than for a fixed time.
      await until("stty's answer", () => (output.text().includes("27 91") ? true : undefined), 5000);
      expect(output.text()).toContain("27 91");
    }, timeout);

    test.skipIf(!caps.resize)("resize: the terminal takes the new size", async () => {
      const { provider, sandbox } = await ensure();
      const session = await provider.openPty!(sandbox.id, { argv: ["sh"], env: {}, cols: 80, rows: 24 });
      const output = collect(session);
      session.write("echo READY$((1+1))\n");
      await until("the shell to answer", () => (output.text().includes("READY2") ? true : undefined));
      session.resize(120, 40);
      // The new size reaches the remote terminal asynchronously: ask until it shows.
      let asked = 0;
      await until("stty size to show 40 120", () => {
        if (output.text().includes("40 120")) return true;
        if (asked++ % 20 === 0) session.write("stty size\n");
        return undefined;
      });
      session.write("exit\n");
      await session.exited;
      await output.done;
      expect(output.text()).toContain("40 120");
    }, timeout);

    test.skipIf(!caps.networkIsolation)("networkIsolation: with network none the sandbox has no interface but loopback", async () => {
      await ensure();
      const isolated = await createExtra({ network: { mode: "none", allow: [] } });
      const result = await run(provider, isolated.id, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '");
      expect(result.stdout).toBe("lo\n");
      await provider.destroy(isolated.id);
    }, timeout);

    test.skipIf(!caps.resources)("resources: the backend gives the sandbox the CPUs and memory asked for", async () => {
      await ensure();
      if (!options.backend) throw new Error("a provider with resources needs options.backend to show what its backend received");
      const sized = await createExtra({ image: options.resourcesImage ?? options.image, cpus: 1, memoryMb: 2048 });
      expect(await options.backend.resources(sized.id)).toEqual({ cpus: 1, memoryMb: 2048 });
      await provider.destroy(sized.id);
    }, timeout);

    test.skipIf(!caps.ttl)(`ttl: the provider stops a sandbox by itself after its ${TTL_SECONDS} s`, async () => {
      await ensure();
      const brief = await createExtra({ ttlSeconds: TTL_SECONDS });
      const after = await until("the sandbox to stop by itself", async () => {
        const record = await provider.get(brief.id);
        return record === null || record.state !== "running" ? (record?.state ?? "gone") : undefined;
      });
      expect(["gone", "stopped"]).toContain(after);
    }, timeout);

    test.skipIf(!caps.mounts)("mounts: a host directory is visible inside, read-only when asked", async () => {
      await ensure();
      const host = mkdtempSync(join(tmpdir(), "sandboxes-conf-mount-"));
      try {
        chmodSync(host, 0o755);
        writeFileSync(join(host, "from-host.txt"), "hello from the host\n");
        const mounted = await createExtra({ mounts: [{ hostPath: host, sandboxPath: "/mnt/conf", readonly: true }] });
        const result = await run(provider, mounted.id, "cat /mnt/conf/from-host.txt; touch /mnt/conf/new 2>/dev/null && echo writable || echo read-only");
        expect(result.stdout).toBe("hello from the host\nread-only\n");
        await provider.destroy(mounted.id);
      } finally {
        rmSync(host, { recursive: true, force: true });
      }
    }, timeout);

    test.skipIf(!caps.oneShot)("oneShot: runOnce runs one command in a sandbox of its own that does not outlive it", async () => {
      await ensure();
      const oneShotLabel = `${label}-once`;
      const out: Uint8Array[] = [];
      const outcome = await provider.runOnce!(
        { image: options.image, labels: { suite: oneShotLabel }, env: { FROM_CREATE: "c" } },
        { argv: ["sh", "-c", 'echo "$FROM_CREATE$FROM_EXEC"; exit 4'], env: { FROM_EXEC: "e" }, onStdout: (c) => out.push(c), onStderr: () => {} },
      );
      expect(outcome).toMatchObject({ exitCode: 4, timedOut: false });
      expect(Buffer.concat(out).toString()).toBe("ce\n");
      expect(outcome.id).not.toBe(sandbox.id);
      // Its removal may finish after runOnce resolves.
      await until("the one-shot sandbox to go", async () => ((await provider.get(outcome.id)) === null ? true : undefined));
      expect(await provider.get(outcome.id)).toBeNull();
    }, timeout);

    test.skipIf(!caps.oneShotFiles)("oneShotFiles: a one-shot sandbox starts with the files it was given in /tmp, readable by its program", async () => {
      await ensure();
      const out: Uint8Array[] = [];
      const content = new TextEncoder().encode("line one\nsecond line, with 'quotes'\n");
      const outcome = await provider.runOnce!(
        { image: options.image, labels: { suite: `${label}-files` }, env: {}, files: [{ path: "/tmp/sandboxes-run-c0ffee01/main.txt", content }] },
        { argv: ["sh", "-c", 'cat /tmp/sandboxes-run-c0ffee01/main.txt && test -r /tmp/sandboxes-run-c0ffee01/main.txt && echo readable'], env: {}, onStdout: (c) => out.push(c), onStderr: () => {} },
      );
      expect(outcome).toMatchObject({ exitCode: 0, timedOut: false });
      expect(Buffer.concat(out).toString()).toBe("line one\nsecond line, with 'quotes'\nreadable\n");
    }, timeout);

    test("destroy removes the sandbox and is idempotent", async () => {
      await ensure();
      const extra = await createExtra({});
      await provider.destroy(extra.id);
      expect(await provider.get(extra.id)).toBeNull();
      await provider.destroy(extra.id);
    }, timeout);
  });
}
