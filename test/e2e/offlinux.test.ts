/**
 * Off Linux (issue 10, part 5): where the local provider cannot run, a Docker-compatible engine
 * that answers is the default provider. The platform is injected with SANDBOXES_TEST_PLATFORM
 * (test-only), each engine's socket is a fake engine (Bun.serve on a unix socket, answering
 * /_ping and /version) under a temporary HOME, and `run` goes to the real dockerd through a
 * link at one of those paths. Only unix sockets are used: nothing leaves this machine.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Server } from "bun";
import { BINARY, cli, freshEnv, type CliResult } from "../helpers";

const DOCKERD = "/var/run/docker.sock";
const homes: string[] = [];
const engines: Server<undefined>[] = [];

afterAll(() => {
  for (const engine of engines.splice(0)) engine.stop(true);
  for (const home of homes.splice(0)) rmSync(home, { recursive: true, force: true });
});

/** A temporary HOME with the platform injected and no DOCKER_HOST (freshEnv sets one that leads nowhere). */
function machine(platform: string | undefined, extra: Record<string, string> = {}) {
  const { home, env } = freshEnv(platform ? { SANDBOXES_TEST_PLATFORM: platform } : {});
  delete env.DOCKER_HOST;
  Object.assign(env, extra);
  homes.push(home);
  return { home, env };
}

/** A fake Docker-compatible engine listening on `path`: enough of the API for detection. */
function fakeEngine(path: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const engine = Bun.serve({
    unix: path,
    fetch(request) {
      const { pathname } = new URL(request.url);
      if (pathname.endsWith("/_ping")) return new Response("OK", { headers: { "Api-Version": "1.45" } });
      if (pathname.endsWith("/version")) return Response.json({ ApiVersion: "1.45", Version: "27.0.0", Os: "linux" });
      return Response.json({ message: "not in this fake" }, { status: 404 });
    },
  });
  engines.push(engine);
}

/** The real dockerd, reached through a link at an engine's usual path. */
function linkDockerd(path: string): void {
  mkdirSync(dirname(path), { recursive: true });
  symlinkSync(DOCKERD, path);
}

const dockerd = await (async () => {
  try {
    return (await (await fetch("http://docker/_ping", { unix: DOCKERD })).text()) === "OK";
  } catch {
    return false;
  }
})();

