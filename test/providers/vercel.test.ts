/**
 * Our Vercel client against the fake, for what the shared suite does not reach: how each flag
 * maps onto the API (runtime vs image, vcpus, ttl, deny-all, tags), what is refused, a session
 * that stopped at its timeout, Ctrl-C and timeouts killing the whole tree, streamed stdin, and
 * which failures are retried (never a second sandbox, never a second command).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { vercelDescriptor } from "../../src/providers/vercel";
import type { ExecSpec, Provider } from "../../src/providers/types";
import { startFakeVercel, type FakeVercel } from "../fakes/vercel/server";

let fake: FakeVercel;
let provider: Provider;

beforeAll(async () => {
  fake = await startFakeVercel({ pageSize: 2 });
  provider = await vercelDescriptor.load({ env: fake.env(), config: {}, stateDir: "/tmp" });
});

afterAll(async () => {
  await fake.close();
});

beforeEach(async () => {
  fake.clearFaults();
  for (const name of [...fake.sandboxes.keys()]) await provider.destroy(name);
});

/** Processes still in the fake's sandboxes once killed ones had a moment to finish dying (at most 5 s). */
async function lingering(): Promise<number> {
  const deadline = Date.now() + 5000;
  while (fake.running() > 0 && Date.now() < deadline) await Bun.sleep(50);
  return fake.running();
}

async function run(id: string, argv: string[], extra: Partial<ExecSpec> = {}) {
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  const outcome = await provider.exec(id, { argv, env: {}, onStdout: (c) => out.push(c), onStderr: (c) => err.push(c), ...extra });
  return { ...outcome, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

describe("vercel: what maps to what", () => {
  test("--image node22 is a runtime on /v2, anything else an image on /v3; --cpus, --ttl, --network none, labels, --name", async () => {
    const runtime = await provider.create({ image: "node22", labels: {}, env: {} });
    expect(fake.requests.filter((r) => r.startsWith("POST /v")).at(-1)).toBe("POST /v2/sandboxes");
    expect(fake.creates.at(-1)).toMatchObject({ runtime: "node22" });
    expect(runtime.image).toBe("node22");

    const made = await provider.create({ name: "mapped", image: "my-repo:v1", labels: { team: "alpha" }, env: { A: "1" }, cpus: 4, ttlSeconds: 90, network: { mode: "none", allow: [] } });
    expect(fake.requests.filter((r) => r.startsWith("POST /v")).at(-1)).toBe("POST /v3/sandboxes");
    expect(fake.creates.at(-1)).toEqual({ projectId: fake.projectId, name: "mapped", ports: [], timeout: 90_000, resources: { vcpus: 4 }, image: "my-repo:v1", networkPolicy: { mode: "deny-all" }, env: { A: "1" }, tags: { team: "alpha" } });
    expect(made).toMatchObject({ id: "mapped", name: "mapped", state: "running", labels: { team: "alpha" } });
    // --memory that matches 2048 MB per vCPU is accepted; alone, it picks the vCPUs.
    await provider.create({ labels: {}, env: {}, cpus: 2, memoryMb: 4096 });
    expect(fake.creates.at(-1)?.resources).toEqual({ vcpus: 2 });
    await provider.create({ labels: {}, env: {}, memoryMb: 8192 });
    expect(fake.creates.at(-1)?.resources).toEqual({ vcpus: 4 });
  });

  test("what Vercel cannot do is refused with one line, before any request", async () => {
    const before = fake.requests.length;
    await expect(provider.create({ labels: {}, env: {}, memoryMb: 1000 })).rejects.toThrow("provider vercel does not set memory on its own: every vCPU comes with 2048 MB");
    await expect(provider.create({ labels: {}, env: {}, cpus: 1.5 })).rejects.toThrow("provider vercel allocates whole vCPUs: --cpus 1.5 is not one");
    const six = Object.fromEntries([1, 2, 3, 4, 5, 6].map((n) => [`k${n}`, "v"]));
    await expect(provider.create({ labels: six, env: {} })).rejects.toThrow("provider vercel keeps at most 5 tags per sandbox, and 6 labels were given");
    expect(fake.requests.length).toBe(before);
    await expect(provider.create({ image: "no-such-image", labels: {}, env: {} })).rejects.toThrow('vercel: cannot create sandbox sandboxes-');
    expect(fake.sandboxes.size).toBe(0);
  });

  test("list asks the server for one tag and checks the others here, over every page", async () => {
    const a = await provider.create({ labels: { team: "alpha", tier: "one" }, env: {} });
    await provider.create({ labels: { team: "alpha", tier: "two" }, env: {} });
    await provider.create({ labels: { team: "beta" }, env: {} });
    const found = await provider.list({ labels: { team: "alpha", tier: "one" } });
    expect(found.map((r) => r.id)).toEqual([a.id]);
    expect(fake.queries.at(-1)?.getAll("tags")).toEqual(["team:alpha"]);
    expect((await provider.list({})).length).toBe(3);
  });
});

describe("vercel: commands", () => {
  test("a session that stopped at its --ttl is resumed for the next command, files kept; the record says stopped meanwhile", async () => {
    const made = await provider.create({ labels: {}, env: {}, ttlSeconds: 1 });
    expect((await run(made.id, ["sh", "-c", "echo kept > /tmp/kept"])).exitCode).toBe(0);
    await Bun.sleep(1300);
    expect((await provider.get(made.id))?.state).toBe("stopped");
    const again = await run(made.id, ["cat", "/tmp/kept"]);
    expect(again).toMatchObject({ exitCode: 0, stdout: "kept\n" });
    expect(fake.queries[fake.requests.lastIndexOf(`GET /v2/sandboxes/${made.id}`)]?.get("resume")).toBe("true");
  });

  test("timeout and Ctrl-C kill the whole process tree, not only the first process", async () => {
    const made = await provider.create({ labels: {}, env: {} });
    const timed = await run(made.id, ["sh", "-c", "sleep 30 & sleep 30; echo never"], { timeoutMs: 500 });
    expect(timed).toMatchObject({ exitCode: 124, timedOut: true, stdout: "" });
    // Without the group kill, the `sleep 30`s would live on for 30 s.
    expect(await lingering()).toBe(0);
    const controller = new AbortController();
    const stopped = run(made.id, ["sh", "-c", "echo started; sleep 30 & sleep 30"], { signal: controller.signal, onStdout: () => controller.abort() });
    expect(await stopped).toMatchObject({ exitCode: 130, timedOut: false });
    expect(await lingering()).toBe(0);
    expect(fake.requests.filter((r) => r.endsWith("/kill"))).toHaveLength(2);
  });

  test("stdin as a stream arrives whole; exact UTF-8 output; the stdin file is gone afterwards", async () => {
    const made = await provider.create({ labels: {}, env: {} });
    const parts = ["héllo ", "wörld\n", "€".repeat(5000)];
    const stdin = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const part of parts) controller.enqueue(new TextEncoder().encode(part));
        controller.close();
      },
    });
    const result = await run(made.id, ["cat"], { stdin });
    expect(result.stdout).toBe(parts.join(""));
    expect((await run(made.id, ["sh", "-c", "ls -A /tmp"])).stdout).toBe("");
  });

  test("an unknown sandbox is one line naming it", async () => {
    await expect(run("no-such-sandbox", ["true"])).rejects.toThrow("no Vercel sandbox named no-such-sandbox");
  });
});

