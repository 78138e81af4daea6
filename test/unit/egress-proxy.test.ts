/**
 * The egress proxy in-process, on a unix socket, with its upstream on this machine's loopback
 * (opened by explicit entries, as a sandbox would open it): protocol edges that real clients do
 * not reach. Blocked destinations are never connected to: every address the proxy dials is
 * recorded, and the file ends by checking that all of them were this machine's loopback (the
 * other addresses here are only decided on, never dialled). All of it runs in a network namespace
 * of its own whose lo carries those addresses (testInOwnNetwork).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatBlocked, MAX_CONNECTIONS, MAX_REPORTED, startEgressProxy, type BlockedEvent, type EgressProxy } from "../../src/providers/local/egress/proxy";
import { testInOwnNetwork } from "../fakes/netns";

testInOwnNetwork(import.meta.path, ["203.0.113.0/24", "10.0.0.5/32", "169.254.77.77/32"], () => {
  const dir = mkdtempSync(join(tmpdir(), "sandboxes-egress-unit-"));
  let upstream: ReturnType<typeof Bun.serve>;
  let proxy: EgressProxy;
  const blocked: BlockedEvent[] = [];
  const dialled: string[] = [];
  const seen: Array<{ method: string; path: string; headers: Record<string, string>; body: string }> = [];

  beforeAll(async () => {
    upstream = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(request) {
        const url = new URL(request.url);
        seen.push({ method: request.method, path: url.pathname + url.search, headers: Object.fromEntries(request.headers), body: await request.text() });
        return new Response(`upstream saw ${request.method} ${url.pathname}\n`);
      },
    });
    proxy = await startEgressProxy({
      listen: { socketPath: join(dir, "proxy.sock") },
      allow: [`127.0.0.1:${upstream.port}`, `host.sandboxes.internal:${upstream.port}`, "203.0.113.0/24"],
      onBlocked: (event) => blocked.push(event),
      dial(address, port) {
        dialled.push(address);
        if (address !== "127.0.0.1") throw new Error(`the test proxy was asked to dial ${address}:${port}; only loopback is allowed`);
        return connect({ host: address, port, allowHalfOpen: true });
      },
    });
  });

  afterAll(async () => {
    // The network rule, checked: nothing but this machine's loopback was ever dialled.
    expect(dialled.length).toBeGreaterThan(0);
    expect(dialled.filter((address) => address !== "127.0.0.1")).toEqual([]);
    await proxy.close();
    upstream.stop(true);
    rmSync(dir, { recursive: true, force: true });
  });

  /** Sends bytes, half-closes or not, and collects everything until the proxy closes. */
  async function exchange(chunks: Array<Uint8Array | string>, options: { end?: boolean } = {}): Promise<Buffer> {
    const socket: Socket = connect({ path: join(dir, "proxy.sock") });
    const received: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => received.push(chunk));
    const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
    for (const chunk of chunks) socket.write(chunk);
    if (options.end) socket.end();
    await closed;
    return Buffer.concat(received);
  }

  describe("HTTP", () => {
    test("an absolute-form POST reaches the upstream in origin form, body intact, proxy headers gone", async () => {
      const body = "x".repeat(100_000);
      const reply = await exchange([
        `POST http://127.0.0.1:${upstream.port}/submit?a=1 HTTP/1.1\r\nHost: 127.0.0.1:${upstream.port}\r\nProxy-Connection: keep-alive\r\nProxy-Authorization: Basic eDp5\r\nContent-Length: ${body.length}\r\n\r\n`,
        body,
      ]);
      expect(reply.toString()).toStartWith("HTTP/1.1 200");
      expect(reply.toString()).toEndWith("upstream saw POST /submit\n");
      const request = seen.at(-1)!;
      expect(request).toMatchObject({ method: "POST", path: "/submit?a=1", body });
      expect(request.headers["proxy-connection"]).toBeUndefined();
      expect(request.headers["proxy-authorization"]).toBeUndefined();
      expect(request.headers.connection).toBe("close");
    });

    test("a CONNECT tunnel carries bytes both ways", async () => {
      const reply = await exchange([`CONNECT 127.0.0.1:${upstream.port} HTTP/1.1\r\nHost: 127.0.0.1:${upstream.port}\r\n\r\n`, "GET /tunnel HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]);
      expect(reply.toString()).toStartWith("HTTP/1.1 200 Connection Established\r\n\r\nHTTP/1.1 200");
      expect(reply.toString()).toEndWith("upstream saw GET /tunnel\n");
    });

    test("the host alias (by name or by its address) reaches the host's loopback when listed", async () => {
      for (const name of ["host.sandboxes.internal", "169.254.77.77"]) {
        const reply = await exchange([`GET http://${name}:${upstream.port}/alias HTTP/1.1\r\nHost: ${name}\r\n\r\n`]);
        expect(reply.toString()).toEndWith("upstream saw GET /alias\n");
      }
    });

    test("blocked destinations get 403 and the line; each is reported once", async () => {
      const first = await exchange([`GET http://127.0.0.1:9/ HTTP/1.1\r\nHost: x\r\n\r\n`]);
      const again = await exchange([`CONNECT 127.0.0.1:9 HTTP/1.1\r\n\r\n`]);
      const host = await exchange([`GET http://host.sandboxes.internal:22/ HTTP/1.1\r\nHost: x\r\n\r\n`]);
      for (const reply of [first, again]) {
        expect(reply.toString()).toStartWith("HTTP/1.1 403 Forbidden\r\n");
        expect(reply.toString()).toEndWith("\r\n\r\nsandboxes: blocked 127.0.0.1:9 (loopback address); allow it with --allow-net 127.0.0.1:9\n");
      }
      expect(host.toString()).toEndWith("sandboxes: blocked host.sandboxes.internal:22 (the host); allow it with --allow-net host.sandboxes.internal:22\n");
      expect(blocked.filter((event) => event.port === 9)).toEqual([{ host: "127.0.0.1", port: 9, address: "127.0.0.1", reason: "loopback" }]);
      expect(blocked.filter((event) => event.port === 22)).toEqual([{ host: "host.sandboxes.internal", port: 22, address: "127.0.0.1", reason: "host" }]);
    });

    test("requests a proxy cannot forward get 400 naming why", async () => {
      expect((await exchange(["GET / HTTP/1.1\r\nHost: x\r\n\r\n"])).toString()).toContain("400 Bad Request");
      expect((await exchange(["GET https://example.com/ HTTP/1.1\r\n\r\n"])).toString()).toEndWith("cannot forward https: requests; use CONNECT\n");
      expect((await exchange(["CONNECT example.com HTTP/1.1\r\n\r\n"])).toString()).toEndWith("CONNECT needs host:port\n");
    });

    test("a request head over 64 KiB is refused, not buffered on", async () => {
      const reply = await exchange([`GET http://127.0.0.1:${upstream.port}/ HTTP/1.1\r\nX-Big: ${"y".repeat(70_000)}`]);
      expect(reply.toString()).toStartWith("HTTP/1.1 431 ");
    });
  });

  describe("capacity", () => {
    test(`at most ${MAX_REPORTED} blocked destinations are reported; the one past says so; every one is still refused`, async () => {
      const events: BlockedEvent[] = [];
      const socketPath = join(dir, "reports.sock");
      const own = await startEgressProxy({ listen: { socketPath }, allow: [], onBlocked: (event) => events.push(event), dial: () => { throw new Error("nothing here is dialled"); } });
      try {
        const ask = async (port: number) => {
          const socket: Socket = connect({ path: socketPath });
          const received: Buffer[] = [];
          socket.on("data", (chunk: Buffer) => received.push(chunk));
          const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
          socket.write(`GET http://127.0.0.1:${port}/ HTTP/1.1\r\nHost: x\r\n\r\n`);
          await closed;
          return Buffer.concat(received).toString();
        };
        for (let port = 1; port <= MAX_REPORTED + 50; port++) expect(await ask(port)).toStartWith("HTTP/1.1 403 Forbidden\r\n");
        expect(events).toHaveLength(MAX_REPORTED + 1);
        expect(events.slice(0, MAX_REPORTED).every((event) => event.more === undefined)).toBe(true);
        const last = events.at(-1)!;
        expect(last).toEqual({ host: "127.0.0.1", port: MAX_REPORTED + 1, address: "127.0.0.1", reason: "loopback", more: true });
        expect(formatBlocked(last)).toBe(`blocked 127.0.0.1:${MAX_REPORTED + 1} (loopback address), and more than ${MAX_REPORTED} destinations in all: the rest are blocked without a line`);
      } finally {
        await own.close();
      }
    });

    test(`at most ${MAX_CONNECTIONS} connections at once: the next is closed unanswered, and one closed makes room`, async () => {
      const open = async () => {
        const socket: Socket = connect({ path: join(dir, "proxy.sock") });
        await new Promise<void>((resolve, reject) => socket.once("connect", () => resolve()).once("error", reject));
        return socket;
      };
      /** A request on a new connection: what came back before the proxy closed it. */
      const ask = async () => {
        const socket: Socket = connect({ path: join(dir, "proxy.sock") });
        const received: Buffer[] = [];
        socket.on("data", (chunk: Buffer) => received.push(chunk));
        socket.on("error", () => {}); // closed before the request is written: EPIPE
        const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
        socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        await closed;
        return Buffer.concat(received).toString();
      };
      const held: Socket[] = [];
      try {
        for (let i = 0; i < MAX_CONNECTIONS; i++) held.push(await open());
        expect(await ask()).toBe("");
        // The ones held are untouched.
        expect(held.every((socket) => !socket.destroyed && socket.readyState === "open")).toBe(true);
        const one = held.pop()!;
        const gone = new Promise((resolve) => one.once("close", resolve));
        one.destroy();
        await gone;
        await Bun.sleep(50); // the proxy sees the close
        expect(await ask()).toContain("400 Bad Request");
      } finally {
        for (const socket of held) socket.destroy();
        await Bun.sleep(50);
      }
    }, 30_000);
  });

  describe("SOCKS5", () => {
    const greeting = Uint8Array.of(0x05, 0x01, 0x00);
    const connectTo = (address: number[], port: number) => Uint8Array.of(0x05, 0x01, 0x00, 0x01, ...address, port >> 8, port & 0xff);

    test("CONNECT to an allowed address: success reply, then the tunnel", async () => {
      const reply = await exchange([greeting, connectTo([127, 0, 0, 1], upstream.port!), "GET /socks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]);
      expect([...reply.subarray(0, 4)]).toEqual([0x05, 0x00, 0x05, 0x00]);
      expect(reply.toString()).toEndWith("upstream saw GET /socks\n");
    });

    test("a domain name is resolved by the proxy (socks5h)", async () => {
      const name = Buffer.from("host.sandboxes.internal");
      const request = Uint8Array.of(0x05, 0x01, 0x00, 0x03, name.length, ...name, upstream.port! >> 8, upstream.port! & 0xff);
      const reply = await exchange([Buffer.concat([greeting, request]), "GET /named HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]);
      expect([...reply.subarray(0, 4)]).toEqual([0x05, 0x00, 0x05, 0x00]);
      expect(reply.toString()).toEndWith("upstream saw GET /named\n");
    });

    test("a blocked destination gets reply 2 (not allowed by ruleset)", async () => {
      const reply = await exchange([greeting, connectTo([10, 0, 0, 5], 5432)]);
      expect([...reply]).toEqual([0x05, 0x00, 0x05, 0x02, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
      expect(blocked.some((event) => event.host === "10.0.0.5" && event.reason === "private")).toBe(true);
    });

    test("an IPv6 destination is reported in its short form", async () => {
      const address = [0xfd, 0, ...Array(13).fill(0), 1];
      const reply = await exchange([greeting, Uint8Array.of(0x05, 0x01, 0x00, 0x04, ...address, 0, 80)]);
      expect(reply[3]).toBe(0x02);
      expect(blocked.some((event) => event.host === "fd00::1" && event.reason === "private")).toBe(true);
    });

    test("no acceptable method, an unsupported command and an unknown address type are refused", async () => {
      expect([...(await exchange([Uint8Array.of(0x05, 0x01, 0x02)]))]).toEqual([0x05, 0xff]);
      expect((await exchange([greeting, Uint8Array.of(0x05, 0x02, 0x00, 0x01, 127, 0, 0, 1, 0, 80)]))[3]).toBe(0x07);
      expect((await exchange([greeting, Uint8Array.of(0x05, 0x01, 0x00, 0x09, 0, 0)]))[3]).toBe(0x08);
    });
  });
});
