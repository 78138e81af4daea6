/**
 * The egress proxy of a local sandbox: one unix socket that speaks both an HTTP proxy
 * (absolute-form requests and CONNECT tunnels) and SOCKS5 (CONNECT, names resolved here: socks5h,
 * no authentication), told apart by the first byte (0x05 is SOCKS5). Every destination is
 * resolved here and decided on the address it resolved to (policy.ts), and the connection goes
 * to that address, never to a name resolved again later, so a DNS answer cannot change between
 * the decision and the connect.
 *
 * Once a destination is allowed, bytes flow through `pipe` both ways, which pauses a side whose
 * peer is not draining (backpressure) and forwards each end-of-stream (half-close). Only the
 * request head is buffered, up to MAX_HEAD bytes. An HTTP request is forwarded with
 * `Connection: close`: one request per proxied connection, which clients handle by opening the
 * next one (keep-alive to the proxy is not kept; CONNECT tunnels are unaffected).
 */
import { lookup } from "node:dns/promises";
import { createServer, connect, isIP, type Socket } from "node:net";
import { unlinkSync } from "node:fs";
import { listening } from "./listening";
import { decide, decideHostAlias, describeReason, HOST_ALIAS, isHostAlias, normalizeHost, parseAllowList, type BlockReason } from "./policy";

export { HOST_ALIAS, HOST_ALIAS_ADDRESS, proxyEnvironment } from "./environment";

export interface BlockedEvent {
  /** The destination as the client named it: a host name or an IP address. */
  host: string;
  port: number;
  /** The address it resolved to (the same as host for an IP; 127.0.0.1 for the host). */
  address: string;
  reason: BlockReason;
  /** The last one reported: more than MAX_REPORTED destinations were blocked, the rest are not. */
  more?: true;
}

/**
 * Blocked destinations reported, at most: a program that tries address after address must not
 * cost the host a line on the user's terminal, a line in a kept sandbox's log and a key in
 * this process for each. The one past it says so, and the rest go unsaid.
 */
export const MAX_REPORTED = 100;

export interface EgressProxyOptions {
  /**
   * Where clients connect: a unix socket made here (the bridge inside the sandbox dials it), or a
   * socket that already listens, e.g. one made in the sandbox's own network namespace (netns.ts).
   */
  listen: { socketPath: string } | { fd: number };
  /** --allow-net entries (parsed and validated here; a bad entry rejects). */
  allow: string[];
  /** Called once per blocked destination (host and port) over the proxy's life. */
  onBlocked?(event: BlockedEvent): void;
  /**
   * Opens the upstream connection once the policy allowed it; node:net's connect by default.
   * In-process tests pass one that records every address dialled, to show none leaves loopback.
   */
  dial?(address: string, port: number): Socket;
}

export interface EgressProxy {
  close(): Promise<void>;
}

const MAX_HEAD = 64 * 1024;
/**
 * Connections one sandbox's proxy holds at once (each two descriptors and some memory in this
 * process: the CLI's own for a one-shot run). More are closed as they arrive. Bun raises our
 * descriptor limit to the hard one (often 524288): without a bound, a program that opens
 * connections and holds them took that many, and the memory behind them, from the host.
 */
export const MAX_CONNECTIONS = 1024;
const CONNECT_TIMEOUT_MS = 30_000;

