/**
 * The listeners a one-shot run's egress proxy takes over (src/providers/local/listeners.ts).
 * listenInNamespace: a listening socket made by this process in another process's network
 * namespace, which a root one-shot run uses as its sandbox's egress port. Root only (setns needs
 * CAP_SYS_ADMIN); the namespaces are made here with `unshare --net`, and nothing is ever sent:
 * the test only looks at /proc/PID/net/tcp and connects inside. listenOnUnixSocket: the proxy's
 * unix socket where an ordinary user's bridge connects, for anyone. takeListener: the handover of
 * a listener made inside a sandbox, here by a few lines of perl that play the sandbox's side of it
 * (isolation.ts's LAZY_BRIDGE, whose own lines the e2e tests run), in a user and network
 * namespace of their own, connecting only on their own loopback.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { closeSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectionWaiting, listenInNamespace, listenOnUnixSocket, takeListener } from "../../src/providers/local/listeners";

const isRoot = process.getuid?.() === 0;
const children: Array<ReturnType<typeof Bun.spawn>> = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL");
});

/**
 * A process in a network namespace of its own, and the pid of its parent (unshare). Its loopback
 * is up, or with `loUp` false, down until a line arrives on its stdin (as bwrap brings it up only
 * once the sandbox's first process runs).
 */
