/**
 * The sandbox's end of the egress path: a TCP listener on the sandbox's own 127.0.0.1 that pipes
 * each connection to the proxy's unix socket, which the sandbox sees through a bind mount (its
 * network namespace has no route to the host). Both directions are piped with backpressure, and
 * each side's end-of-stream is forwarded (half-close), so a client that shuts down its sending
 * side still gets the rest of the answer.
 */
import { createServer, connect, type Server, type Socket } from "node:net";
import { listening } from "./listening";

export interface Bridge {
  /** The port actually listened on (useful when 0 was asked for). */
  port: number;
  close(): Promise<void>;
}

/** Where the bridge listens: a port (of 127.0.0.1 unless host says otherwise) or a socket that already listens. */
export type BridgeListen = { port: number; host?: string } | { fd: number };

export async function startBridge(options: BridgeListen & { socketPath: string }): Promise<Bridge> {
  const open = new Set<Socket>();
  const track = (socket: Socket) => {
    open.add(socket);
    socket.once("close", () => open.delete(socket));
  };
  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    track(client);
    const upstream = connect({ path: options.socketPath, allowHalfOpen: true });
    track(upstream);
    const destroyBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", destroyBoth);
    upstream.on("error", destroyBoth);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await listening(server, (done) => ("fd" in options ? server.listen({ fd: options.fd }, done) : server.listen(options.port, options.host ?? "127.0.0.1", done)));
  const address = server.address();
  return {
    port: typeof address === "object" && address ? address.port : "port" in options ? options.port : 0,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of open) socket.destroy();
      await closed;
    },
  };
}
