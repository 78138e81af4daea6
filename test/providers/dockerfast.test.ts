/**
 * DockerProvider.runOnce in-process against the real engine, over the unix socket, plain TCP
 * and mutual TLS (through the same proxies as the conformance suite). What is left afterwards
 * is asked of the engine directly.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dockerDescriptor } from "../../src/providers/docker";
import type { ExecSpec, Provider } from "../../src/providers/types";
import { requireEngine } from "../e2e/_docker-helpers";
import { makeCertificates, type Proxy, tcpProxy, tlsProxy } from "../fakes/docker/proxies";

const SOCKET = "/var/run/docker.sock";
const IMAGE = "sandboxes-test/busybox";
const stateDir = mkdtempSync(join(tmpdir(), "sandboxes-dockerfast-"));
const proxies: Proxy[] = [];
const providers: Provider[] = [];

beforeAll(requireEngine, 30_000);
afterAll(async () => {
  for (const provider of providers) await provider.close?.();
  proxies.forEach((p) => p.close());
});

async function load(env: Record<string, string | undefined>, config: Record<string, unknown> = {}): Promise<Provider> {
  const provider = await dockerDescriptor.load({ env: { ...process.env, ...env }, config, stateDir });
  providers.push(provider);
  return provider;
}

/** Containers with our suite label, once the engine has finished removing what ended. */
async function left(suite: string): Promise<unknown[]> {
  const filters = encodeURIComponent(JSON.stringify({ label: [`sandboxes.label.suite=${suite}`] }));
  let found: unknown[] = [];
  for (let i = 0; i < 100; i++) {
    found = (await (await fetch(`http://docker/containers/json?all=true&filters=${filters}`, { unix: SOCKET } as RequestInit)).json()) as unknown[];
    if (found.length === 0) break;
    await Bun.sleep(100);
  }
  return found;
}

function collect(argv: string[], extra: Partial<ExecSpec> = {}) {
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  const spec: ExecSpec = { argv, env: { PER: "exec" }, onStdout: (c) => out.push(c), onStderr: (c) => err.push(c), ...extra };
  return { spec, stdout: () => Buffer.concat(out).toString("utf8"), stderr: () => Buffer.concat(err).toString("utf8") };
}

const endpoints: Array<[string, () => Promise<Provider>]> = [
  ["the unix socket", () => load({})],
  [
    "DOCKER_HOST=tcp://",
    async () => {
      const proxy = await tcpProxy(SOCKET);
      proxies.push(proxy);
      return load({ DOCKER_HOST: `tcp://127.0.0.1:${proxy.port}` });
    },
  ],
  [
    "mutual TLS",
    async () => {
      const certs = makeCertificates();
      const proxy = await tlsProxy(SOCKET, certs);
      proxies.push(proxy);
      return load({ DOCKER_HOST: `tcp://127.0.0.1:${proxy.port}`, DOCKER_TLS_VERIFY: "1", DOCKER_CERT_PATH: certs });
    },
  ],
];

for (const [where, make] of endpoints) {
  describe(`docker runOnce over ${where}`, () => {
    test("create env and exec env, split output, stdin, exit code; the container goes by itself", async () => {
      const provider = await make();
      expect(provider.capabilities.oneShot).toBe(true);
      const suite = `oneshot-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
      const run = collect(["sh", "-c", 'echo "$BASE/$PER"; tr a-z A-Z >&2; exit 7'], { stdin: new TextEncoder().encode("loud\n") });
      const outcome = await provider.runOnce!({ image: IMAGE, labels: { suite }, env: { BASE: "create", PER: "overridden" } }, run.spec);
      expect(outcome).toMatchObject({ exitCode: 7, timedOut: false });
      expect(outcome.id).toMatch(/^[0-9a-f]{64}$/);
      expect(run.stdout()).toBe("create/exec\n");
      expect(run.stderr()).toBe("LOUD\n");
      expect(await left(suite)).toEqual([]);
    }, 30_000);
  });
}

describe("docker runOnce: stopping", () => {
  test("a timeout kills the container: 124, timedOut, nothing left", async () => {
    const provider = await load({});
    const suite = `oneshot-timeout-${Date.now().toString(36)}`;
    const run = collect(["sh", "-c", "echo begun; sleep 30"], { timeoutMs: 500 });
    const outcome = await provider.runOnce!({ image: IMAGE, labels: { suite }, env: {} }, run.spec);
    expect(outcome).toMatchObject({ exitCode: 124, timedOut: true });
    expect(run.stdout()).toBe("begun\n");
    expect(await left(suite)).toEqual([]);
  }, 30_000);

  test("an abort mid-run stops the command: 143 for SIGTERM, nothing left", async () => {
    const provider = await load({});
    const suite = `oneshot-abort-${Date.now().toString(36)}`;
    const controller = new AbortController();
    const run = collect(["sh", "-c", "echo begun; sleep 30; echo never"], {
      signal: controller.signal,
      onStdout: (chunk) => {
        if (new TextDecoder().decode(chunk).includes("begun")) controller.abort("SIGTERM");
      },
    });
    const outcome = await provider.runOnce!({ image: IMAGE, labels: { suite }, env: {} }, run.spec);
    expect(outcome).toMatchObject({ exitCode: 143, timedOut: false });
    expect(await left(suite)).toEqual([]);
  }, 30_000);

  test("an abort while the container is being created rejects as interrupted and leaves nothing", async () => {
    const provider = await load({});
    const suite = `oneshot-early-${Date.now().toString(36)}`;
    const controller = new AbortController();
    const run = collect(["sh", "-c", "echo never"], { signal: controller.signal });
    const pending = provider.runOnce!({ image: IMAGE, labels: { suite }, env: {} }, run.spec);
    await Bun.sleep(5);
    controller.abort("SIGINT");
    await expect(pending).rejects.toThrow("interrupted by SIGINT");
    expect(run.stdout()).toBe("");
    expect(await left(suite)).toEqual([]);
  }, 30_000);

  test("ttl_seconds in config.toml turns the one-shot path off (a lifetime must bound every container)", async () => {
    expect((await load({}, { ttl_seconds: 60 })).capabilities.oneShot).toBe(false);
    expect((await load({}, {})).capabilities.oneShot).toBe(true);
  });
});
