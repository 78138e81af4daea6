/**
 * core/lifecycle.ts with fake providers: what is created, registered, kept and destroyed, and
 * when a call stops. The commands, the library and the MCP server are tested through it in
 * test/e2e, test/library and test/core/interactive.test.ts.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InterruptedError, SandboxesError } from "../../src/base/errors";
import { loadSettings } from "../../src/core/config";
import { checkSupport, createSandbox, findNamed, hold, type Lease, refuseTakenName, release, throwIfAborted } from "../../src/core/lifecycle";
import { Registry } from "../../src/core/registry";
import { PROVIDERS } from "../../src/providers/catalog";
import { LOCAL_CAPABILITIES } from "../../src/providers/local";
import type { ProviderDescriptor } from "../../src/providers/types";
import { FakeProvider } from "../fakes/pty/provider";

const roomy = new FakeProvider("fakeroomy", LOCAL_CAPABILITIES);
const bare = new FakeProvider("fakebare", { ...LOCAL_CAPABILITIES, pids: false, mounts: false, resources: false, ttl: false, networkHost: false });
const registered = PROVIDERS as ProviderDescriptor[];
registered.push(roomy.descriptor(), bare.descriptor());
const stateRoot = mkdtempSync(join(tmpdir(), "sandboxes-lifecycle-"));
const settings = await loadSettings({ HOME: stateRoot, XDG_STATE_HOME: join(stateRoot, "state"), XDG_CONFIG_HOME: join(stateRoot, "config"), PATH: process.env.PATH });
const registry = new Registry(settings.stateDir);
const registeredIds = (provider: string) => registry.entries().filter((e) => e.provider === provider).map((e) => e.id);

afterAll(() => {
  registered.splice(registered.indexOf(roomy.descriptor()), 2);
  roomy.cleanup();
  bare.cleanup();
  rmSync(stateRoot, { recursive: true, force: true });
});

const spec = (extra: Record<string, unknown> = {}) => ({ labels: { suite: "lifecycle" }, env: {}, ...extra });
const holding = (keep: boolean, notices: string[] = []) => ({ notify: (m: string) => notices.push(m), keep: () => keep });

describe("create", () => {
  test("a registered sandbox is in the registry; an unregistered one is not", async () => {
    const kept = await createSandbox(settings, { provider: "fakeroomy" }, spec({ name: "kept-one" }), { register: true });
    const plain = await createSandbox(settings, { provider: "fakeroomy" }, spec(), { register: false });
    expect(registeredIds("fakeroomy")).toEqual([kept.record.id]);
    expect(registry.lookup("kept-one", "fakeroomy")).toHaveLength(1);
    await release(settings, kept, () => {});
    await release(settings, plain, () => {});
    expect(registeredIds("fakeroomy")).toEqual([]);
    expect(roomy.alive.size).toBe(0);
  });

  test("fallback: a provider that cannot enforce the request is passed over; the request itself is never weakened", async () => {
    const lease = await createSandbox(settings, { provider: "fakebare", fallback: ["fakeroomy"] }, spec({ pids: 10 }), { register: false });
    expect(lease.provider.name).toBe("fakeroomy");
    expect(bare.alive.size).toBe(0);
    await release(settings, lease, () => {});
    const alone = await createSandbox(settings, { provider: "fakebare" }, spec({ pids: 10 }), { register: false }).catch((e) => e);
    expect((alone as SandboxesError).message).toBe("provider fakebare cannot limit the number of processes (--pids)");
  });

  test("an aborted signal creates nothing, on any provider", async () => {
    const stop = new AbortController();
    stop.abort("SIGTERM");
    const error = await createSandbox(settings, { provider: "fakeroomy", fallback: ["fakebare"] }, spec(), { register: true, signal: stop.signal }).catch((e) => e);
    expect(error).toBeInstanceOf(InterruptedError);
    expect((error as InterruptedError).signal).toBe("SIGTERM");
    expect(roomy.alive.size + bare.alive.size).toBe(0);
  });

  test("prepare runs before the create: a taken name is refused with the caller's hint", async () => {
    const first = await createSandbox(settings, { provider: "fakeroomy" }, spec({ name: "taken" }), { register: false });
    const hint = "pick another name";
    const clash = await createSandbox(settings, { provider: "fakeroomy" }, spec({ name: "taken" }), { register: false, prepare: (p) => refuseTakenName(p, "taken", hint) }).catch((e) => e);
    expect(clash).toMatchObject({ code: "name_in_use", message: `a sandbox named "taken" already exists (${first.record.id})`, hint });
    expect(roomy.alive.size).toBe(1);
    await release(settings, first, () => {});
  });
});

describe("find", () => {
  test("findNamed: none, one, and two of a name is an error that lists both", async () => {
    expect(await findNamed(roomy, "twin")).toBeUndefined();
    const a = await roomy.create({ name: "twin", labels: {} });
    expect(await findNamed(roomy, "twin")).toEqual(a);
    const b = await roomy.create({ name: "twin", labels: {} });
    const error = await findNamed(roomy, "twin").catch((e) => e);
    expect(error).toMatchObject({ code: "ambiguous_sandbox", message: `more than one sandbox on fakeroomy is named "twin": ${a.id}, ${b.id}` });
    await roomy.destroy(a.id);
    await roomy.destroy(b.id);
  });
});

describe("hold", () => {
  test("a created sandbox goes when the body fails, and is forgotten by the registry", async () => {
    const lease = await createSandbox(settings, { provider: "fakeroomy" }, spec(), { register: true });
    const error = await hold(settings, lease, holding(false), async () => {
      throw new Error("body failed");
    }).catch((e) => e);
    expect((error as Error).message).toBe("body failed");
    expect(roomy.alive.size).toBe(0);
    expect(registeredIds("fakeroomy")).toEqual([]);
  });

  test("a kept sandbox stays registered and onKept says so; a found one is never destroyed", async () => {
    const lease = await createSandbox(settings, { provider: "fakeroomy" }, spec(), { register: true });
    const kept: string[] = [];
    expect(await hold(settings, lease, { ...holding(true), onKept: () => kept.push(lease.record.id) }, async () => 7)).toBe(7);
    expect(kept).toEqual([lease.record.id]);
    expect(registeredIds("fakeroomy")).toEqual([lease.record.id]);
    const found: Lease = { ...lease, created: false };
    await hold(settings, found, holding(false), async () => undefined);
    expect([...roomy.alive.keys()]).toEqual([lease.record.id]);
    await release(settings, lease, () => {});
  });

  test("an abort before the body: InterruptedError and the sandbox goes", async () => {
    const stop = new AbortController();
    const lease = await createSandbox(settings, { provider: "fakeroomy" }, spec(), { register: false, signal: stop.signal });
    stop.abort("SIGINT");
    let ran = false;
    const error = await hold(settings, lease, { ...holding(false), signal: stop.signal }, async () => void (ran = true)).catch((e) => e);
    expect(error).toBeInstanceOf(InterruptedError);
    expect(ran).toBe(false);
    expect(roomy.alive.size).toBe(0);
  });

  test("a destroy that fails is one warning naming the sandbox and provider, and the registry forgets it all the same", async () => {
    const lease = await createSandbox(settings, { provider: "fakeroomy" }, spec(), { register: true });
    const broken = { ...lease, provider: Object.assign(Object.create(roomy), { destroy: async () => Promise.reject(new Error("503 busy")) }) };
    const notices: string[] = [];
    await release(settings, broken, (m) => notices.push(m));
    expect(notices).toEqual([`warning: could not destroy sandbox ${lease.record.id} on fakeroomy: 503 busy`]);
    expect(registeredIds("fakeroomy")).toEqual([]);
    await roomy.destroy(lease.record.id);
  });
});

describe("checks and aborts", () => {
  test("checkSupport refuses what would weaken isolation and only notes what is ignored", () => {
    const notices: string[] = [];
    expect(() => checkSupport(bare, { mounts: [{ hostPath: "/tmp", sandboxPath: "/w", readonly: true }] })).toThrow("provider fakebare cannot mount local directories");
    expect(() => checkSupport(bare, { network: { mode: "host", allow: [] } })).toThrow("provider fakebare cannot share this machine's network (--network host)");
    checkSupport(bare, { cpus: 2, ttlSeconds: 60 }, (m) => notices.push(m));
    checkSupport(roomy, { network: { mode: "host", allow: [] } }, (m) => notices.push(m));
    expect(notices).toEqual([
      "provider fakebare does not support --cpus/--memory; ignored",
      "provider fakebare has no sandbox lifetime (--ttl); ignored",
      "warning: --network host shares this machine's network with the sandbox",
    ]);
  });

  test("throwIfAborted keeps our stop reasons and counts any other reason as Ctrl-C", () => {
    const aborted = (reason?: unknown) => {
      const controller = new AbortController();
      controller.abort(reason);
      return controller.signal;
    };
    expect(() => throwIfAborted(undefined)).not.toThrow();
    expect(() => throwIfAborted(new AbortController().signal)).not.toThrow();
    for (const reason of ["SIGINT", "SIGTERM", "SIGHUP", "SIGPIPE"] as const) expect(() => throwIfAborted(aborted(reason))).toThrow(new InterruptedError(reason));
    expect(() => throwIfAborted(aborted())).toThrow(new InterruptedError("SIGINT"));
    expect(() => throwIfAborted(aborted("stop"))).toThrow(new InterruptedError("SIGINT"));
  });
});
