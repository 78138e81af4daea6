import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dockerDescriptor } from "../../src/providers/docker";
import type { Provider } from "../../src/providers/types";
import { makeCertificates, type Proxy, tcpProxy, tlsProxy } from "../fakes/docker/proxies";
import { startFakeRegistry } from "../fakes/docker/registry";
import { requireEngine } from "../e2e/_docker-helpers";
import { archiveOf, readTerminal } from "../helpers";
import { dockerBackend } from "./backends";
import { testProvider } from "./suite";

// Needs a running engine and the offline test images: run scripts/ci/docker.sh first.
// Deliberately no skip: an unreachable engine fails every case loudly, saying what to run.
beforeAll(requireEngine, 30_000);
const stateDir = mkdtempSync(join(tmpdir(), "sandboxes-conf-docker-"));
testProvider("docker", dockerDescriptor.capabilities, () => dockerDescriptor.load({ env: process.env, config: {}, stateDir }), { image: "sandboxes-test/busybox", backend: dockerBackend });

const SOCKET = "/var/run/docker.sock";
const proxies: Proxy[] = [];
afterAll(() => proxies.forEach((p) => p.close()));

testProvider("docker over DOCKER_HOST=tcp://127.0.0.1", dockerDescriptor.capabilities,
  async () => {
    const proxy = await tcpProxy(SOCKET);
    proxies.push(proxy);
    return dockerDescriptor.load({ env: { ...process.env, DOCKER_HOST: `tcp://127.0.0.1:${proxy.port}` }, config: {}, stateDir });
  },
  { image: "sandboxes-test/busybox", backend: dockerBackend },
);

testProvider("docker over DOCKER_HOST=tcp:// with DOCKER_TLS_VERIFY (mutual TLS)", dockerDescriptor.capabilities,
  async () => {
    const certs = makeCertificates();
    const proxy = await tlsProxy(SOCKET, certs);
    proxies.push(proxy);
    return dockerDescriptor.load({
      env: { ...process.env, DOCKER_HOST: `tcp://127.0.0.1:${proxy.port}`, DOCKER_TLS_VERIFY: "1", DOCKER_CERT_PATH: certs },
      config: {},
      stateDir,
    });
  },
  { image: "sandboxes-test/busybox", backend: dockerBackend },
);