async function namespaced(loUp = true): Promise<{ pid: number; parent: number; child: ReturnType<typeof Bun.spawn> }> {
  const script = loUp ? "ip link set lo up; echo ready; exec sleep 60" : "echo ready; read -r _; ip link set lo up; echo up; exec sleep 60";
  const child = Bun.spawn(["unshare", "--net", "sh", "-c", script], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  children.push(child);
  const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
  await reader.read();
  reader.releaseLock();
  // unshare without --fork execs sh in the new namespace: the same process.
  const parent = Number(readFileSync(`/proc/${child.pid}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
  return { pid: child.pid, parent, child };
}

/** PORT in LISTEN (state 0A) on any address (the namespace has only its loopback) in the namespace of `pid`, as /proc shows it. */
function listensIn(pid: number, port: number): boolean {
  const local = `00000000:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return readFileSync(`/proc/${pid}/net/tcp`, "utf8").split("\n").some((line) => line.includes(`${local} 00000000:0000 0A`));
}

describe.skipIf(!isRoot)("listenInNamespace (root)", () => {
  test("the socket listens in the other namespace, not in ours, and a program there can connect to it", async () => {
    const { pid, parent } = await namespaced();
    const port = 39127;
    const ours = readlinkSync("/proc/thread-self/ns/net");
    expect(readlinkSync(`/proc/${pid}/ns/net`)).not.toBe(ours);
    const fd = await listenInNamespace(pid, parent, port);
    try {
      expect(listensIn(pid, port)).toBe(true);
      expect(listensIn(process.pid, port)).toBe(false);
      // A connection from inside the namespace completes against our listener's queue.
      const probe = Bun.spawnSync(["nsenter", "-t", String(pid), "-n", "perl", "-MIO::Socket::INET", "-e", `IO::Socket::INET->new(PeerAddr => "127.0.0.1:${port}") or exit 1`]);
      expect(probe.exitCode).toBe(0);
      // And this thread is back in its own namespace.
      expect(readlinkSync("/proc/thread-self/ns/net")).toBe(ours);
    } finally {
      closeSync(fd);
    }
  });

  test("made while the namespace's loopback is still down (bwrap brings it up later): it listens, and once the loopback is up a program connects", async () => {
    const { pid, parent, child } = await namespaced(false);
    const port = 39130;
    expect(readFileSync(`/proc/${pid}/net/dev`, "utf8")).toContain("lo:");
    const fd = await listenInNamespace(pid, parent, port);
    try {
      expect(listensIn(pid, port)).toBe(true);
      const stdin = child.stdin as import("bun").FileSink;
      stdin.write("go\n");
      await stdin.flush();
      const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
      expect(new TextDecoder().decode((await reader.read()).value)).toBe("up\n");
      reader.releaseLock();
      const probe = Bun.spawnSync(["nsenter", "-t", String(pid), "-n", "perl", "-MIO::Socket::INET", "-e", `IO::Socket::INET->new(PeerAddr => "127.0.0.1:${port}") or exit 1`]);
      expect(probe.exitCode).toBe(0);
    } finally {
      closeSync(fd);
    }
  });

  test("a pid that is not the expected parent's child is refused before anything is made", async () => {
    const { pid } = await namespaced();
    await expect(listenInNamespace(pid, 1, 39128)).rejects.toThrow(`process ${pid} is no longer the sandbox's`);
    expect(listensIn(pid, 39128)).toBe(false);
  });

  test("a process that is gone is an error", async () => {
    const { pid, parent } = await namespaced();
    children.splice(0).forEach((child) => child.kill("SIGKILL"));
    await Bun.sleep(50);
    await expect(listenInNamespace(pid, parent, 39129)).rejects.toThrow();
  });
});

/** Directories made for one test, removed after it. */
const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});
const dir = () => {
  const made = mkdtempSync(join(tmpdir(), "sandboxes-listener-"));
  dirs.push(made);
  return made;
};

describe("listenOnUnixSocket", () => {

  test("listens at the path (mode 0666, close-on-exec); a connection waits, unaccepted, until someone accepts it", async () => {
    const path = join(dir(), "egress.sock");
    const fd = await listenOnUnixSocket(path);
    try {
      expect(statSync(path).isSocket()).toBe(true);
      expect(statSync(path).mode & 0o777).toBe(0o666);
      const flags = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"))?.[1];
      expect(parseInt(flags!, 8) & 0o2000000).toBe(0o2000000);
      expect(connectionWaiting(fd)).toBe(false);
      const client = await Bun.connect({ unix: path, socket: { data() {} } });
      try {
        // The kernel completes the connection into the listener's queue: nobody accepted it.
        expect(await waitFor(() => connectionWaiting(fd))).toBe(true);
      } finally {
        client.end();
      }
    } finally {
      closeSync(fd);
    }
  });

  test("a file left at the path is replaced", async () => {
    const path = join(dir(), "egress.sock");
    writeFileSync(path, "stale");
    const fd = await listenOnUnixSocket(path);
    closeSync(fd);
    expect(statSync(path).isSocket()).toBe(true);
  });

  test("a path too long for a unix socket, or in a directory that is not there, is an error that says so, and leaves nothing open", async () => {
    const before = descriptors();
    await expect(listenOnUnixSocket(join(dir(), "x".repeat(120)))).rejects.toThrow("too long for a unix socket");
    await expect(listenOnUnixSocket(join(dir(), "missing", "egress.sock"))).rejects.toThrow(/bind .* failed \(errno 2\)/);
    expect(openedSince(before)).toEqual([]);
  });
});

describe("takeListener", () => {
  const socketPath = () => join(dir(), "egress.sock");

  /**
   * The sandbox's side: listens on its own 127.0.0.1:PORT (its loopback up, as bwrap brings it up), names `named` (the listener's
   * descriptor by default) over the unix socket, prints the answer; then closes its own listener
   * and connects to that port itself, printing "connected" or "refused", and waits for a line.
   */
  const sandboxSide = (path: string, named = "fileno($l)", prefix: string[] = []) =>
    Bun.spawn(
      [...prefix, "unshare", "--user", "--map-root-user", "--net", "sh", "-c", 'ip link set lo up && exec perl -e "$0"',
        `$| = 1; socket($l, 2, 1, 0) && bind($l, pack("S n C4 x8", 2, 3128, 127, 0, 0, 1)) && listen($l, 16) or die "listen: $!";
         socket($p, 1, 1, 0) && connect($p, pack("S", 1) . "${path}\\0") or die "connect: $!";
         syswrite($p, ${named} . "\\n"); sysread($p, $a, 1); print "$a\\n"; close $l;
         socket($c, 2, 1, 0) or die; print connect($c, pack("S n C4 x8", 2, 3128, 127, 0, 0, 1)) ? "connected\\n" : "refused\\n"; <STDIN>`],
      { stdin: "pipe", stdout: "pipe", stderr: "inherit" },
    );
  const lines = async (child: ReturnType<typeof Bun.spawn>, count: number) => {
    const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
    let text = "";
    while (text.split("\n").length <= count) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    reader.releaseLock();
    return text;
  };

  /** Takes what `side` names below `wrapper`: it gets "1", and then connects through our copy; `check` looks at the copy before it is closed. */
  const expectTaken = async (unix: number, side: ReturnType<typeof Bun.spawn>, wrapper: number, check: (copy: number) => void = () => {}) => {
    const copy = await takeListener(unix, wrapper, true, () => side.exitCode !== null);
    expect(copy).toBeGreaterThan(2);
    try {
      expect(await lines(side, 2)).toBe("1\nconnected\n");
      check(copy!);
    } finally {
      closeSync(copy!);
    }
  };

  test("the listener named over the socket becomes ours: the sandbox's side gets 1, and its own connection then lands in our copy's queue", async () => {
    const path = socketPath();
    const unix = await listenOnUnixSocket(path);
    const side = sandboxSide(path);
    children.push(side);
    try {
      await expectTaken(unix, side, process.pid, (copy) => {
        expect(connectionWaiting(copy)).toBe(true);
        const flags = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${copy}`, "utf8"))?.[1];
        expect(parseInt(flags!, 8) & 0o2000000).toBe(0o2000000);
      });
    } finally {
      closeSync(unix);
    }
  });

  test("not to be taken (take false), or naming a descriptor that is not a listening socket: the answer is 0 and the listener stays there", async () => {
    for (const [take, named] of [[false, "fileno($l)"], [true, "0"], [true, "99"]] as const) {
      const path = socketPath();
      const unix = await listenOnUnixSocket(path);
      const side = sandboxSide(path, named);
      children.push(side);
      try {
        const before = descriptors();
        expect(await takeListener(unix, process.pid, take, () => side.exitCode !== null)).toBeUndefined();
        expect(openedSince(before)).toEqual([]);
        // Its own listener closed, nothing listens on its port any more.
        expect(await lines(side, 2)).toBe("0\nrefused\n");
      } finally {
        closeSync(unix);
      }
    }
  });

  test("a connection from a process that is not below the sandbox's wrapper is closed unanswered, and the sandbox's own is taken next", async () => {
    const path = socketPath();
    const unix = await listenOnUnixSocket(path);
    let strangerGot = "";
    let strangerClosed = false;
    // This process is not below the wrapper: it connects first, and names a listener of ours.
    const stranger = await Bun.connect({ unix: path, socket: { data: (_socket, data) => void (strangerGot += data.toString()), close: () => void (strangerClosed = true) } });
    stranger.write(`${unix}\n`);
    // The wrapper: a shell that forks (two commands), so that perl runs below it.
    const side = sandboxSide(path, "fileno($l)", ["sh", "-c", '"$@"; exit $?', "wrapper"]);
    children.push(side);
    try {
      await expectTaken(unix, side, side.pid);
      expect(await waitFor(() => strangerClosed)).toBe(true);
      expect(strangerGot).toBe("");
    } finally {
      stranger.end();
      closeSync(unix);
    }
  });

  test("a sandbox that ends before it connects ends the wait, with nothing taken", async () => {
    const path = socketPath();
    const unix = await listenOnUnixSocket(path);
    const gone = Bun.spawn(["true"]);
    children.push(gone);
    try {
      await gone.exited;
      expect(await takeListener(unix, process.pid, true, () => gone.exitCode !== null)).toBeUndefined();
    } finally {
      closeSync(unix);
    }
  });
});

/** This process's open descriptors and what each is (a socket's inode, a pipe's, a path). */
function descriptors(): Map<string, string> {
  const open = new Map<string, string>();
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      open.set(fd, readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      // closed meanwhile (the directory's own descriptor, or another test's child's pipe)
    }
  }
  return open;
}

/**
 * Descriptors open now that were not `before` ("fd -> what"). Not a count: the test process's
 * earlier children's pipes close on their own schedule, which would hide a leak or fake one.
 */
function openedSince(before: Map<string, string>): string[] {
  return [...descriptors()].filter(([fd, what]) => before.get(fd) !== what).map(([fd, what]) => `${fd} -> ${what}`);
}

async function waitFor(condition: () => boolean, timeoutMs = 2000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await Bun.sleep(5);
  }
  return true;
}
