/** Unit tests of the docker provider's pure parts: stream framing, pull queries, endpoints. */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dockerDescriptor } from "../../src/providers/docker";
import { describeEndpoint, resolveEndpoint } from "../../src/providers/docker/endpoint";
import { Demultiplexer } from "../../src/providers/docker/multiplex";
import { PullProgress, pullQuery } from "../../src/providers/docker/pull";
import { testInOwnNetwork } from "../fakes/netns";

testInOwnNetwork(import.meta.path, ["10.0.0.5/32"], () => {
  function frame(stream: number, text: string): Uint8Array {
    const payload = new TextEncoder().encode(text);
    const bytes = new Uint8Array(8 + payload.length);
    bytes[0] = stream;
    new DataView(bytes.buffer).setUint32(4, payload.length);
    bytes.set(payload, 8);
    return bytes;
  }

  describe("Demultiplexer", () => {
    test("splits frames that arrive byte by byte, and several frames in one read", () => {
      const out: string[] = [];
      const err: string[] = [];
      const demux = new Demultiplexer((c) => out.push(Buffer.from(c).toString()), (c) => err.push(Buffer.from(c).toString()));
      const all = Buffer.concat([frame(1, "hello "), frame(2, "oops\n"), frame(1, "world\n"), frame(3, "engine says no")]);
      for (const byte of all.subarray(0, 20)) demux.push(new Uint8Array([byte]));
      demux.push(all.subarray(20));
      expect(out.join("")).toBe("hello world\n");
      expect(err.join("")).toBe("oops\nengine says no");
    });

    test("a frame split across many reads is delivered whole, once complete", () => {
      const out: number[] = [];
      const demux = new Demultiplexer((c) => out.push(c.length), () => {});
      const big = new Uint8Array(8 + 0x81_0000);
      big[0] = 1;
      new DataView(big.buffer).setUint32(4, 0x81_0000);
      demux.push(big.subarray(0, 100_000));
      demux.push(big.subarray(100_000));
      expect(out).toEqual([0x81_0000]);
    });
  });

  describe("pullQuery", () => {
    test("never pulls every tag: a bare name gets latest", () => {
      expect(pullQuery("busybox")).toEqual({ fromImage: "busybox", tag: "latest" });
      expect(pullQuery("python:3.12-slim")).toEqual({ fromImage: "python", tag: "3.12-slim" });
      expect(pullQuery("localhost:5000/team/app")).toEqual({ fromImage: "localhost:5000/team/app", tag: "latest" });
      expect(pullQuery("localhost:5000/team/app:v2")).toEqual({ fromImage: "localhost:5000/team/app", tag: "v2" });
      expect(pullQuery("alpine@sha256:abc")).toEqual({ fromImage: "alpine@sha256:abc" });
    });
  });

  describe("PullProgress", () => {
    test("folds per-layer events into one line of layers and megabytes", () => {
      const progress = new PullProgress("python:3.12");
      progress.feed({ status: "Pulling from library/python", id: "3.12" });
      expect(progress.line()).toBeUndefined();
      progress.feed({ status: "Pulling fs layer", id: "a" });
      progress.feed({ status: "Already exists", id: "b" });
      progress.feed({ status: "Downloading", id: "a", progressDetail: { current: 1_500_000, total: 4_000_000 } });
      progress.feed({ status: "Pulling fs layer", id: "c" });
      expect(progress.line()).toBe("pulling python:3.12: 1/3 layers, 1.5/4.0 MB");
      progress.feed({ status: "Download complete", id: "a" });
      progress.feed({ status: "Digest: sha256:abc" });
      expect(progress.line()).toBe("pulling python:3.12: 2/3 layers, 4.0/4.0 MB");
    });
  });

  describe("resolveEndpoint and detect", () => {
    const dir = mkdtempSync(join(tmpdir(), "sandboxes-docker-unit-"));
    const socket = join(dir, "docker.sock");
    writeFileSync(socket, "");

    test("DOCKER_HOST wins: unix paths, tcp with the default ports, TLS files from DOCKER_CERT_PATH", () => {
      expect(resolveEndpoint({ DOCKER_HOST: `unix://${socket}` }, {})).toEqual({ kind: "unix", socketPath: socket, source: "DOCKER_HOST" });
      expect(resolveEndpoint({ DOCKER_HOST: "tcp://10.0.0.5" }, {})).toMatchObject({ kind: "tcp", host: "10.0.0.5", port: 2375, tls: undefined });
      expect(resolveEndpoint({ DOCKER_HOST: "tcp://engine:2376", DOCKER_TLS_VERIFY: "1", DOCKER_CERT_PATH: "/certs" }, {})).toMatchObject({
        kind: "tcp",
        host: "engine",
        port: 2376,
        tls: { ca: "/certs/ca.pem", cert: "/certs/cert.pem", key: "/certs/key.pem" },
      });
      expect(resolveEndpoint({ DOCKER_HOST: "ssh://me@box" }, {})).toEqual({ missing: "DOCKER_HOST=ssh://me@box is not unix:///path, npipe:////./pipe/NAME or tcp://host:port" });
    });

    test("config host, then the user's runtime sockets; a missing socket says what to do", async () => {
      expect(resolveEndpoint({}, { host: `unix://${socket}` })).toMatchObject({ socketPath: socket, source: "config.toml host" });
      expect(resolveEndpoint({ DOCKER_HOST: "unix:///nowhere/docker.sock" }, {})).toEqual({ missing: "DOCKER_HOST=unix:///nowhere/docker.sock, but /nowhere/docker.sock does not exist: start the engine or fix DOCKER_HOST" });
      const detection = await dockerDescriptor.detect({ env: { DOCKER_HOST: `unix://${socket}` }, config: {}, stateDir: dir });
      expect(detection).toEqual({ configured: true, source: "DOCKER_HOST", details: `engine at unix://${socket}` });
      // detect() checks the same paths without node:fs, and must agree with resolveEndpoint.
      expect(await dockerDescriptor.detect({ env: { DOCKER_HOST: "unix:///nowhere/docker.sock" }, config: {}, stateDir: dir })).toEqual({
        configured: false,
        missing: "DOCKER_HOST=unix:///nowhere/docker.sock, but /nowhere/docker.sock does not exist: start the engine or fix DOCKER_HOST",
      });
      const userSockets = { XDG_RUNTIME_DIR: dir };
      const resolved = resolveEndpoint(userSockets, {});
      expect(await dockerDescriptor.detect({ env: userSockets, config: {}, stateDir: dir })).toEqual(
        "missing" in resolved ? { configured: false, missing: resolved.missing } : { configured: true, source: resolved.source, details: `engine at ${describeEndpoint(resolved)}` },
      );
    });

    test("the engines' sockets: on Linux the system socket first, as before; elsewhere each engine's own first, named", () => {
      const home = "/home/me";
      const everywhere = () => true;
      const on = (platform: string) => ({ HOME: home, SANDBOXES_TEST_PLATFORM: platform });
      const only = (path: string) => (candidate: string) => candidate === path;
      expect(resolveEndpoint(on("linux"), {}, everywhere)).toEqual({ kind: "unix", socketPath: "/var/run/docker.sock", source: "default socket" });
      expect(resolveEndpoint(on("darwin"), {}, everywhere)).toEqual({ kind: "unix", socketPath: `${home}/.docker/run/docker.sock`, source: "Docker Desktop socket", engine: "Docker Desktop" });
      expect(resolveEndpoint(on("darwin"), {}, only("/var/run/docker.sock"))).toEqual({ kind: "unix", socketPath: "/var/run/docker.sock", source: "default socket" });
      expect(resolveEndpoint(on("linux"), {}, only(`${home}/.colima/default/docker.sock`))).toMatchObject({ engine: "Colima" });
      // The user's runtime sockets, under an absolute XDG_RUNTIME_DIR only (the XDG spec ignores a relative one).
      expect(resolveEndpoint({ ...on("linux"), XDG_RUNTIME_DIR: "/run/user/1000" }, {}, only("/run/user/1000/docker.sock"))).toMatchObject({ socketPath: "/run/user/1000/docker.sock", source: "user socket" });
      expect(resolveEndpoint({ ...on("linux"), XDG_RUNTIME_DIR: "run" }, {}, only("run/docker.sock"))).toHaveProperty("missing");
      expect(resolveEndpoint(on("win32"), {}, everywhere)).toMatchObject({ socketPath: "\\\\.\\pipe\\docker_engine", engine: "Docker Desktop" });
      expect(resolveEndpoint(on("darwin"), {}, () => false)).toEqual({
        missing: "no Docker engine answers (looked for Docker Desktop, OrbStack, Colima, Podman or Rancher Desktop and at the docker context): start one of them or set DOCKER_HOST",
      });
    });

    test("a docker context on a socket is looked at first; one on ssh leaves the usual places", () => {
      const digest = (name: string) => new Bun.CryptoHasher("sha256").update(name).digest("hex");
      const files = (host: string): Record<string, string> => ({
        "/home/me/.docker/config.json": JSON.stringify({ currentContext: "colima" }),
        [`/home/me/.docker/contexts/meta/${digest("colima")}/meta.json`]: JSON.stringify({ Endpoints: { docker: { Host: host } } }),
      });
      const env = { HOME: "/home/me" };
      const socket = "/home/me/.colima/default/docker.sock";
      expect(resolveEndpoint(env, {}, () => true, (path) => files(`unix://${socket}`)[path])).toEqual({ kind: "unix", socketPath: socket, source: "docker context colima", engine: "Colima" });
      expect(resolveEndpoint(env, {}, () => true, (path) => files("ssh://me@box")[path])).toMatchObject({ socketPath: "/var/run/docker.sock" });
      expect(resolveEndpoint(env, {}, () => true, (path) => files("tcp://127.0.0.1:2375")[path])).toMatchObject({ kind: "tcp", host: "127.0.0.1", source: "docker context colima" });
    });
  });
});
