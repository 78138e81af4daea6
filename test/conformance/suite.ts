/**
 * The one conformance suite: the same behaviours through the public Provider interface, for
 * every provider. Capability-gated cases are skipped by capability (declared data), never forked.
 *
 *   testProvider("local", async () => (await localDescriptor.load(ctx)));
 */
import { afterAll, describe, expect, test } from "bun:test";
import type { Provider, SandboxRecord } from "../../src/providers/types";

export interface ConformanceOptions {
  /** Image/template for create(), when the provider needs one. */
  image?: string;
  /** Extra time per test for slow providers (ms). */
  timeout?: number;
}

async function run(provider: Provider, id: string, script: string, extra: Partial<Parameters<Provider["exec"]>[1]> = {}) {
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  const outcome = await provider.exec(id, {
    argv: ["sh", "-c", script],
    env: {},
    onStdout: (c) => out.push(c),
    onStderr: (c) => err.push(c),
    ...extra,
  });
  return { ...outcome, stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") };
}

export function testProvider(name: string, factory: () => Promise<Provider>, options: ConformanceOptions = {}) {
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

    afterAll(async () => {
      for (const id of created) await provider?.destroy(id).catch(() => {});
      await provider?.close?.();
    });

    test("create returns a running sandbox that get() finds", async () => {
      const { provider, sandbox } = await ensure();
      expect(sandbox.id).toBeTruthy();
      expect(sandbox.provider).toBe(provider.name);
      const again = await provider.get(sandbox.id);
      expect(again?.id).toBe(sandbox.id);
    }, timeout);

    test("get() of an unknown id is null", async () => {
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

    test("timeout kills the command and reports timedOut", async () => {
      const { provider, sandbox } = await ensure();
      const started = Date.now();
      const result = await run(provider, sandbox.id, "sleep 30", { timeoutMs: 1000 });
      expect(result.timedOut).toBe(true);
      expect(result.exitCode).toBe(124);
      expect(Date.now() - started).toBeLessThan(20_000);
    }, timeout);

    test("list() finds the sandbox by its labels and not by others", async () => {
      const { provider, sandbox } = await ensure();
      if (!provider.capabilities.labels) return;
      const mine = await provider.list({ labels: { suite: label } });
      expect(mine.map((s) => s.id)).toContain(sandbox.id);
      expect(mine.find((s) => s.id === sandbox.id)?.labels.suite).toBe(label);
      const none = await provider.list({ labels: { suite: `${label}-other` } });
      expect(none.map((s) => s.id)).not.toContain(sandbox.id);
    }, timeout);

    test("files: a binary file round-trips byte for byte; directories keep modes", async () => {
      const { provider, sandbox } = await ensure();
      if (!provider.capabilities.files) return;
      const bytes = new Uint8Array(70_000).map((_, i) => (i * 7919) % 256);
      const tar = await new Bun.Archive({ "blob.bin": bytes, "dir/nested/x.txt": "nested\n" }).bytes();
      await provider.putArchive!(sandbox.id, "/tmp/conf-files", tar);
      const listing = await run(provider, sandbox.id, "cat /tmp/conf-files/dir/nested/x.txt; wc -c < /tmp/conf-files/blob.bin");
      expect(listing.stdout.replace(/ /g, "")).toBe("nested\n70000\n");
      const back = await provider.getArchive!(sandbox.id, "/tmp/conf-files/blob.bin");
      const files = await new Bun.Archive(back).files();
      const file = files.get("blob.bin");
      expect(file).toBeDefined();
      expect(new Uint8Array(await file!.arrayBuffer())).toEqual(bytes);
    }, timeout);

    test("stdin is forwarded to the command", async () => {
      const { provider, sandbox } = await ensure();
      if (!provider.capabilities.stdin) return;
      const result = await run(provider, sandbox.id, "tr a-z A-Z", { stdin: new TextEncoder().encode("piped input\n") });
      expect(result.stdout).toBe("PIPED INPUT\n");
    }, timeout);

    test("streaming: the first line arrives before the command ends", async () => {
      const { provider, sandbox } = await ensure();
      if (!provider.capabilities.streaming) return;
      let firstAt = 0;
      const started = Date.now();
      await provider.exec(sandbox.id, {
        argv: ["sh", "-c", "echo first; sleep 2; echo second"],
        env: {},
        onStdout: () => (firstAt ||= Date.now() - started),
        onStderr: () => {},
      });
      const total = Date.now() - started;
      expect(firstAt).toBeGreaterThan(0);
      expect(total - firstAt).toBeGreaterThan(1000);
    }, timeout);

    test("pty: runs a command in a terminal of the requested size", async () => {
      const { provider, sandbox } = await ensure();
      if (!provider.capabilities.pty) return;
      const session = await provider.openPty!(sandbox.id, { argv: ["sh", "-c", "stty size; exit 5"], env: {}, cols: 91, rows: 27 });
      let output = "";
      session.onData((c) => (output += new TextDecoder().decode(c)));
      expect(await session.exited).toBe(5);
      await Bun.sleep(50);
      expect(output).toContain("27 91");
    }, timeout);

    test("destroy removes the sandbox and is idempotent", async () => {
      const { provider } = await ensure();
      const extra = await provider.create({ image: options.image, labels: { suite: label }, env: {} });
      created.push(extra.id);
      await provider.destroy(extra.id);
      expect(await provider.get(extra.id)).toBeNull();
      await provider.destroy(extra.id);
    }, timeout);
  });
}
