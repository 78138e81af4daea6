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
 * setns needs CAP_SYS_ADMIN in our own user namespace as well as the target's, so in an ordinary
 * user's sandbox (and util-linux's) the listener is made inside, by sandbox-start, which then
 * becomes the program (sandbox-start.c), and handed over to this process (takeListener): the
 * proxy then accepts from the sandbox's loopback as root's does. Where the handover cannot be
 * made, a bridge inside connects to the proxy's unix socket on the host: listenOnUnixSocket.
 * libc.ts loads bun:ffi on first use.
 */
import { type Libc, loadedLibc, loadLibc } from "./libc";

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
  // Any event counts: an error on the socket is for the proxy to meet and report.
  return readable(libc, fd, 0);
}

/** Waits up to `timeoutMs` for `fd` to be readable (or to fail); false on a timeout or a signal. */
function readable(c: Libc, fd: number, timeoutMs: number): boolean {
  // struct pollfd: int fd; short events; short revents.
  const entry = new Uint8Array(8);
  const view = new DataView(entry.buffer);
  view.setInt32(0, fd, true);
  view.setInt16(4, POLLIN, true);
  return c.poll(entry, 1, timeoutMs) > 0;
}

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const SO_ACCEPTCONN = 30;
const SOCK_CLOEXEC = 0o2000000;
const EINTR = 4;
/** The same numbers on every Linux architecture we build for (the generic table's, since 5.3). */
const SYS_PIDFD_OPEN = 434;
const SYS_PIDFD_GETFD = 438;
/**
 * How long one wait for the handover blocks this thread before the event loop gets a turn (to see
 * the sandbox end, or a signal, which also ends the wait at once). sandbox-start connects within a
 * few milliseconds of the sandbox's start; each turn given meanwhile would delay the answer.
 */
const HANDOVER_SLICE_MS = 50;

/**
 * The handover of a listener made inside a sandbox (sandbox-start.c): the sandbox's first
 * program, sandbox-start, listens on the sandbox's loopback, connects to `unixListener` (the
 * proxy's unix socket: the first connection from inside is sandbox-start's, nothing else runs
 * there yet), names that listener's descriptor, and waits for one byte. This process takes a
 * copy of it (pidfd_getfd, Linux 5.6+: sandbox-start is our own descendant, which ptrace's
 * rules, Yama's included, let us reach; its pid is ours to name through SO_PEERCRED), then
 * answers "1": sandbox-start closes its own and becomes the program, and the proxy here accepts from
 * the sandbox's loopback with no process inside between (as root's, listenInNamespace). Without
 * `take`, or where the copy fails (an older kernel, a stricter ptrace policy), it answers "0" and
 * sandbox-start leaves the bridge's waiter, which connects here for each connection.
 *
 * Only a process below `wrapper` (the sandbox's bwrap, or util-linux's first wrapper) takes part:
 * a connection from anyone else (the socket is 0666, in a directory of ours, or of its own in
 * /tmp when that path is too long) is closed unanswered, and the wait goes on.
 *
 * Blocks this thread in slices while it waits (sandbox-start connects within milliseconds of its start,
 * and a turn of the event loop between slices sees `ended`, the sandbox gone first). Returns the
 * listener, or undefined when it stays inside (or the sandbox ended first).
 */
export async function takeListener(unixListener: number, wrapper: number, take: boolean, ended: () => boolean): Promise<number | undefined> {
  const c = await loadLibc();
  const { statFields } = await import("./holder");
  let connection = -1;
  let peer: number | undefined;
  while (connection < 0) {
    while (!readable(c, unixListener, HANDOVER_SLICE_MS)) {
      if (ended()) return undefined;
      await Bun.sleep(0);
    }
    connection = c.accept4(unixListener, SOCK_CLOEXEC);
    // Out of descriptors, say: no handover. sandbox-start's connection stays queued for the proxy,
    // whose answer is no "0" or "1": sandbox-start stops the run (125).
    if (connection < 0) return undefined;
    peer = peerPid(c, connection);
    if (peer !== undefined && below(peer, wrapper, statFields)) break;
    c.close(connection);
    connection = -1;
  }
  let taken: number | undefined;
  try {
    const named = await readLine(c, connection, ended);
    if (take && named !== undefined) taken = copyListener(c, peer!, named);
    c.write(connection, new TextEncoder().encode(taken !== undefined ? "1" : "0"), 1);
    return taken;
  } finally {
    c.close(connection);
  }
}

/** The descriptor number sandbox-start sends ("N\n"), or undefined if it sends something else. */
async function readLine(c: Libc, fd: number, ended: () => boolean): Promise<number | undefined> {
  const buffer = new Uint8Array(16);
  let text = "";
  while (!text.includes("\n")) {
    if (!readable(c, fd, HANDOVER_SLICE_MS)) {
      if (ended()) return undefined;
      await Bun.sleep(0);
      continue;
    }
    const count = c.read(fd, buffer, buffer.length);
    if (count < 0 && c.errno() === EINTR) continue;
    if (count <= 0 || text.length > 16) return undefined;
    text += new TextDecoder().decode(buffer.subarray(0, count));
  }
  return /^\d+\n$/.test(text) ? Number(text.trim()) : undefined;
}

/** The pid of the process at the other end of a unix socket's `connection`, as our pid namespace sees it. */
function peerPid(c: Libc, connection: number): number | undefined {
  // struct ucred: pid, uid, gid.
  const credentials = new Uint8Array(12);
  const length = new Uint8Array(4);
  new DataView(length.buffer).setUint32(0, credentials.length, true);
  if (c.getsockopt(connection, SOL_SOCKET, SO_PEERCRED, credentials, length) !== 0) return undefined;
  const pid = new DataView(credentials.buffer).getInt32(0, true);
  return pid > 0 ? pid : undefined;
}

/** Whether `pid` runs below `ancestor` (a few levels down at most: the sandbox's wrappers). */
function below(pid: number, ancestor: number, statFields: (pid: number) => string[] | undefined): boolean {
  for (let level = 0, current = pid; level < 8; level++) {
    const parent = Number(statFields(current)?.[1]);
    if (!parent) return false;
    if (parent === ancestor) return true;
    current = parent;
  }
  return false;
}

/** Our copy of descriptor `number` of process `pid`, if it is a listening socket. */
function copyListener(c: Libc, pid: number, number: number): number | undefined {
  const pidfd = c.syscall(SYS_PIDFD_OPEN, pid, 0, 0);
  if (pidfd < 0) return undefined;
  try {
    const copy = c.syscall(SYS_PIDFD_GETFD, pidfd, number, 0);
    if (copy < 0) return undefined;
    const accepting = new Uint8Array(4);
    const length = new Uint8Array(4);
    new DataView(length.buffer).setUint32(0, accepting.length, true);
    if (c.getsockopt(copy, SOL_SOCKET, SO_ACCEPTCONN, accepting, length) === 0 && new DataView(accepting.buffer).getInt32(0, true) === 1) return copy;
    c.close(copy);
    return undefined;
  } finally {
    c.close(pidfd);
  }
}
