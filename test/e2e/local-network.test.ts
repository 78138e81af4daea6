/**
 * The local sandbox's network namespace (issue 10, part 1) through the compiled binary, as root
 * and as an ordinary user, with bubblewrap and with util-linux unshare. Every packet stays in a
 * network namespace this file creates (`ip netns add`): 203.0.113.7 (a "public" host) and
 * 10.0.0.5 (a LAN host) are addresses on that namespace's lo, and its 127.0.0.1 plays the
 * host's own services. The CLI runs inside it, so the egress proxy's connections land there too.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { keptId } from "../helpers";
import { isRoot, machineFor, type Machine, MATRIX } from "./_local-users";

const NETNS = `sbx-test-${process.pid}`;
const inNetns = ["ip", "netns", "exec", NETNS];
const servers: Array<ReturnType<typeof Bun.spawn>> = [];

/** An HTTP/1.0 server in perl answering every request with `body`. */
function httpServer(address: string, body: string): string[] {
  const script = `$s = IO::Socket::INET->new(LocalAddr => "${address}", Listen => 16, ReuseAddr => 1) or die "$!"; while ($c = $s->accept) { while (<$c>) { last if /^\\r?\\n$/ } print $c "HTTP/1.0 200 OK\\r\\nContent-Length: ${body.length + 1}\\r\\n\\r\\n${body}\\n"; close $c }`;
  return ["perl", "-MIO::Socket::INET", "-e", script];
}

/** A listener on an abstract unix socket (per network namespace) that greets once. */
const abstractServer = (name: string) => ["perl", "-MIO::Socket::UNIX", "-e", `$s = IO::Socket::UNIX->new(Local => "\\0${name}", Listen => 5) or die "$!"; while ($c = $s->accept) { print $c "host socket\\n"; close $c }`];

async function waitForListeners(count: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const tcp = Bun.spawnSync([...inNetns, "sh", "-c", "cat /proc/net/tcp /proc/net/unix"]).stdout.toString();
    const listening = tcp.split("\n").filter((line) => / 0A /.test(line) || line.includes("@sbx-host-")).length;
    if (listening >= count) return;
    await Bun.sleep(50);
  }
  throw new Error("the test's servers did not start");
}

beforeAll(async () => {
  if (!isRoot) return;
  const setup = Bun.spawnSync(["sh", "-c", `ip netns add ${NETNS} && ip -n ${NETNS} link set lo up && ip -n ${NETNS} addr add 203.0.113.7/32 dev lo && ip -n ${NETNS} addr add 10.0.0.5/32 dev lo`]);
  if (setup.exitCode !== 0) throw new Error(`cannot make the test network namespace: ${setup.stderr}`);
  for (const argv of [httpServer("203.0.113.7:80", "public-ok"), httpServer("10.0.0.5:5432", "lan-ok"), httpServer("127.0.0.1:8089", "host-service"), abstractServer(`sbx-host-${process.pid}`)]) {
    servers.push(Bun.spawn([...inNetns, ...argv], { stdout: "ignore", stderr: "inherit" }));
  }
  await waitForListeners(4);
});

afterAll(() => {
  for (const server of servers) server.kill("SIGKILL");
  if (isRoot) Bun.spawnSync(["ip", "netns", "del", NETNS]);
});

const blockedLine = (destination: string, why: string) => `sandboxes: blocked ${destination} (${why}); allow it with --allow-net ${destination}`;
const blockedLines = (stderr: string) => stderr.split("\n").filter((line) => line.startsWith("sandboxes: blocked"));