/** Behaviours specific to the docker provider, through the same public interface. */
describe("docker provider specifics", () => {
  let provider: Provider;
  let id = "";
  /** stdout and stderr of one command, interleaved, with its exit code. */
  const output = async (sandbox: string, argv: string[]) => {
    const out: Uint8Array[] = [];
    const outcome = await provider.exec(sandbox, { argv, env: {}, onStdout: (c) => out.push(c), onStderr: (c) => out.push(c) });
    return { text: Buffer.concat(out).toString("utf8"), code: outcome.exitCode };
  };
  const ps = async () => (await output(id, ["ps", "-o", "args"])).text;

  beforeAll(async () => {
    provider = await dockerDescriptor.load({ env: process.env, config: {}, stateDir });
    id = (await provider.create({ image: "sandboxes-test/busybox", labels: { suite: "docker-specifics" }, env: {} })).id;
  });
  afterAll(async () => {
    if (id) await provider.destroy(id);
    await provider.close?.();
  });

  test("a timeout kills the whole process tree, background children included", async () => {
    const outcome = await provider.exec(id, {
      argv: ["sh", "-c", "sleep 301 & sleep 302 & sleep 303; echo survived"],
      env: {},
      timeoutMs: 500,
      onStdout: (c) => expect(Buffer.from(c).toString()).not.toContain("survived"),
      onStderr: () => {},
    });
    expect(outcome).toEqual({ exitCode: 124, timedOut: true });
    expect(await ps()).not.toMatch(/sleep 30[123]/);
  }, 30_000);

  test("parallel execs in one container keep their own output and exit code", async () => {
    const results = await Promise.all(
      [1, 2, 3, 4, 5].map((n) => output(id, ["sh", "-c", `for i in 1 2 3; do echo ${n}-$i; sleep 0.1; done; exit ${n}`])),
    );
    expect(results).toEqual([1, 2, 3, 4, 5].map((n) => ({ text: `${n}-1\n${n}-2\n${n}-3\n`, code: n })));
  }, 30_000);

  test("an aborted exec (Ctrl-C) stops its command in the container", async () => {
    const controller = new AbortController();
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const pending = provider.exec(id, {
      argv: ["sh", "-c", "echo up; sleep 304; echo survived"],
      env: {},
      signal: controller.signal,
      onStdout: (c) => Buffer.from(c).toString().includes("up") && started(),
      onStderr: () => {},
    });
    await running;
    controller.abort("SIGINT");
    expect((await pending).exitCode).toBe(130);
    expect(await ps()).not.toContain("sleep 304");
  }, 30_000);

  test("files land owned by the image's user, so an unprivileged user can change them", async () => {
    const user = await provider.create({ image: "sandboxes-test/user", labels: { suite: "docker-specifics" }, env: {} });
    try {
      const tar = await new Bun.Archive({ "x.txt": "x\n" }).blob();
      await provider.putArchive!(user.id, "/home/sandbox/new/dir", tar);
      const result = await output(user.id, ["sh", "-c", "id -u; cat new/dir/x.txt; stat -c %u new/dir/x.txt; echo more >> new/dir/x.txt && echo appended"]);
      expect(result).toEqual({ text: "1000\nx\n1000\nappended\n", code: 0 });
    } finally {
      await provider.destroy(user.id);
    }
  }, 30_000);

  test("a missing path is one clear error", async () => {
    await expect(archiveOf(provider, id, "/no/such/file")).rejects.toThrow("cannot read /no/such/file");
    const tar = await new Bun.Archive({ "x.txt": "x\n" }).blob();
    await expect(provider.putArchive!(id, "/proc/1/nope", tar)).rejects.toThrow("cannot create /proc/1/nope: mkdir:");
  }, 30_000);

  test("mounts: a host directory appears read-only where asked", async () => {
    const hostDir = mkdtempSync(join(tmpdir(), "sandboxes-docker-mount-"));
    writeFileSync(join(hostDir, "from-host.txt"), "host data\n");
    const mounted = await provider.create({
      image: "sandboxes-test/busybox",
      labels: { suite: "docker-specifics" },
      env: {},
      mounts: [{ hostPath: hostDir, sandboxPath: "/mnt/host", readonly: true }],
    });
    try {
      const result = await output(mounted.id, ["sh", "-c", "cat /mnt/host/from-host.txt; touch /mnt/host/new 2>/dev/null && echo writable || echo read-only"]);
      expect(result).toEqual({ text: "host data\nread-only\n", code: 0 });
    } finally {
      await provider.destroy(mounted.id);
    }
  }, 30_000);

  test("an image the engine lacks is pulled (fake registry on 127.0.0.1), reporting progress", async () => {
    const registry = await startFakeRegistry("/var/run/docker.sock", "sandboxes-test/busybox");
    const image = `${registry.host}/sbx/pulled:v1`;
    const messages: string[] = [];
    try {
      const pulled = await provider.create({ image, labels: { suite: "docker-specifics" }, env: {}, onProgress: (m) => messages.push(m) });
      expect((await output(pulled.id, ["cat", "/etc/fake-registry"])).text).toStartWith("served at ");
      expect(pulled.image).toBe(image);
      await provider.destroy(pulled.id);
      expect(messages[0]).toBe(`pulling ${image}…`);
      expect(messages.at(-1)).toBe(`pulled ${image}`);
      expect(registry.requests.filter((r) => r.startsWith("GET /v2/sbx/pulled/blobs/")).length).toBeGreaterThan(0);
      await expect(provider.create({ image: `${registry.host}/sbx/absent:v1`, labels: {}, env: {} })).rejects.toThrow(`cannot pull image ${registry.host}/sbx/absent:v1`);
    } finally {
      registry.stop();
      await fetch(`http://docker/images/${image}?force=true`, { method: "DELETE", unix: "/var/run/docker.sock" } as RequestInit);
    }
  }, 60_000);

  test("Ctrl-C while the container starts: create rejects as interrupted and leaves no container", async () => {
    const suite = `abort-${Date.now().toString(36)}`;
    const controller = new AbortController();
    const pending = provider.create({ image: "sandboxes-test/busybox", labels: { suite }, env: {} }, controller.signal);
    const filters = encodeURIComponent(JSON.stringify({ label: [`sandboxes.label.suite=${suite}`] }));
    const containers = async () => (await (await fetch(`http://docker/containers/json?all=true&filters=${filters}`, { unix: "/var/run/docker.sock" } as RequestInit)).json()) as unknown[];
    // Interrupt once the engine holds the container, i.e. while create is starting it.
    while ((await containers()).length === 0) await Bun.sleep(2);
    controller.abort("SIGINT");
    await expect(pending).rejects.toThrow("interrupted by SIGINT");
    let left: unknown[] = [];
    for (let i = 0; i < 100; i++) {
      left = await containers();
      if (left.length === 0) break;
      await Bun.sleep(100);
    }
    expect(left).toEqual([]);
  }, 30_000);

  test("config.toml [providers.docker]: image and ttl_seconds are the defaults", async () => {
    const configured = await dockerDescriptor.load({ env: process.env, config: { image: "sandboxes-test/user", ttl_seconds: 77 }, stateDir });
    const sandbox = await configured.create({ labels: { suite: "docker-specifics" }, env: {} });
    try {
      expect(sandbox.image).toBe("sandboxes-test/user");
      const inspect = (await (await fetch(`http://docker/containers/${sandbox.id}/json`, { unix: "/var/run/docker.sock" } as RequestInit)).json()) as {
        Config: { Image: string; Cmd: string[] };
        HostConfig: { AutoRemove: boolean; Init: boolean };
      };
      expect(inspect.Config).toMatchObject({ Image: "sandboxes-test/user", Cmd: ["77"] });
      expect(inspect.HostConfig).toMatchObject({ AutoRemove: true, Init: true });
    } finally {
      await configured.destroy(sandbox.id);
      await configured.close?.();
    }
  }, 30_000);

  test("exec in a container that does not exist is a user error naming the id", async () => {
    await expect(provider.exec("0123456789ab", { argv: ["true"], env: {}, onStdout: () => {}, onStderr: () => {} })).rejects.toThrow("no docker sandbox with id 0123456789ab");
  }, 30_000);

  test("pty: resize reaches the terminal", async () => {
    const session = await provider.openPty!(id, { argv: ["sh"], env: {}, cols: 80, rows: 24 });
    const terminal = readTerminal(session.output);
    session.write("echo READY$((1+1))\n");
    while (!terminal.text().includes("READY2")) await Bun.sleep(20);
    session.resize(120, 40);
    // The new size arrives asynchronously: ask until the terminal reports it.
    for (let asked = 0; !terminal.text().includes("40 120"); asked++) {
      if (asked % 20 === 0) session.write("stty size\n");
      await Bun.sleep(25);
    }
    session.write("exit 3\n");
    expect(await session.exited).toBe(3);
    await terminal.done;
    expect(terminal.text()).toContain("40 120");
  }, 30_000);
});
