/**
 * The modal SDK (0.11) closes a sandbox's command-router channel on `detach()`, but its
 * control-plane channel is created inside `ModalClient` and never exposed or closed. We note
 * every gRPC channel that carries a call (through grpc-js's Channel, which nice-grpc, the SDK's
 * transport, re-exports) and close them when the last Modal provider of the process closes.
 */
type Closable = { close(): void };

const opened = new Set<Closable>();
let users = 0;
let patched = false;

export async function trackChannels(): Promise<void> {
  users++;
  if (patched) return;
  patched = true;
  const { Channel } = await import("nice-grpc");
  const prototype = Channel.prototype as unknown as { createCall: (...args: unknown[]) => unknown };
  const createCall = prototype.createCall;
  prototype.createCall = function (this: Closable, ...args: unknown[]) {
    opened.add(this);
    return createCall.apply(this, args);
  };
}

export function releaseChannels(): void {
  users = Math.max(0, users - 1);
  if (users > 0) return;
  for (const channel of opened) {
    try {
      channel.close();
    } catch {
      // Already closed.
    }
  }
  opened.clear();
}