for (const { user, mechanism } of MATRIX) {
  describe.skipIf(!isRoot)(`local sandbox network (${user}, ${mechanism})`, () => {
    const machines: Machine[] = [];
    const machine = () => {
      const made = machineFor(user, mechanism);
      machines.push(made);
      return made;
    };
    const run = (m: Machine, args: string[]) => m.run(args, { prefix: inNetns });
    afterAll(async () => {
      for (const made of machines) {
        await run(made, ["destroy", "--all", "--yes"]);
        made.remove();
      }
    }, 120_000);

    test("default: a public address answers through the egress proxy, in a one-shot run and in a kept sandbox", async () => {
      const m = machine();
      const once = await run(m, ["run", "curl -sS -m 20 http://203.0.113.7/"]);
      expect(once.stdout).toBe("public-ok\n");
      expect(once.code).toBe(0);
      const kept = await run(m, ["run", "--keep", "-n", "k", "true"]);
      expect(kept.code).toBe(0);
      const exec = await run(m, ["exec", "k", "curl -sS -m 20 http://203.0.113.7/"]);
      expect(exec.stdout).toBe("public-ok\n");
      expect(exec.code).toBe(0);
    }, 90_000);

    // The proxy (or the bridge) starts at the program's first connection, which firstUse looks
    // for every millisecond at first and less often later: one that comes late is served too.
    test("default: a one-shot program's first connection, made after it has run a while, answers", async () => {
      const m = machine();
      const late = await run(m, ["run", "sleep 0.3; curl -sS -m 20 http://203.0.113.7/"]);
      expect(late.stdout).toBe("public-ok\n");
      expect(late.code).toBe(0);
    }, 60_000);

    // A one-shot run has no bridge: as root with bubblewrap the CLI makes the listener itself in
    // the sandbox's namespace; otherwise sandbox-start makes it inside and hands it over to the
    // CLI before it becomes the program (listeners.ts). SANDBOXES_LOCAL_EGRESS_LISTENER=off gives it
    // the bridge, as every kept sandbox has, so that the bridge's cases below run in all four
    // combinations.
    const bridged = (m: Machine) => {
      m.env.SANDBOXES_LOCAL_EGRESS_LISTENER = "off";
      return m;
    };

    test("default: a one-shot sandbox's port 3128 listens with no process of ours inside behind it, and a public address answers", async () => {
      const m = machine();
      // Port 3128 (0C38) on any address (root's, made from the host: the namespace has only its
      // loopback) or on 127.0.0.1 (sandbox-start's), in /proc/net/tcp; state 0A is LISTEN.
      const listening = "grep -cE '(00000000|0100007F):0C38 00000000:0000 0A' /proc/net/tcp";
      const ours = "ps -eo comm= | grep -cxE 'sandboxes|start'";
      const r = await run(m, ["run", `${listening}; ${ours}; curl -sS -m 20 http://203.0.113.7/; ${ours}; echo end`]);
      expect(r.stdout).toBe("1\n0\npublic-ok\n0\nend\n");
      expect(r.code).toBe(0);
    }, 60_000);

    // sandbox-start runs before the program with its environment: glibc's tunables, which act on
    // it too (static, it has no dynamic loader), go in after it (env(1)), and reach the program.
    test("default: the program's own glibc and loader variables reach it, past sandbox-start; none of ours does", async () => {
      const m = machine();
      const r = await run(m, ["run", "-e", "GLIBC_TUNABLES=glibc.malloc.check=0", "-e", "LD_LIBRARY_PATH=/nowhere", "env | grep -E '^(GLIBC|LD)_' | sort; env | grep -c SANDBOXES_ || true"]);
      expect(r.stdout).toBe("GLIBC_TUNABLES=glibc.malloc.check=0\nLD_LIBRARY_PATH=/nowhere\n0\n");
      expect(r.code).toBe(0);
    }, 60_000);

    test("default: a one-shot run starts the bridge on its first connection, as no child of the program", async () => {
      const m = bridged(machine());
      // The parent pid of every process running our binary (the bridge) inside the sandbox.
      const bridges = "ps -eo ppid=,comm= | awk '$2 == \"sandboxes\" { printf \"%s,\", $1 }'; echo";
      const r = await run(m, ["run", `${bridges}; curl -sS -m 20 http://203.0.113.7/; ${bridges}`]);
      expect(r.stdout).toBe("\npublic-ok\n1,\n");
      expect(r.code).toBe(0);
    }, 60_000);

    test("default without sandbox-start (SANDBOXES_LOCAL_START=off): the bridge starts before the program and a public address answers", async () => {
      const m = bridged(machine());
      m.env.SANDBOXES_LOCAL_START = "off";
      const r = await run(m, ["run", "ps -eo comm= | grep -cx sandboxes; curl -sS -m 20 http://203.0.113.7/"]);
      expect(r.stdout).toBe("1\npublic-ok\n");
      expect(r.code).toBe(0);
    }, 60_000);

    test("default: a private destination fails fast and is named once on stderr with the flag that allows it", async () => {
      const m = machine();
      const r = await run(m, ["run", "curl -s -m 20 -o /dev/null -w '%{http_code}\\n' http://10.0.0.5:5432/; curl -s -m 20 -o /dev/null http://10.0.0.5:5432/; echo done"]);
      expect(r.stdout).toBe("403\ndone\n");
      expect(blockedLines(r.stderr)).toEqual([blockedLine("10.0.0.5:5432", "private address")]);
      const kept = await run(m, ["run", "--keep", "true"]);
      const id = keptId(kept.stderr)!;
      const exec = await run(m, ["exec", id, "curl -s -m 20 -o /dev/null http://10.0.0.5:5432/; echo done"]);
      expect(exec.stdout).toBe("done\n");
      expect(blockedLines(exec.stderr)).toEqual([blockedLine("10.0.0.5:5432", "private address")]);
    }, 90_000);

    test("the host's 127.0.0.1 services and abstract unix sockets are out of reach; the host alias is blocked unless listed", async () => {
      const m = machine();
      const script = [
        "curl -sS -m 20 --noproxy '*' http://127.0.0.1:8089/ >/dev/null 2>&1 && echo REACHED-LOOPBACK",
        "curl -sS -m 20 http://127.0.0.1:8089/ >/dev/null 2>&1 && echo REACHED-LOOPBACK-PROXY",
        `perl -MIO::Socket::UNIX -e '$c = IO::Socket::UNIX->new(Peer => "\\0sbx-host-${process.pid}") or exit 1; print <$c>' && echo REACHED-ABSTRACT`,
        "curl -s -m 20 -o /dev/null http://host.sandboxes.internal:8089/",
        "echo checked",
      ].join("; ");
      const r = await run(m, ["run", script]);
      expect(r.stdout).toBe("checked\n");
      expect(blockedLines(r.stderr)).toEqual([blockedLine("host.sandboxes.internal:8089", "the host")]);
    }, 60_000);

    test("--allow-net opens a listed LAN host and the host's own service, and closes what is not listed", async () => {
      const m = machine();
      const allow = ["--allow-net", "10.0.0.5:5432", "--allow-net", "host.sandboxes.internal:8089"];
      const script = "curl -sS -m 20 http://10.0.0.5:5432/; curl -sS -m 20 http://host.sandboxes.internal:8089/; curl -s -m 20 -o /dev/null http://203.0.113.7/; echo done";
      const once = await run(m, ["run", ...allow, script]);
      expect(once.stdout).toBe("lan-ok\nhost-service\ndone\n");
      expect(blockedLines(once.stderr)).toEqual([blockedLine("203.0.113.7:80", "not in the --allow-net list")]);
      const kept = await run(m, ["run", "--keep", "-n", "allowed", ...allow, "true"]);
      expect(kept.code).toBe(0);
      const exec = await run(m, ["exec", "allowed", script]);
      expect(exec.stdout).toBe("lan-ok\nhost-service\ndone\n");
      expect(blockedLines(exec.stderr)).toEqual([blockedLine("203.0.113.7:80", "not in the --allow-net list")]);
    }, 90_000);

    test("the sandbox's own loopback works", async () => {
      const m = machine();
      const serve = httpServer("127.0.0.1:8090", "own-loopback").map((arg) => `'${arg.replaceAll("'", "'\\''")}'`).join(" ");
      const r = await run(m, ["run", `${serve} & for i in $(seq 1 100); do curl -s -m 5 http://127.0.0.1:8090/ && exit 0; sleep 0.1; done; exit 1`]);
      expect(r.stdout).toBe("own-loopback\n");
      expect(r.code).toBe(0);
    }, 60_000);

    // What a program costs the host through its proxy is bounded: it names at most 100 blocked
    // destinations (the 101st line says more were blocked), and holds at most 1024 of the
    // program's connections at once, closing more as they come; once the program lets go, the
    // proxy answers again. In a one-shot run (the CLI's proxy) and in a kept sandbox's.
    test("default: at most 100 blocked destinations named, and 1024 connections held at once", async () => {
      const m = machine();
      m.env.PATH = "/usr/local/bin:/usr/bin:/bin"; // the system's python3
      const program = [
        "import socket, resource, time",
        "resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)",
        "def ask(port):",
        "    try:",
        "        c = socket.create_connection(('127.0.0.1', 3128), timeout=20)",
        "        c.sendall(b'GET http://10.0.0.5:%d/ HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' % port)",
        "        data = c.recv(12)",
        "        c.close()",
        "        return data.decode() or 'closed'",
        "    except ConnectionResetError:",
        "        return 'closed'",
        "print(sorted({ask(port) for port in range(1, 151)}))",
        "time.sleep(0.5)",
        "held = [socket.create_connection(('127.0.0.1', 3128), timeout=20) for _ in range(1024)]",
        "time.sleep(0.3)",
        "print(ask(151))",
        "for c in held: c.close()",
        "time.sleep(0.5)",
        "print(ask(152))",
      ].join("\n");
      const expected = "['HTTP/1.1 403']\nclosed\nHTTP/1.1 403\n";
      const check = (r: { code: number; stdout: string; stderr: string }) => {
        expect({ code: r.code, stdout: r.stdout }).toEqual({ code: 0, stdout: expected });
        const lines = blockedLines(r.stderr);
        expect(lines).toHaveLength(101);
        expect(lines[0]).toBe(blockedLine("10.0.0.5:1", "private address"));
        expect(lines[100]).toBe("sandboxes: blocked 10.0.0.5:101 (private address), and more than 100 destinations in all: the rest are blocked without a line");
      };
      check(await run(m, ["run", `python3 -c "${program}"`]));
      const kept = await run(m, ["run", "--keep", "true"]);
      check(await run(m, ["exec", keptId(kept.stderr)!, `python3 -c "${program}"`]));
    }, 120_000);

    test("--network none: no interface but lo, no proxy", async () => {
      const m = machine();
      const r = await run(m, ["run", "--network", "none", "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '; echo \"proxy=${HTTP_PROXY:-none}\"; curl -sS -m 20 http://203.0.113.7/ >/dev/null 2>&1 || echo unreachable"]);
      expect(r.stdout).toBe("lo\nproxy=none\nunreachable\n");
      expect(r.code).toBe(0);
    }, 60_000);
  });
}