function hostPort(host: string, port: number): string {
  return `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}

/** The line a person reads about a blocked destination (the caller adds "sandboxes: "). */
export function formatBlocked(event: BlockedEvent): string {
  const destination = hostPort(event.host, event.port);
  const isLiteral = normalizeHost(event.host) === event.address;
  const why = event.reason === "host" || isLiteral
    ? describeReason(event.reason)
    : event.reason === "not-listed"
      ? `resolves to ${event.address}, ${describeReason(event.reason)}`
      : `resolves to ${event.address}, a ${describeReason(event.reason)}`;
  if (event.more) return `blocked ${destination} (${why}), and more than ${MAX_REPORTED} destinations in all: the rest are blocked without a line`;
  return `blocked ${destination} (${why}); allow it with --allow-net ${destination}`;
}

type Outcome =
  | { ok: true; socket: Socket }
  | { ok: false; kind: "blocked"; event: BlockedEvent }
  | { ok: false; kind: "unresolved" | "unreachable"; message: string };

/** node:fs's sync calls: node:fs/promises would be one more module for every run to load. */
function removeSocket(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* not there */
  }
}

export async function startEgressProxy(options: EgressProxyOptions): Promise<EgressProxy> {
  const allow = parseAllowList(options.allow);
  const reported = new Set<string>();
  const open = new Set<Socket>();
  const dial = options.dial ?? ((host: string, port: number) => connect({ host, port, allowHalfOpen: true }));

  async function resolve(host: string): Promise<string[]> {
    const name = normalizeHost(host);
    if (isIP(name)) return [name];
    const answers = await lookup(name, { all: true });
    return answers.map((answer) => answer.address);
  }

  /** Reports a destination the first time it is blocked. */
  function blocked(event: BlockedEvent): Outcome {
    const key = hostPort(event.host, event.port);
    if (!reported.has(key) && reported.size <= MAX_REPORTED) {
      reported.add(key);
      options.onBlocked?.(reported.size > MAX_REPORTED ? { ...event, more: true } : event);
    }
    return { ok: false, kind: "blocked", event };
  }

  /** Resolve, decide, connect: the one path every protocol takes. */
  async function reach(host: string, port: number): Promise<Outcome> {
    let allowed: string | undefined;
    if (isHostAlias(host)) {
      if (!decideHostAlias(allow, port).allowed) return blocked({ host: HOST_ALIAS, port, address: "127.0.0.1", reason: "host" });
      allowed = "127.0.0.1";
    } else {
      let addresses: string[];
      try {
        addresses = await resolve(host);
      } catch {
        addresses = [];
      }
      if (addresses.length === 0) return { ok: false, kind: "unresolved", message: `cannot resolve ${host}` };
      allowed = addresses.find((address) => decide(allow, host, port, address).allowed);
      if (allowed === undefined) {
        const first = decide(allow, host, port, addresses[0]!);
        return blocked({ host: normalizeHost(host), port, address: addresses[0]!, reason: first.allowed ? "not-listed" : first.reason });
      }
    }
    const address = allowed;
    return await new Promise<Outcome>((done) => {
      const upstream = dial(address, port);
      upstream.setTimeout(CONNECT_TIMEOUT_MS);
      const fail = (message: string) => {
        upstream.destroy();
        done({ ok: false, kind: "unreachable", message });
      };
      upstream.once("timeout", () => fail(`${hostPort(host, port)} did not answer`));
      upstream.once("error", (error: NodeJS.ErrnoException) => fail(`cannot connect to ${hostPort(host, port)}: ${error.code ?? error.message}`));
      upstream.once("connect", () => {
        upstream.setTimeout(0);
        upstream.removeAllListeners("error");
        upstream.removeAllListeners("timeout");
        // Until splice() takes over: an unhandled "error" event would end the whole proxy.
        upstream.on("error", () => upstream.destroy());
        done({ ok: true, socket: upstream });
      });
    });
  }

  function splice(client: Socket, upstream: Socket, leftover: Buffer): void {
    open.add(upstream);
    upstream.once("close", () => open.delete(upstream));
    const destroyBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", destroyBoth);
    upstream.on("error", destroyBoth);
    if (leftover.length > 0) upstream.write(leftover);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  function refuse(client: Socket, status: string, body: string): void {
    client.end(`HTTP/1.1 ${status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  }

  async function handleHttp(client: Socket, head: Buffer, leftover: Buffer): Promise<void> {
    const lines = head.toString("latin1").split("\r\n");
    const [method, target, version] = lines[0]!.split(" ");
    if (!method || !target || !version?.startsWith("HTTP/")) return refuse(client, "400 Bad Request", "sandboxes egress proxy: not an HTTP proxy request\n");
    let host: string;
    let port: number;
    let forwardHead: string | undefined;
    if (method === "CONNECT") {
      const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(target);
      if (!match) return refuse(client, "400 Bad Request", "sandboxes egress proxy: CONNECT needs host:port\n");
      host = match[1]!;
      port = Number(match[2]);
    } else {
      let url: URL;
      try {
        url = new URL(target);
      } catch {
        return refuse(client, "400 Bad Request", "sandboxes egress proxy: a proxied request needs an absolute http:// URL\n");
      }
      if (url.protocol !== "http:") return refuse(client, "400 Bad Request", `sandboxes egress proxy: cannot forward ${url.protocol} requests; use CONNECT\n`);
      host = url.hostname;
      port = url.port ? Number(url.port) : 80;
      const headers = lines.slice(1).filter((line) => line !== "" && !/^(proxy-[a-z-]*|connection|keep-alive)\s*:/i.test(line));
      if (!headers.some((line) => /^host\s*:/i.test(line))) headers.unshift(`Host: ${url.host}`);
      forwardHead = [`${method} ${url.pathname}${url.search} ${version}`, ...headers, "Connection: close", "", ""].join("\r\n");
    }
    if (port < 1 || port > 65535) return refuse(client, "400 Bad Request", "sandboxes egress proxy: the port must be 1 to 65535\n");
    const outcome = await reach(host, port);
    if (client.destroyed) {
      if (outcome.ok) outcome.socket.destroy();
      return;
    }
    if (!outcome.ok) {
      if (outcome.kind === "blocked") return refuse(client, "403 Forbidden", `sandboxes: ${formatBlocked(outcome.event)}\n`);
      return refuse(client, "502 Bad Gateway", `sandboxes egress proxy: ${outcome.message}\n`);
    }
    if (forwardHead === undefined) client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    else outcome.socket.write(forwardHead);
    splice(client, outcome.socket, leftover);
  }

  async function handleSocks(client: Socket, request: Buffer, leftover: Buffer): Promise<void> {
    // request: VER CMD RSV ATYP DST.ADDR DST.PORT (already complete, see socksRequestLength).
    const reply = (code: number) => Buffer.from([0x05, code, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
    if (request[1] !== 0x01) {
      client.end(reply(0x07));
      return;
    }
    const type = request[3];
    let host: string;
    if (type === 0x01) host = [...request.subarray(4, 8)].join(".");
    else if (type === 0x04) {
      const parts: string[] = [];
      for (let i = 4; i < 20; i += 2) parts.push(request.readUInt16BE(i).toString(16));
      // The URL parser writes the address in its short form (2001:db8::1), as people write it.
      host = new URL(`http://[${parts.join(":")}]/`).hostname.slice(1, -1);
    } else host = request.subarray(5, 5 + request[4]!).toString("latin1");
    const port = request.readUInt16BE(request.length - 2);
    const outcome = await reach(host, port);
    if (client.destroyed) {
      if (outcome.ok) outcome.socket.destroy();
      return;
    }
    if (!outcome.ok) {
      // 0x02: connection not allowed by ruleset; 0x04: host unreachable; 0x05: refused.
      client.end(reply(outcome.kind === "blocked" ? 0x02 : outcome.kind === "unresolved" ? 0x04 : 0x05));
      return;
    }
    client.write(reply(0x00));
    splice(client, outcome.socket, leftover);
  }

  function accept(client: Socket): void {
    open.add(client);
    client.once("close", () => open.delete(client));
    client.on("error", () => client.destroy());
    let buffered: Buffer = Buffer.alloc(0);
    let socksGreeted = false;
    // A client that ends before its request is whole never completes it: with allowHalfOpen its
    // socket would stay open, and count against MAX_CONNECTIONS, until the proxy closed.
    const endedEarly = () => client.destroy();
    client.once("end", endedEarly);
    const stop = () => {
      client.off("data", onData);
      client.off("end", endedEarly);
      client.pause();
    };
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      if (buffered[0] === 0x05) {
        if (!socksGreeted) {
          if (buffered.length < 2 || buffered.length < 2 + buffered[1]!) return;
          const methods = buffered.subarray(2, 2 + buffered[1]!);
          buffered = buffered.subarray(2 + buffered[1]!);
          if (!methods.includes(0x00)) {
            stop();
            client.end(Buffer.from([0x05, 0xff]));
            return;
          }
          socksGreeted = true;
          client.write(Buffer.from([0x05, 0x00]));
          if (buffered.length === 0) {
            // Keep 0x05 in front so the next chunk is still read as SOCKS.
            return;
          }
        }
        const length = socksRequestLength(buffered);
        if (length === undefined) {
          // A SOCKS5 request is at most 262 bytes: anything longer is not one.
          if (buffered.length > 262) client.destroy();
          return;
        }
        stop();
        if (length === -1) {
          client.end(Buffer.from([0x05, 0x08, 0x00, 0x01, 0, 0, 0, 0, 0, 0]));
          return;
        }
        void handleSocks(client, buffered.subarray(0, length), buffered.subarray(length));
        return;
      }
      if (socksGreeted) {
        // After the greeting the request must start with 0x05 too.
        stop();
        client.destroy();
        return;
      }
      const end = buffered.indexOf("\r\n\r\n");
      if (end === -1 ? buffered.length > MAX_HEAD : end > MAX_HEAD) {
        stop();
        return refuse(client, "431 Request Header Fields Too Large", "sandboxes egress proxy: request head too large\n");
      }
      if (end === -1) return;
      stop();
      void handleHttp(client, buffered.subarray(0, end + 4), buffered.subarray(end + 4));
    };
    client.on("data", onData);
  }

  const server = createServer({ allowHalfOpen: true }, accept);
  server.maxConnections = MAX_CONNECTIONS;
  const { listen } = options;
  const socketPath = "socketPath" in listen ? listen.socketPath : undefined;
  if (socketPath) removeSocket(socketPath);
  // As root the sandbox's bridge runs as the sandbox's own uid, so the socket is 0666 (its
  // directory guards it): made so by the umask, not chmod'ed after, since chmod follows a link
  // and the directory is one the sandbox can see.
  const umask = socketPath ? process.umask(0o111) : undefined;
  try {
    await listening(server, (done) => ("fd" in listen ? server.listen({ fd: listen.fd }, done) : server.listen(listen.socketPath, done)));
  } finally {
    if (umask !== undefined) process.umask(umask);
  }
  return {
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of open) socket.destroy();
      await closed;
      if (socketPath) removeSocket(socketPath);
    },
  };
}

/** The byte length of a complete SOCKS5 request at the start of `buffer`, undefined if it is not all here yet, -1 for an unknown address type. */
function socksRequestLength(buffer: Buffer): number | undefined {
  if (buffer.length < 5) return undefined;
  const type = buffer[3];
  const length = type === 0x01 ? 10 : type === 0x04 ? 22 : type === 0x03 ? 7 + buffer[4]! : -1;
  if (length === -1) return -1;
  return buffer.length >= length ? length : undefined;
}
