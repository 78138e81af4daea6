/**
 * The listening sockets a one-shot sandbox's egress proxy takes over, made by this process
 * before the proxy loads (node:net is a good part of a run's start-up), so that the program
 * starts at once: the kernel queues its first connections until the proxy, started on the first
 * one (connectionWaiting), accepts them.
 *
 * As root, a one-shot sandbox needs no egress bridge inside it: this process steps into the
 * sandbox's network namespace (setns, main thread only), makes a TCP socket there, and steps back.
 * A socket belongs to the namespace it was made in, so the sandbox's programs connect to it on
 * their own loopback while the egress proxy, here, accepts from it: no process, no unix socket
 * and no exec between them. (Rootless Podman's pasta and slirp4netns do the same from a helper.)
 *
 * setns needs CAP_SYS_ADMIN in our own user namespace as well as the target's, so an ordinary
 * user's sandbox (and util-linux's) keeps its bridge inside (isolation.ts), which connects to the
 * proxy's unix socket on the host: listenOnUnixSocket. libc.ts loads bun:ffi on first use.
 */
import { loadedLibc, loadLibc } from "./libc";

const CLONE_NEWNET = 0x40000000;
const AF_UNIX = 1;
const AF_INET = 2;
const SOCK_STREAM_CLOEXEC = 1 | 0o2000000;
/** sockaddr_un's sun_path: 108 bytes, the last one the path's terminating NUL. */
const UNIX_PATH_MAX = 107;

/**
 * A listening socket (close-on-exec) on `port` of the network namespace of `pid` (a child of
 * `parent`), whose only interface is its loopback.
 * Synchronous from the first setns to the last, so no other code of ours runs in the sandbox's
 * namespace. Throws with the failing step and errno.
 */
export async function listenInNamespace(pid: number, parent: number, port: number): Promise<number> {
  const c = await loadLibc();
  const [{ closeSync, openSync }, { statFields }] = await Promise.all([import("node:fs"), import("./holder")]);
  const own = openSync("/proc/thread-self/ns/net", "r");
  let target: number | undefined;
  let socket = -1;
  let entered = false;
  const fail = (step: string): never => {
    throw new Error(`${step} failed (errno ${c.errno()})`);
  };
  try {
    target = openSync(`/proc/${pid}/ns/net`, "r");
    // Still the sandbox's process (a child of `parent`) once its namespace is held open: a pid
    // freed and taken again meanwhile would otherwise lead into someone else's namespace.
    if (Number(statFields(pid)?.[1]) !== parent) throw new Error(`process ${pid} is no longer the sandbox's`);
    if (c.setns(target, CLONE_NEWNET) !== 0) fail("setns into the sandbox's network namespace");
    entered = true;
    socket = c.socket(AF_INET, SOCK_STREAM_CLOEXEC, 0);
    if (socket < 0) fail("socket");
    // struct sockaddr_in: family (host order), port (network order), 0.0.0.0, zero padding. Any
    // address: the namespace has only its loopback, which bwrap may not have brought up yet
    // (binding 127.0.0.1 then fails with EADDRNOTAVAIL); the program reaches it on 127.0.0.1.
    const address = new Uint8Array(16);
    new DataView(address.buffer).setUint16(0, AF_INET, true);
    new DataView(address.buffer).setUint16(2, port, false);
    if (c.bind(socket, address, address.length) !== 0) fail(`bind port ${port}`);
    if (c.listen(socket, 4096) !== 0) fail("listen");
    const listening = socket;
    socket = -1;
    return listening;
  } finally {
    if (socket >= 0) c.close(socket);
    // Back home before anything else runs: a failure here would leave this process elsewhere.
    if (entered && c.setns(own, CLONE_NEWNET) !== 0) {
      process.stderr.write("sandboxes: cannot return to the host's network namespace\n");
      process.exit(125);
    }
    if (target !== undefined) closeSync(target);
    closeSync(own);
  }
}

/**
 * A listening unix socket (close-on-exec) at `path`, where a sandbox's egress bridge connects:
 * mode 0666, as the proxy's own (proxy.ts), for a bridge that runs as the sandbox's uid as root;
 * the directory it is in guards it. A socket left at `path` is replaced. Throws with the failing
 * step and errno.
 */
export async function listenOnUnixSocket(path: string): Promise<number> {
  const c = await loadLibc();
  const { chmodSync, rmSync } = await import("node:fs");
  const name = new TextEncoder().encode(path);
  if (name.length > UNIX_PATH_MAX) throw new Error(`the egress socket's path is too long for a unix socket: ${path}`);
  rmSync(path, { force: true });
  const socket = c.socket(AF_UNIX, SOCK_STREAM_CLOEXEC, 0);
  if (socket < 0) throw new Error(`socket failed (errno ${c.errno()})`);
  try {
    // struct sockaddr_un: family (host order), then the path, NUL-terminated.
    const address = new Uint8Array(2 + name.length + 1);
    new DataView(address.buffer).setUint16(0, AF_UNIX, true);
    address.set(name, 2);
    if (c.bind(socket, address, address.length) !== 0) throw new Error(`bind ${path} failed (errno ${c.errno()})`);
    chmodSync(path, 0o666);
    if (c.listen(socket, 4096) !== 0) throw new Error(`listen failed (errno ${c.errno()})`);
    return socket;
  } catch (error) {
    c.close(socket);
    rmSync(path, { force: true });
    throw error;
  }
}

const POLLIN = 1;

/**
 * Whether a connection waits on the listening socket `fd`, without accepting it (poll, no
 * wait). So the egress proxy, and node:net under it, need only load for a program that uses the
 * network; the kernel keeps the connection queued until the proxy accepts it.
 */
export function connectionWaiting(fd: number): boolean {
  const libc = loadedLibc();
  if (!libc) throw new Error("bug: connectionWaiting before the listener was made");
  // struct pollfd: int fd; short events; short revents.
  const entry = new Uint8Array(8);
  const view = new DataView(entry.buffer);
  view.setInt32(0, fd, true);
  view.setInt16(4, POLLIN, true);
  // Any event counts: an error on the socket is for the proxy to meet and report.
  return libc.poll(entry, 1, 0) > 0;
}