/** The binary in a mount namespace where /var/run is empty: a machine with no system-wide engine. */
async function withoutSystemEngine(args: string[], env: Record<string, string>): Promise<CliResult> {
  const hide = 'mount -t tmpfs tmpfs "$(readlink -f /var/run)" && exec "$@"';
  const child = Bun.spawn(["unshare", "-rm", "sh", "-c", hide, "sh", BINARY, ...args], { env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdoutBytes, stderr, code] = await Promise.all([new Response(child.stdout).bytes(), new Response(child.stderr).text(), child.exited]);
  return { code, stdout: new TextDecoder().decode(stdoutBytes), stderr, stdoutBytes };
}

const canHide = Bun.spawnSync(["unshare", "-rm", "sh", "-c", 'mount -t tmpfs tmpfs "$(readlink -f /var/run)"']).exitCode === 0;

const defaultOf = async (env: Record<string, string>) => JSON.parse((await cli(["providers", "--json"], { env })).stdout).default;

describe("off Linux, an engine that answers is the default provider", () => {
  test("providers names docker as the default and why: OrbStack's engine answers in HOME", async () => {
    const { home, env } = machine("darwin");
    fakeEngine(join(home, ".orbstack/run/docker.sock"));
    const r = await cli(["providers"], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("default: docker (the local provider is Linux-only; OrbStack's engine answers at ~/.orbstack/run/docker.sock)\n");
    expect(r.stdout).toMatch(/\ndocker \(default\)\tyes\tOrbStack socket\t/);
    expect(r.stdout).toMatch(/\nlocal\tno\tthe local provider is Linux-only/);
    expect(r.stderr).toBe("");
  });

  test("providers --json carries the choice and its reason", async () => {
    const { home, env } = machine("darwin");
    fakeEngine(join(home, ".orbstack/run/docker.sock"));
    const doc = JSON.parse((await cli(["providers", "--json"], { env })).stdout);
    expect(doc.default).toEqual({ name: "docker", reason: "the local provider is Linux-only; OrbStack's engine answers at ~/.orbstack/run/docker.sock" });
    expect(doc.providers.find((p: { name: string }) => p.name === "docker")).toMatchObject({ configured: true, default: true, source: "OrbStack socket" });
    expect(doc.providers.find((p: { name: string }) => p.name === "local")).toMatchObject({ configured: false, default: false });
  });

  test.each([
    [".docker/run/docker.sock", "Docker Desktop"],
    [".docker/desktop/docker.sock", "Docker Desktop"],
    [".orbstack/run/docker.sock", "OrbStack"],
    [".colima/default/docker.sock", "Colima"],
    [".colima/docker.sock", "Colima"],
    [".rd/docker.sock", "Rancher Desktop"],
    [".local/share/containers/podman/machine/podman.sock", "Podman machine"],
    [".local/share/containers/podman/machine/qemu/podman.sock", "Podman machine"],
    [".local/share/containers/podman/machine/applehv/podman.sock", "Podman machine"],
  ])("the engine at ~/%s is found and named (%s)", async (path, engine) => {
    const { home, env } = machine("darwin");
    fakeEngine(join(home, path));
    expect(await defaultOf(env)).toEqual({ name: "docker", reason: `the local provider is Linux-only; ${engine}'s engine answers at ~/${path}` });
  });

  test("Podman 5's machine socket under TMPDIR is found", async () => {
    const { home, env } = machine("darwin");
    env.TMPDIR = join(home, "tmp");
    fakeEngine(join(home, "tmp/podman/podman-machine-default-api.sock"));
    expect((await defaultOf(env)).reason).toBe(`the local provider is Linux-only; Podman machine's engine answers at ~/tmp/podman/podman-machine-default-api.sock`);
  });

  test("a socket where no engine answers is passed over for one that answers", async () => {
    const { home, env } = machine("darwin");
    // Docker Desktop's path comes first, but nothing listens there (a file left behind).
    mkdirSync(join(home, ".docker/run"), { recursive: true });
    writeFileSync(join(home, ".docker/run/docker.sock"), "");
    fakeEngine(join(home, ".colima/default/docker.sock"));
    expect((await defaultOf(env)).reason).toBe("the local provider is Linux-only; Colima's engine answers at ~/.colima/default/docker.sock");
  });

  test("the docker CLI's current context picks among several engines; DOCKER_CONTEXT overrides config.json", async () => {
    const { home, env } = machine("darwin");
    fakeEngine(join(home, ".orbstack/run/docker.sock"));
    fakeEngine(join(home, ".colima/default/docker.sock"));
    const context = (name: string, socket: string) => {
      const digest = new Bun.CryptoHasher("sha256").update(name).digest("hex");
      mkdirSync(join(home, ".docker/contexts/meta", digest), { recursive: true });
      writeFileSync(join(home, ".docker/contexts/meta", digest, "meta.json"), JSON.stringify({ Name: name, Metadata: {}, Endpoints: { docker: { Host: `unix://${socket}`, SkipTLSVerify: false } } }));
    };
    context("colima", join(home, ".colima/default/docker.sock"));
    context("orbstack", join(home, ".orbstack/run/docker.sock"));
    writeFileSync(join(home, ".docker/config.json"), JSON.stringify({ auths: {}, currentContext: "colima" }));
    expect((await defaultOf(env)).reason).toBe("the local provider is Linux-only; Colima's engine answers at ~/.colima/default/docker.sock (docker context colima)");
    expect((await defaultOf({ ...env, DOCKER_CONTEXT: "orbstack" })).reason).toBe(
      "the local provider is Linux-only; OrbStack's engine answers at ~/.orbstack/run/docker.sock (docker context orbstack)",
    );
  });

  test("DOCKER_HOST wins over every engine's socket", async () => {
    const { home, env } = machine("darwin");
    fakeEngine(join(home, ".orbstack/run/docker.sock"));
    fakeEngine(join(home, "elsewhere/engine.sock"));
    env.DOCKER_HOST = `unix://${join(home, "elsewhere/engine.sock")}`;
    expect(await defaultOf(env)).toEqual({ name: "docker", reason: `the local provider is Linux-only; DOCKER_HOST is unix://${join(home, "elsewhere/engine.sock")}` });
  });

  test("cloud credentials still come first, as they do before local on Linux", async () => {
    const { home, env } = machine("darwin", { E2B_API_KEY: "e2b_test" });
    fakeEngine(join(home, ".orbstack/run/docker.sock"));
    expect((await defaultOf(env)).name).toBe("e2b");
  });

  test("on Windows, DOCKER_HOST names a named pipe the docker CLI's way", async () => {
    const { env } = machine("win32", { DOCKER_HOST: "npipe:////./pipe/docker_engine" });
    expect(await defaultOf(env)).toEqual({ name: "docker", reason: "the local provider is Linux-only; DOCKER_HOST is npipe:////./pipe/docker_engine" });
  });

  test.skipIf(!dockerd)("run picks docker and runs there (dockerd linked at OrbStack's path); --image says nothing more", async () => {
    const { home, env } = machine("darwin");
    linkDockerd(join(home, ".orbstack/run/docker.sock"));
    const r = await cli(["run", "--image", "sandboxes-test/busybox", "--network", "none", "echo hello from $(uname -s)"], { env });
    expect(r).toMatchObject({ code: 0, stdout: "hello from Linux\n", stderr: "" });
  });

  test.skipIf(!dockerd)("a run whose image nobody chose names it once on stderr; --json stays one document", async () => {
    const { home, env } = machine("darwin");
    linkDockerd(join(home, ".orbstack/run/docker.sock"));
    // The image comes from config.toml here, so the test needs nothing from a registry.
    mkdirSync(join(home, ".config/sandboxes"), { recursive: true });
    writeFileSync(join(home, ".config/sandboxes/config.toml"), '[providers.docker]\nimage = "sandboxes-test/busybox"\n');
    const r = await cli(["run", "--network", "none", "echo hi"], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("hi\n");
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(
      "using docker (the local provider is Linux-only; OrbStack's engine answers at ~/.orbstack/run/docker.sock) with image sandboxes-test/busybox; choose another with --image",
    );
    const json = await cli(["run", "--json", "--network", "none", "echo hi"], { env });
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ provider: "docker", exit_code: 0 });
    expect(json.stderr).toBe("");
  });

  test.skipIf(!canHide)("with no engine and no credentials, run fails in one line with the fix, and providers says there is no default", async () => {
    const { env } = machine("darwin");
    const r = await withoutSystemEngine(["run", "echo hi"], env);
    expect(r.code).toBe(125);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe(
      "sandboxes: no provider can run here: the local provider is Linux-only, no Docker engine answers and no cloud provider has credentials: " +
        "install and start Docker Desktop, OrbStack or Colima (or set DOCKER_HOST), or configure a cloud provider (see `sandboxes providers`)\n",
    );
    const providers = await withoutSystemEngine(["providers", "--json"], env);
    expect(providers.code).toBe(0);
    const doc = JSON.parse(providers.stdout);
    expect(doc.default.name).toBeNull();
    expect(doc.default.reason).toStartWith("no provider can run here");
    expect(doc.providers.find((p: { name: string }) => p.name === "docker").missing).toBe(
      "no Docker engine answers (looked for Docker Desktop, OrbStack, Colima, Podman or Rancher Desktop and at the docker context): start one of them or set DOCKER_HOST",
    );
    const table = await withoutSystemEngine(["providers"], env);
    expect(table.stdout).toContain("\ndefault: none (no provider can run here:");
  });

  test("on Linux nothing changes: local stays the default while an engine answers", async () => {
    const { home, env } = machine(undefined);
    fakeEngine(join(home, ".orbstack/run/docker.sock"));
    expect(await defaultOf(env)).toEqual({ name: "local", reason: "no cloud credentials found; local needs none" });
    const r = await cli(["run", "echo hi"], { env });
    expect(r).toMatchObject({ code: 0, stdout: "hi\n", stderr: "" });
  });
});