describe("vercel: retries", () => {
  test("a create whose answer was lost is found under its name, not made twice", async () => {
    const before = fake.creates.length;
    fake.fault({ match: "POST /v3/sandboxes", kind: "drop-after" });
    const made = await provider.create({ labels: { once: "yes" }, env: {} });
    expect(fake.creates.length).toBe(before + 1);
    expect([...fake.sandboxes.keys()]).toEqual([made.id]);
  });

  test("a command refused with 503 is sent again; a dropped command is not", async () => {
    const made = await provider.create({ labels: {}, env: {} });
    const path = `POST /v2/sandboxes/sessions/${fake.sandboxes.get(made.id)!.session.id}/cmd`;
    fake.fault({ match: path, kind: "status", status: 503, times: 2 });
    expect(await run(made.id, ["echo", "fine"])).toMatchObject({ exitCode: 0, stdout: "fine\n" });
    const before = fake.commands.length;
    fake.fault({ match: path, kind: "drop-after" });
    await expect(run(made.id, ["echo", "once"])).rejects.toThrow();
    expect(fake.commands.length).toBe(before + 1);
  });

  test("after the retry budget: a ProviderError naming the call and the status", async () => {
    fake.fault({ match: "GET /v2/sandboxes", kind: "status", status: 500, times: 100 });
    await expect(provider.list({})).rejects.toThrow(/^vercel: listing sandboxes failed: injected 500 \(status 500\)$/);
  });
});
