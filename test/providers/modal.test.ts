/**
 * Modal-specific behaviour beyond the conformance suite, in-process through the real SDK against
 * the fake: credentials resolution, paging, channel release, PTY kill, Ctrl-C, faults.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readTerminal } from "../helpers";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { modalDescriptor } from "../../src/providers/modal";
import { findModalCredentials } from "../../src/providers/modal/credentials";
import type { Provider } from "../../src/providers/types";
import { type FakeModal, startFakeModal, Status } from "../fakes/modal/server";

const stateDir = mkdtempSync(join(tmpdir(), "sandboxes-modal-unit-"));
let fake: FakeModal;

async function provider(config: Record<string, unknown> = {}): Promise<Provider> {
  return modalDescriptor.load({ env: { ...process.env, MODAL_TOKEN_ID: "ak-unit", MODAL_TOKEN_SECRET: "as-unit", HOME: stateDir }, config, stateDir });
}

async function run(p: Provider, id: string, script: string) {
  const out: Uint8Array[] = [];
  const outcome = await p.exec(id, { argv: ["sh", "-c", script], env: {}, onStdout: (c) => out.push(c), onStderr: () => {} });
  return { ...outcome, stdout: Buffer.concat(out).toString() };
}

beforeAll(async () => {
  fake = await startFakeModal({ tokenId: "ak-unit", tokenSecret: "as-unit" });
  process.env.MODAL_SERVER_URL = fake.url;
  process.env.MODAL_CONFIG_PATH = join(stateDir, "absent.toml");
});

afterAll(async () => {
  await fake.stop();
});

describe("modal credentials (no network, no SDK)", () => {
  const home = mkdtempSync(join(tmpdir(), "sandboxes-modal-home-"));
  writeFileSync(join(home, ".modal.toml"), '[old]\ntoken_id = "ak-old"\ntoken_secret = "as-old"\n\n[work]\ntoken_id = "ak-work"\ntoken_secret = "as-work"\nactive = true\n');

  test("environment beats config.toml beats ~/.modal.toml", async () => {
    const config = { token_id: "ak-conf", token_secret: "as-conf" };
    expect((await findModalCredentials({ HOME: home, MODAL_TOKEN_ID: "ak-env", MODAL_TOKEN_SECRET: "as-env" }, config))?.tokenId).toBe("ak-env");
    expect((await findModalCredentials({ HOME: home }, config))?.source).toBe("config.toml [providers.modal]");
    expect(await findModalCredentials({ HOME: home }, {})).toMatchObject({ tokenId: "ak-work", tokenSecret: "as-work", source: join(home, ".modal.toml") });
  });

  test("MODAL_PROFILE picks a profile; half a pair is no credential", async () => {
    expect((await findModalCredentials({ HOME: home, MODAL_PROFILE: "old" }, {}))?.tokenId).toBe("ak-old");
    expect(await findModalCredentials({ HOME: "/nonexistent", MODAL_TOKEN_ID: "ak-only" }, { token_secret: "x" })).toBeUndefined();
  });

  test("the descriptor, detect() and load() import no SDK (a fresh process shows what got loaded)", async () => {
    const descriptor = join(import.meta.dir, "..", "..", "src", "providers", "modal", "index.ts");
    const script = [
      `const { modalDescriptor } = await import(${JSON.stringify(descriptor)});`,
      `const ctx = { env: { MODAL_TOKEN_ID: "a", MODAL_TOKEN_SECRET: "b" }, config: {}, stateDir: "/tmp" };`,
      `if (!(await modalDescriptor.detect(ctx)).configured) throw new Error("not configured");`,
      `await modalDescriptor.load(ctx);`,
      `const sdk = ["node_modules/modal/", "node_modules/nice-grpc/", "node_modules/@grpc/"];`,
      `console.log(JSON.stringify(Object.keys(require.cache).filter((k) => sdk.some((part) => k.includes(part)))));`,
    ].join("\n");
    const child = Bun.spawn([process.execPath, "-e", script], { stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    expect(err).toBe("");
    expect(code).toBe(0);
    expect(JSON.parse(out)).toEqual([]);
  });

  test("detect() names both variables when nothing is set, and never throws on a bad file", async () => {
    const broken = mkdtempSync(join(tmpdir(), "sandboxes-modal-broken-"));
    writeFileSync(join(broken, ".modal.toml"), "this is [ not toml");
    const detection = await modalDescriptor.detect({ env: { HOME: broken }, config: {}, stateDir });
    expect(detection.configured).toBe(false);
    expect(detection.missing).toContain("MODAL_TOKEN_ID");
    expect(detection.missing).toContain("MODAL_TOKEN_SECRET");
  });
});

describe("modal provider against the fake", () => {
  test("list follows every page (the fake answers two sandboxes a page)", async () => {
    const p = await provider();
    const label = `page-${Date.now()}`;
    const made = [];
    for (let i = 0; i < 5; i++) made.push((await p.create({ labels: { batch: label }, env: {} })).id);
    const listed = await p.list({ labels: { batch: label } });
    expect(listed.map((s) => s.id).sort()).toEqual([...made].sort());
    expect(fake.calls.filter((c) => c.method === "SandboxListV2").length).toBeGreaterThanOrEqual(3);
    for (const id of made) await p.destroy(id);
    expect(await p.list({ labels: { batch: label } })).toEqual([]);
    await p.close!();
  });

  test("list still knows labels when the server leaves tags out of its list replies", async () => {
    const p = await provider();
    const made = await p.create({ name: "tagless", labels: { kind: "tagless" }, env: {} });
    fake.listOmitsTags = true;
    try {
      const listed = await p.list({ labels: { kind: "tagless" } });
      expect(listed).toMatchObject([{ id: made.id, name: "tagless", labels: { kind: "tagless" } }]);
      expect(fake.calls.filter((c) => c.method === "SandboxTagsGetV2").length).toBeGreaterThan(0);
    } finally {
      fake.listOmitsTags = false;
    }
    await p.destroy(made.id);
    await p.close!();
  });

  test("list on an account without our app makes no app and finds nothing", async () => {
    const p = await provider({ app: `fresh-${Date.now()}` });
    expect(await p.list({})).toEqual([]);
    const lookup = fake.calls.filter((c) => c.method === "AppGetOrCreate").at(-1)!.request as { objectCreationType: number };
    expect(lookup.objectCreationType).toBe(0);
    expect(fake.calls.filter((c) => c.method === "SandboxListV2" && (c.request as { appId: string }).appId === "").length).toBe(0);
    await p.close!();
  });

  test("arguments Modal rejects are user errors, not provider failures", async () => {
    const p = await provider();
    const made = await p.create({ labels: {}, env: {} });
    const error = (await p.exec(made.id, { argv: ["pwd"], env: {}, cwd: "relative/dir", onStdout() {}, onStderr() {} }).catch((e: Error) => e)) as Error & { kind?: string };
    expect(error.message).toContain("workdir must be an absolute path");
    expect(error.kind).toBe("user");
    await p.destroy(made.id);
    await p.close!();
  });

  test("name, image and ttl travel with the sandbox; our own tags stay out of labels", async () => {
    const p = await provider({ image: "alpine:3.20" });
    const made = await p.create({ name: "box-one", labels: { team: "x" }, env: {}, ttlSeconds: 90, cpus: 2, memoryMb: 1024, network: { mode: "none", allow: [] } });
    const request = fake.calls.filter((c) => c.method === "SandboxCreateV2").at(-1)!.request as {
      definition: { timeoutSecs: number; resources: { milliCpu: number; memoryMb: number }; networkAccess: { networkAccessType: number } };
    };
    expect(request.definition.timeoutSecs).toBe(90);
    expect(request.definition.resources).toMatchObject({ milliCpu: 2000, memoryMb: 1024 });
    expect(request.definition.networkAccess.networkAccessType).toBe(2);
    const again = await p.get(made.id);
    expect(again).toMatchObject({ id: made.id, name: "box-one", image: "alpine:3.20", labels: { team: "x" }, state: "running" });
    await p.destroy(made.id);
    expect(await p.get(made.id)).toBeNull();
    await p.close!();
  });

  test("exec on a destroyed sandbox is a clear user error", async () => {
    const p = await provider();
    const made = await p.create({ labels: {}, env: {} });
    await p.destroy(made.id);
    const other = await provider();
    // (bun's expect().rejects stalls gRPC I/O, so the error is caught by hand.)
    const error = (await run(other, made.id, "true").catch((e: Error) => e)) as Error;
    expect(error).toBeInstanceOf(Error);
    expect(error.message).toBe(`no running modal sandbox ${made.id}`);
    await p.close!();
    await other.close!();
  });

  test("close() releases every connection to Modal", async () => {
    const p = await provider();
    const made = await p.create({ labels: {}, env: {} });
    expect((await run(p, made.id, "echo hi")).stdout).toBe("hi\n");
    expect(fake.openConnections()).toBeGreaterThan(0);
    await p.destroy(made.id);
    await p.close!();
    for (let i = 0; i < 50 && fake.openConnections() > 0; i++) await Bun.sleep(20);
    expect(fake.openConnections()).toBe(0);
  });

  test("a PTY session can be killed, and sees the terminal size it asked for", async () => {
    const p = await provider();
    const made = await p.create({ labels: {}, env: {} });
    const session = await p.openPty!(made.id, { argv: ["sh", "-c", "stty size; echo ready; exec sleep 60"], env: {}, cols: 100, rows: 30 });
    const terminal = readTerminal(session.output);
    for (let i = 0; i < 100 && !terminal.text().includes("ready"); i++) await Bun.sleep(20);
    expect(terminal.text()).toContain("30 100");
    await session.kill();
    expect(await session.exited).toBe(137);
    await terminal.done;
    await p.destroy(made.id);
    await p.close!();
  });

  test("PTY input reaches the program", async () => {
    const p = await provider();
    const made = await p.create({ labels: {}, env: {} });
    const session = await p.openPty!(made.id, { argv: ["sh", "-c", 'read line; echo "got:$line"'], env: {}, cols: 80, rows: 24 });
    const terminal = readTerminal(session.output);
    session.write("hello\r");
    expect(await session.exited).toBe(0);
    await terminal.done;
    expect(terminal.text()).toContain("got:hello");
    await p.destroy(made.id);
    await p.close!();
  });

  test("an aborted exec returns promptly", async () => {
    const p = await provider();
    const made = await p.create({ labels: {}, env: {} });
    const controller = new AbortController();
    setTimeout(() => controller.abort("SIGINT"), 300);
    const outcome = await p.exec(made.id, { argv: ["sleep", "30"], env: {}, signal: controller.signal, onStdout() {}, onStderr() {} });
    expect(outcome.timedOut).toBe(false);
    expect(outcome.exitCode).toBe(130);
    await p.destroy(made.id);
    await p.close!();
  });

  test("UNAVAILABLE on the router lookup before exec is retried; exec output is intact", async () => {
    const p = await provider();
    const made = await p.create({ labels: {}, env: {} });
    await p.close!();
    // A fresh process: the router address must be looked up, and that lookup fails first.
    const other = await provider();
    fake.faults.push({ method: "SandboxGetCommandRouterAccess", code: Status.UNAVAILABLE, times: 5 });
    expect((await run(other, made.id, "echo through")).stdout).toBe("through\n");
    expect(fake.faults.at(-1)!.times).toBe(0);
    await other.destroy(made.id);
    await other.close!();
  });

  test("a slow answer is waited for, not treated as a failure", async () => {
    const p = await provider();
    const made = await p.create({ labels: { slow: "yes" }, env: {} });
    fake.faults.push({ method: "SandboxListV2", delayMs: 1500 });
    const listed = await p.list({ labels: { slow: "yes" } });
    expect(listed.map((s) => s.id)).toEqual([made.id]);
    expect(fake.faults.at(-1)!.times).toBe(0);
    await p.destroy(made.id);
    await p.close!();
  });

  test("a non-transient error is not retried and names the status", async () => {
    const p = await provider();
    fake.faults.push({ method: "SandboxListV2", code: Status.PERMISSION_DENIED, times: 3 });
    const before = fake.calls.filter((c) => c.method === "SandboxListV2").length;
    const error = await p.list({}).catch((e: Error) => e);
    expect(String((error as Error).message)).toContain("modal: list sandboxes failed");
    expect(String((error as Error).message)).toContain("PERMISSION_DENIED");
    expect(fake.calls.filter((c) => c.method === "SandboxListV2").length).toBe(before + 1);
    fake.faults.at(-1)!.times = 0;
    await p.close!();
  });
});

describe("modal fake: one filesystem and process space per sandbox", () => {
  test("a file written in sandbox A's /tmp is not in sandbox B's, and A's processes are not in B's /proc", async () => {
    const p = await provider();
    const a = await p.create({ labels: {}, env: {} });
    const b = await p.create({ labels: {}, env: {} });
    const stop = new AbortController();
    const sleeper = p.exec(a.id, { argv: ["sleep", "31337"], env: {}, signal: stop.signal, onStdout: () => {}, onStderr: () => {} });
    try {
      expect((await run(p, a.id, "echo only-a > /tmp/mark-a")).exitCode).toBe(0);
      // The bracket keeps grep from finding its own command line.
      const look = "cat /tmp/mark-a 2>/dev/null || echo no-file; if cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -q 'sleep 3133[7]'; then echo sleeper; else echo no-sleeper; fi";
      let inA = "";
      for (let i = 0; i < 100 && !inA.includes("sleeper\n"); i++) inA = (await run(p, a.id, look)).stdout;
      expect(inA).toBe("only-a\nsleeper\n");
      expect((await run(p, b.id, look)).stdout).toBe("no-file\nno-sleeper\n");
    } finally {
      stop.abort();
      await sleeper.catch(() => {});
      await p.destroy(a.id);
      await p.destroy(b.id);
      await p.close!();
    }
  });
});
