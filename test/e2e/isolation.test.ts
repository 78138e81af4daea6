import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { BINARY, cli, freshEnv, nobodyMachine } from "../helpers";
import { childrenOf } from "../../src/providers/local/holder";
import { eventually, holderState, machineFor, MATRIX, WRITTEN_START } from "./_local-users";

const isRoot = process.getuid?.() === 0;
// A kept sandbox starts a holder and an egress proxy: more than bun's 5 s on a busy machine.
setDefaultTimeout(30_000);

/** A HOME with secrets and a toolchain installed under it, the way rustup/pyenv users have it. */
function homeWithSecrets(extra: Record<string, string> = {}) {
  const { env, home } = freshEnv(extra);
  for (const [path, content] of Object.entries({
    ".ssh/id_ed25519": "PRIVATE KEY",
    ".aws/credentials": "[default]\naws_secret_access_key=xyz",
    ".cargo/credentials.toml": "token = 'crates-io-token'",
    ".npmrc": "//registry.npmjs.org/:_authToken=npm-token",
    "notes/secret.txt": "diary",
  })) {
    mkdirSync(join(home, path, ".."), { recursive: true });
    writeFileSync(join(home, path), content);
  }
  mkdirSync(join(home, ".cargo/bin"), { recursive: true });
  writeFileSync(join(home, ".cargo/bin/hello-tool"), "#!/bin/sh\necho toolchain-ok\n", { mode: 0o755 });
  if (isRoot) {
    // The sandboxed program runs unprivileged: the toolchain must be world-readable, as rustup installs it.
    chmodSync(home, 0o755);
  }
  env.PATH = `${join(home, ".cargo/bin")}:${env.PATH}`;
  return { env, home };
}

for (const mode of ["bubblewrap", "unshare"] as const) {
  describe(`local isolation (${mode})`, () => {
    const extra: Record<string, string> = mode === "unshare" ? { SANDBOXES_LOCAL_ISOLATION: "unshare" } : {};

    test("providers names the mechanism", async () => {
      const details = async (more: Record<string, string> = {}) => {
        const { env } = freshEnv({ ...extra, ...more });
        const doc = JSON.parse((await cli(["providers", "--json"], { env })).stdout);
        return doc.providers.find((p: { name: string }) => p.name === "local").details as string;
      };
      if (mode === "bubblewrap") return expect(await details()).toContain("isolation: bubblewrap (");
      // The release binary carries sandbox-start; without it the util-linux programs alone.
      expect(await details()).toContain("isolation: util-linux unshare with sandbox-start (");
      expect(await details({ SANDBOXES_LOCAL_START: "off" })).toContain("isolation: util-linux unshare (");
    });

    test("home toolchains work; the rest of the home and its secrets are not there", async () => {
      const { env } = homeWithSecrets(extra);
      const r = await cli(["run", 'hello-tool; ls -A ~ | sort | tr "\\n" " "; echo; for f in ~/.ssh/id_ed25519 ~/.aws/credentials ~/.cargo/credentials.toml ~/.npmrc ~/notes/secret.txt; do test -e "$f" && echo "LEAK $f"; done; echo done'], { env });
      expect(r.stdout).toBe("toolchain-ok\n.cargo \ndone\n");
      expect(r.code).toBe(0);
    });

    test("a PATH entry that holds a secret (~/.cargo) or the home (its parent) is not bound; the toolchain under it still works", async () => {
      const { env, home } = homeWithSecrets(extra);
      // A directory beside the home: the home's parent, were it bound, would show it. (The parent
      // may hold mount points of other bound paths, e.g. a PATH entry in the same /tmp.)
      const sibling = mkdtempSync(join(home, "..", "sandboxes-sibling-"));
      try {
        env.PATH = `${join(home, "..")}:${join(home, ".cargo")}:${env.PATH}`;
        const r = await cli(["run", 'hello-tool; for f in ~/.cargo/credentials.toml ~/.ssh/id_ed25519; do test -e "$f" && echo "LEAK $f"; done; ls -A "$(dirname ~)"; echo done'], { env });
        const [tool, ...rest] = r.stdout.trim().split("\n");
        expect(tool).toBe("toolchain-ok");
        expect(rest.at(-1)).toBe("done");
        const listed = rest.slice(0, -1);
        expect(listed).toContain(basename(home));
        expect(listed).not.toContain(basename(sibling));
        expect(listed.filter((name) => name.startsWith("LEAK"))).toEqual([]);
        expect(r.code).toBe(0);
      } finally {
        rmSync(sibling, { recursive: true, force: true });
      }
    });

    test("a PATH entry inside a bound toolchain (pyenv's shims under ~/.pyenv) is on the sandbox's PATH, once, and what it holds runs", async () => {
      const { env, home } = homeWithSecrets(extra);
      const shims = join(home, ".pyenv/shims");
      mkdirSync(shims, { recursive: true });
      writeFileSync(join(shims, "shim-tool"), "#!/bin/sh\necho shim-ok\n", { mode: 0o755 });
      env.PATH = `${shims}:${join(home, ".cargo/bin")}:${env.PATH}`;
      const r = await cli(["run", 'shim-tool; hello-tool; echo "$PATH" | tr ":" "\\n" | sort | uniq -d | wc -l; case ":$PATH:" in *":$HOME/.pyenv/shims:"*) echo on-path;; esac'], { env });
      expect(r.stdout).toBe("shim-ok\ntoolchain-ok\n0\non-path\n");
      expect(r.code).toBe(0);
    });

    // How a one-shot run with bubblewrap waits for the CLI (BwrapHandshake in isolation.ts): no
    // seccomp filter, which would cost every system call; as root, the sandbox's /etc/group and
    // /etc/passwd come through the handshake, as readable as any.
    if (mode === "bubblewrap") test("a one-shot program runs with no seccomp filter, and its user and group are named in a readable /etc/passwd and /etc/group", async () => {
      const { env } = freshEnv(extra);
      const r = await cli(["run", "grep -E '^Seccomp(_filters)?:' /proc/self/status | tr -s '\\t ' ' '; stat -c %a /etc/passwd /etc/group; getent passwd \"$(id -u)\" | cut -d: -f1; getent group \"$(id -g)\" | cut -d: -f1"], { env });
      expect(r.stdout).toBe(`Seccomp: 0\nSeccomp_filters: 0\n644\n644\nsandbox\nsandbox\n`);
      expect(r.code).toBe(0);
    });

    test("no /run, no docker socket, no other homes, no host processes, own hostname", async () => {
      const { env } = freshEnv(extra);
      const r = await cli(["run", "echo \"run: $(ls -A /run | tr '\\n' ' ') $(ls -A /run/sandboxes | tr '\\n' ' ')\"; test -e /var/run/docker.sock && echo SOCKET; ls -A /home | wc -l; ls /proc | grep -c '^[0-9]'; hostname"], { env });
      const [run, home, procs, hostname] = r.stdout.trim().split("\n").map((l) => l.trim());
      // Only our own directory: sandbox-start, and the egress bridge's binary and the proxy's
      // socket directory. A one-shot run as root with bubblewrap has no bridge (its listener is
      // made from the host): sandbox-start alone.
      expect(run).toBe(isRoot && mode === "bubblewrap" ? "run: sandboxes  start" : "run: sandboxes  net sandboxes start");
      expect(home).toBe("0");
      expect(Number(procs)).toBeLessThan(8);
      expect(hostname).toBe("sandbox");
    });

    test("the caller's environment does not leak in", async () => {
      const { env } = freshEnv({ ...extra, AWS_SECRET_ACCESS_KEY: "leak-me" });
      const r = await cli(["run", "env | sort | cut -d= -f1 | tr '\\n' ' '"], { env });
      expect(r.stdout).not.toContain("AWS_SECRET_ACCESS_KEY");
      expect(r.stdout).toContain("HOME");
      expect(r.stdout).toContain("PATH");
    });

    test("values given with -e are not in any host process's argv (ps shows argv to every user)", async () => {
      const secret = `s3cr3t-${Math.random().toString(36).slice(2)}`;
      const { env } = freshEnv({ ...extra, API_TOKEN: secret });
      const child = Bun.spawn([BINARY, "run", "-e", "API_TOKEN", "-e", "LD_LIBRARY_PATH=/nonexistent-lib", "echo \"$API_TOKEN $LD_LIBRARY_PATH\"; sleep 2"], { env, stdout: "pipe", stderr: "pipe" });
      const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
      const first = new TextDecoder().decode((await reader.read()).value);
      // The program is running now: look at every process on the host.
      const leaks: string[] = [];
      for (const pid of new Bun.Glob("[0-9]*").scanSync({ cwd: "/proc", onlyFiles: false })) {
        let cmdline = "";
        try {
          cmdline = (await Bun.file(`/proc/${pid}/cmdline`).text()).replaceAll("\0", " ");
        } catch {
          continue; // gone already
        }
        if (cmdline.includes(secret)) leaks.push(`${pid}: ${cmdline.slice(0, 120)}`);
      }
      reader.releaseLock();
      expect(await child.exited).toBe(0);
      expect(first).toBe(`${secret} /nonexistent-lib\n`);
      expect(leaks).toEqual([]);
    });

    test("system directories are read-only", async () => {
      const { env } = freshEnv(extra);
      const r = await cli(["run", "touch /usr/sandboxes-write-test 2>/dev/null && echo WROTE; touch /etc/x 2>/dev/null && echo WROTE; echo checked"], { env });
      expect(r.stdout).toBe("checked\n");
    });

    test.if(isRoot)("run by root, the program is not host root: root-only files stay unreadable", async () => {
      const secret = mkdtempSync(join("/opt", "sandboxes-root-only-"));
      writeFileSync(join(secret, "key"), "root secret");
      chmodSync(join(secret, "key"), 0o600);
      chmodSync(secret, 0o755);
      try {
        const { env } = freshEnv(extra);
        const r = await cli(["run", `id -u; cat ${join(secret, "key")} 2>/dev/null || echo denied; cat /etc/shadow 2>/dev/null || echo denied`], { env });
        const [uid, key, shadow] = r.stdout.trim().split("\n");
        expect(uid).not.toBe("0");
        expect(key).toBe("denied");
        expect(shadow).toBe("denied");
      } finally {
        rmSync(secret, { recursive: true, force: true });
      }
    });

    // As root, the same binary is also exercised as an ordinary user (unprivileged user namespaces).
    test.if(isRoot)("an ordinary user runs sandboxes too", async () => {
      const { dir, env, command } = nobodyMachine("sandboxes-user-", extra);
      const run = (args: string[]) =>
        Bun.spawnSync([...command, ...args], {
          env,
          cwd: dir,
        });
      const first = run(["run", "--keep", "-n", "userbox", "id -u; echo persisted > ~/f"]);
      expect(first.exitCode).toBe(0);
      // uid 0 of a user namespace of its own, without capabilities, in both mechanisms.
      expect(first.stdout.toString()).toBe("0\n");
      const second = run(["exec", "userbox", "cat ~/f; sleep 30", "-t", "1"]);
      expect(second.stdout.toString()).toBe("persisted\n");
      expect(second.exitCode).toBe(124);
      expect(run(["destroy", "userbox"]).exitCode).toBe(0);
      rmSync(dir, { recursive: true, force: true });
    });
  });
}

// What programs expect of a container's /dev and system directories, the same in the four ways
// the local provider runs (and without sandbox-start): a terminal of their own (/dev/ptmx: the
// `script` command, python's pty, tmux), shared memory every user may write (/dev/shm: POSIX
// semaphores, python's multiprocessing), and a mount below a read-only system directory as
// read-only as the directory (the test mounts one, in a mount namespace of its own, over
// /usr/local/src). In a one-shot run and in a command entered into a kept sandbox, with the state
// directory reached through a symbolic link.
describe("a sandbox's terminals, shared memory and read-only submounts", () => {
  const probe = [
    "script -qec tty /dev/null | tr -d '\\r'", // (the terminal ends its lines with CR LF)
    `python3 -c 'import multiprocessing; multiprocessing.Lock(); print("semaphore")'`,
    "stat -c %a /dev/shm",
    "touch /usr/local/src/written 2>&1 | grep -o 'Read-only file system'",
    "awk '$5 == \"/usr/local/src\" { split($6, o, \",\"); print $5, o[1] }' /proc/self/mountinfo",
  ].join("; ");
  const expected = "/dev/pts/0\nsemaphore\n1777\nRead-only file system\n/usr/local/src ro\n";
  // As root, the binary (then setpriv, for the ordinary user) runs in a mount namespace of its own
  // with a writable tmpfs over /usr/local/src (Debian's base-files makes that directory).
  const submount = ["unshare", "-m", "--propagation", "private", "sh", "-c", 'mount -t tmpfs -o mode=1777 below /usr/local/src && exec "$@"', "sh"];
  const ways = MATRIX.flatMap((m) => (m.mechanism === "unshare" ? [{ ...m, start: "on" }, { ...m, start: "off" }] : [{ ...m, start: "on" }]));
  for (const { user, mechanism, start } of ways.filter((m) => isRoot || m.user === "ordinary")) {
    test(`${user === "root" ? "root" : "an ordinary user"}, ${mechanism}${start === "off" ? " without sandbox-start" : ""}`, async () => {
      expect(readdirSync("/usr/local/src")).toBeDefined(); // there, or this test cannot mount over it
      const m = machineFor(user, mechanism);
      if (start === "off") m.env.SANDBOXES_LOCAL_START = "off";
      // The system's python3, not a version manager's shim that a caller's PATH may hold.
      m.env.PATH = "/usr/local/bin:/usr/bin:/bin";
      // A state directory reached through a symbolic link (as /home -> var/home on Fedora
      // Silverblue): the mount table names the sandbox's mounts by their real paths.
      const realState = join(m.cwd, "state-real");
      mkdirSync(realState);
      if (user === "ordinary" && isRoot) chownSync(realState, 65534, 65534); // (uid 65534 runs it)
      symlinkSync(realState, join(m.cwd, "state"));
      m.env.XDG_STATE_HOME = join(m.cwd, "state");
      try {
        const prefix = isRoot ? submount : [];
        const once = await m.run(["run", probe], { prefix });
        expect(once.stderr).toBe("");
        expect(once.stdout).toBe(isRoot ? expected : expected.replace(/Read-only.*\n.*\n$/, ""));
        expect((await m.run(["run", "--keep", "-n", "devices", "true"], { prefix })).code).toBe(0);
        const entered = await m.run(["exec", "devices", probe], { prefix });
        expect(entered.stdout).toBe(once.stdout);
        expect((await m.run(["destroy", "devices"])).code).toBe(0);
      } finally {
        m.remove();
      }
    }, 60_000);
  }
});

// A caller whose umask is 077 (root's on a hardened host, CIS's advice): what the local provider
// makes for the sandbox's user to read or pass through is made by the caller, often as root, as
// another uid. Made under that umask, the sandbox could not read its /etc/hosts, passwd and group,
// reach the egress proxy's socket (util-linux: every default-policy run failed) or a toolchain
// outside the system's directories (its mount point's parents 0700). The program keeps the
// caller's umask, as under bubblewrap and Docker's exec.
describe("a caller's umask of 077 costs the sandbox nothing", () => {
  const probe = "mytool; umask; head -n 1 /etc/hosts; id -un; cat /etc/passwd /etc/group >/dev/null && echo identity";
  const ways = MATRIX.flatMap((m) => (m.mechanism === "unshare" ? [{ ...m, start: "on" }, { ...m, start: "off" }] : [{ ...m, start: "on" }]));
  for (const { user, mechanism, start } of ways.filter((m) => isRoot || m.user === "ordinary")) {
    test(`${user === "root" ? "root" : "an ordinary user"}, ${mechanism}${start === "off" ? " without sandbox-start" : ""}`, async () => {
      const m = machineFor(user, mechanism);
      if (start === "off") m.env.SANDBOXES_LOCAL_START = "off";
      // A toolchain outside the home and the system's directories: bound at its own path, below
      // parents the sandbox makes.
      const tools = mkdtempSync("/tmp/sandboxes-umask-");
      mkdirSync(join(tools, "bin"));
      writeFileSync(join(tools, "bin", "mytool"), "#!/bin/sh\necho tool\n");
      for (const path of [tools, join(tools, "bin"), join(tools, "bin", "mytool")]) chmodSync(path, 0o755);
      writeFileSync(join(m.cwd, "main.sh"), "echo file\n");
      chmodSync(join(m.cwd, "main.sh"), 0o644);
      m.env.PATH = `${join(tools, "bin")}:/usr/local/bin:/usr/bin:/bin`;
      const umask077 = ["sh", "-c", 'umask 077 && exec "$@"', "sh"];
      const expected = `tool\n0077\n127.0.0.1\tlocalhost sandbox\n${user === "root" ? "sandbox" : "root"}\nidentity\n`;
      try {
        const once = await m.run(["run", probe], { prefix: umask077 });
        expect(once.stderr).toBe("");
        expect(once.stdout).toBe(expected);
        const file = await m.run(["run", "--file", join(m.cwd, "main.sh")], { prefix: umask077 });
        expect({ stdout: file.stdout, stderr: file.stderr }).toEqual({ stdout: "file\n", stderr: "" });
        expect((await m.run(["run", "--keep", "-n", "umask", "true"], { prefix: umask077 })).code).toBe(0);
        const entered = await m.run(["exec", "umask", probe], { prefix: umask077 });
        expect({ stdout: entered.stdout, stderr: entered.stderr }).toEqual({ stdout: expected, stderr: "" });
        expect((await m.run(["destroy", "umask"])).code).toBe(0);
      } finally {
        m.remove();
        rmSync(tools, { recursive: true, force: true });
      }
    }, 60_000);
  }
});

// util-linux without bubblewrap: sandbox-start makes the namespaces and the root itself (one
// static process), where without it (SANDBOXES_LOCAL_START=off) unshare runs a script that
// forks mount, mkdir and ln forty-odd times. Both must make the same sandbox: the same mounts,
// read-only where they were, the same /dev, host name, loopback and user, and the same exit
// statuses through the sandbox's pid 1, for a one-shot run and for a kept sandbox's holder.
describe("util-linux: sandbox-start and the mount script make the same sandbox", () => {
  const probe = [
    "hostname; id -un; ls -A / | tr '\\n' ' '; echo",
    "ls -l /dev | awk 'NR > 1 { print $1, $NF }'",
    "ip -o link show lo | grep -c '[<,]UP[,>]'",
    // Each mount point, and whether it is read-only (its own options, field 6).
    // (The home's path is each test machine's own.)
    "awk '{ split($6, o, \",\"); print $5, o[1] }' /proc/self/mountinfo | sed \"s|^$HOME |~ |\" | sort",
  ].join("; ");
  for (const user of isRoot ? (["root", "ordinary"] as const) : (["ordinary"] as const)) {
    test(`as ${user === "root" ? "root" : "an ordinary user"}: one-shot and kept, with and without sandbox-start`, async () => {
      const seen: Record<string, string> = {};
      const pid1: Record<string, string> = {};
      for (const start of ["on", "off"] as const) {
        // The system PATH: each PATH entry outside it is bound as a toolchain and would show in
        // `/` (under `npm test`, <repo>/node_modules/.bin).
        const extra: Record<string, string> = { PATH: "/usr/local/bin:/usr/bin:/bin", SANDBOXES_LOCAL_ISOLATION: "unshare", ...(start === "off" ? { SANDBOXES_LOCAL_START: "off" } : {}) };
        const machine = user === "root" ? { ...freshEnv(extra), command: [BINARY], dir: undefined } : { ...nobodyMachine("sandboxes-user-", extra), home: undefined };
        const run = async (args: string[]) => {
          const child = Bun.spawn([...machine.command, ...args], { env: machine.env, cwd: machine.dir ?? machine.home, stdout: "pipe", stderr: "pipe" });
          const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
          return { stdout, stderr, code };
        };
        try {
          const once = await run(["run", `${probe}; head -z -n 1 /proc/1/cmdline | tr -d '\\0' >&2`]);
          expect(once.code).toBe(0);
          seen[`run ${start}`] = once.stdout;
          pid1[`run ${start}`] = once.stderr.trim();
          expect((await run(["run", "exit 7"])).code).toBe(7);
          expect((await run(["run", "kill -9 $$"])).code).toBe(137);
          const missing = await run(["run", "--", "no-such-program-here"]);
          expect(missing.code).toBe(127);
          expect(missing.stderr).toContain("no-such-program-here");
          expect((await run(["run", "--keep", "-n", "same", "sleep 1001 >/dev/null 2>&1 &"])).code).toBe(0);
          const kept = await run(["exec", "same", `${probe}; ps -eo args | grep -cx 'sleep 1001'`]);
          expect(kept.code).toBe(0);
          seen[`kept ${start}`] = kept.stdout;
          expect((await run(["destroy", "same"])).code).toBe(0);
        } finally {
          rmSync(machine.dir ?? machine.home!, { recursive: true, force: true });
        }
      }
      // pid 1 of a one-shot run: sandbox-start from the state directory, or the script's shell.
      expect(pid1["run on"]).toMatch(WRITTEN_START);
      expect(pid1["run off"]).toBe("sh");
      const lines = seen["run on"]!.split("\n");
      expect(lines.slice(0, 3)).toEqual(["sandbox", user === "root" ? "sandbox" : "root", "bin dev etc home lib lib64 mnt opt proc root run sbin tmp usr var "]);
      expect(lines).toContain("crw-rw-rw- null");
      expect(lines).toContain("/usr ro");
      expect(lines).toContain("/tmp rw");
      expect(lines).toContain("~ rw");
      // The one difference: sandbox-start, bound where bubblewrap's sandboxes have it too.
      expect(lines).toContain("/run/sandboxes/start ro");
      expect(seen["run on"]!.replace("/run/sandboxes/start ro\n", "")).toBe(seen["run off"]!);
      // The kept sandbox's background process lives on into the exec.
      expect(seen["kept on"]).toEndWith("\n1\n");
      expect(seen["kept on"]).toBe(seen["kept off"]!);
      expect(seen["kept on"]).not.toContain("/run/sandboxes/start");
    }, 120_000);
  }
});

// A command entered into a kept sandbox (exec, shell, cp): sandbox-start joins the namespaces,
// root and directory of the sandbox's pid 1 and becomes the sandbox's user, where without it
// (SANDBOXES_LOCAL_START=off) nsenter, setpriv, setsid and prlimit do, one exec each. The command
// must find itself in the same sandbox, with the same credentials, limits, session and exit status.
describe("exec into a kept sandbox: sandbox-start and nsenter enter the same sandbox", () => {
  const probe = [
    'id; [ "$(pwd)" = "$HOME" ] && echo in-its-home; hostname',
    "grep -E '^(Groups|Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):' /proc/self/status | tr -s '\\t ' ' '",
    "grep 'Max processes' /proc/self/limits | tr -s ' '",
    // It leads a session of its own (what a timeout or Ctrl-C kills).
    '[ "$(ps -o sid= -p $$ | tr -d " ")" = "$$" ] && echo leads-its-session',
    "for n in mnt pid ipc uts net user; do echo \"$n $(readlink /proc/self/ns/$n)\"; done >&2",
  ].join("; ");
  for (const { user, mechanism } of MATRIX.filter((m) => isRoot || m.user === "ordinary")) {
    test(`${user === "root" ? "root" : "an ordinary user"}, ${mechanism}`, async () => {
      const seen: Record<string, string> = {};
      for (const start of ["on", "off"] as const) {
        const m = machineFor(user, mechanism);
        if (start === "off") m.env.SANDBOXES_LOCAL_START = "off";
        try {
          expect((await m.run(["run", "--keep", "-n", "entered", "true"])).code).toBe(0);
          const id = readdirSync(m.stateDir)[0]!;
          const target = holderState(m, id).target.pid;
          // What the command is started as, seen from the host while it runs.
          const waiting = m.spawn(["exec", "entered", "sleep 30"]);
          let argv0 = "";
          // (Until it execs, the child is a fork of the CLI, with the CLI's command line.)
          await eventually(() => /sandbox-start|^nsenter$/.test((argv0 = childArgv0(waiting.pid))));
          waiting.kill("SIGKILL");
          await waiting.exited;
          if (start === "on") expect(argv0).toMatch(WRITTEN_START);
          else expect(argv0).toBe("nsenter");
          const r = await m.run(["exec", "entered", probe]);
          expect(r.code).toBe(0);
          seen[start] = r.stdout;
          // Each namespace the command is in is pid 1's (read from the host).
          const namespaces = r.stderr.trim().split("\n").map((line) => line.split(" "));
          const expected = ["mnt", "pid", "ipc", "uts", "net", "user"].map((n) => [n, readlinkSync(`/proc/${target}/ns/${n}`)]);
          expect(namespaces).toEqual(expected);
          expect((await m.run(["exec", "entered", "exit 7"])).code).toBe(7);
          expect((await m.run(["exec", "entered", "kill -9 $$"])).code).toBe(137);
          expect((await m.run(["exec", "entered", "-t", "1", "sleep 30"])).code).toBe(124);
          expect((await m.run(["destroy", "entered"])).code).toBe(0);
        } finally {
          m.remove();
        }
      }
      expect(seen.on).toContain("\nin-its-home\nsandbox\n");
      expect(seen.on).toContain("leads-its-session\n");
      expect(seen.on).toContain("NoNewPrivs: 1\n");
      expect(seen.on).toContain("CapEff: 0000000000000000\n");
      expect(seen.on).toBe(seen.off!.replace(/^uid=\d+\(sandbox\) gid=\d+\(sandbox\) groups=\d+\(sandbox\)$/m, seen.on!.split("\n")[0]!));
    }, 120_000);
  }
});

// A one-shot run from a terminal writes to it directly (its stdout and stderr are the caller's).
// A program that shares the caller's session has that terminal as its controlling terminal, and
// TIOCSTI then pushes input into it: typed into the caller's shell once the run ends. bubblewrap
// gives the sandbox a session of its own (--new-session); without it (sandbox-start, or unshare
// and the mount script) it did not, and the ioctl worked in all four util-linux ways. Where the
// kernel refuses TIOCSTI to everyone (dev.tty.legacy_tiocsti = 0) there is nothing to show.
const TIOCSTI_ALLOWED = (() => {
  try {
    return readFileSync("/proc/sys/dev/tty/legacy_tiocsti", "utf8").trim() !== "0";
  } catch {
    return true; // before Linux 6.2: always allowed
  }
})();
describe.skipIf(!TIOCSTI_ALLOWED)("a program cannot type into the caller's terminal (TIOCSTI)", () => {
  const ways = MATRIX.flatMap((m) => (m.mechanism === "unshare" ? [{ ...m, start: "on" }, { ...m, start: "off" }] : [{ ...m, start: "on" }]));
  const inTerminal = async (argv: string[], env: Record<string, string>, cwd: string) => {
    let screen = "";
    const child = Bun.spawn(argv, { env, cwd, terminal: { cols: 80, rows: 24, data: (_t: unknown, data: Uint8Array) => (screen += new TextDecoder().decode(data)) } } as Parameters<typeof Bun.spawn>[1]);
    await child.exited;
    return screen;
  };
  const program = 'import fcntl, termios\ntry:\n    fcntl.ioctl(1, termios.TIOCSTI, b"#")\n    print("TIOCSTI worked")\nexcept OSError as e:\n    print("TIOCSTI refused:", e.strerror)\n';
  for (const { user, mechanism, start } of ways.filter((m) => isRoot || m.user === "ordinary")) {
    test(`${user === "root" ? "root" : "an ordinary user"}, ${mechanism}${start === "off" ? " without sandbox-start" : ""}`, async () => {
      const m = machineFor(user, mechanism);
      if (start === "off") m.env.SANDBOXES_LOCAL_START = "off";
      m.env.PATH = "/usr/local/bin:/usr/bin:/bin"; // the system's python3
      const file = join(m.cwd, "type.py");
      writeFileSync(file, program);
      chmodSync(file, 0o644);
      try {
        // The same program outside a sandbox, in the same kind of terminal: the kernel lets it.
        expect(await inTerminal(["python3", file], m.env, m.cwd)).toContain("TIOCSTI worked");
        const screen = await inTerminal([...m.command, "run", "--file", file], m.env, m.cwd);
        expect(screen).toContain("TIOCSTI refused: Operation not permitted");
        expect(screen).not.toContain("#");
      } finally {
        m.remove();
      }
    }, 60_000);
  }
});

// `sandboxes shell` into a kept sandbox (a terminal on our side): sandbox-start --terminal gives
// the shell a terminal of the sandbox's own, which its /dev has and its user owns, at the outer
// terminal's size; the outer terminal's /dev/pts/N is not in the sandbox. Without sandbox-start
// (nsenter) the shell has the outer terminal, which `tty` cannot name.
describe("a shell entered into a kept sandbox has a terminal of the sandbox's own", () => {
  for (const { user, mechanism } of MATRIX.filter((m) => isRoot || m.user === "ordinary")) {
    test(`${user === "root" ? "root" : "an ordinary user"}, ${mechanism}`, async () => {
      const m = machineFor(user, mechanism);
      try {
        expect((await m.run(["run", "--keep", "-n", "term", "true"])).code).toBe(0);
        let screen = "";
        const shell = Bun.spawn([...m.command, "shell", "term"], {
          env: { ...m.env, TERM: "dumb" },
          cwd: m.cwd,
          terminal: { cols: 91, rows: 27, data: (_t: unknown, data: Uint8Array) => (screen += new TextDecoder().decode(data)) },
        } as Parameters<typeof Bun.spawn>[1]);
        const terminal = (shell as unknown as { terminal: { write(d: string): void } }).terminal;
        const owner = user === "root" ? "sandbox" : "root";
        terminal.write('t=$(tty); echo "TERMINAL $t $(stat -c %U "$t") $(stty size)"\r');
        // (Before more is typed: the terminal echoes typing at once, into the middle of output.)
        const answered = new RegExp(`^TERMINAL /dev/pts/\\d+ ${owner} 27 91\\r?$`, "m");
        expect(await eventually(() => answered.test(screen))).toBe(true);
        // A paste larger than a terminal's buffers, which tee writes back as it goes: the relay
        // must read the program's output while the program has not yet read all of the input.
        terminal.write("tee pasted\r" + `${"x".repeat(99)}\r`.repeat(3000) + "\x04");
        terminal.write('echo "PASTED $(wc -c < pasted)"; exit 5\r');
        expect(await shell.exited).toBe(5);
        expect(screen).toMatch(/^PASTED 300000\r?$/m);
        expect((await m.run(["destroy", "term"])).code).toBe(0);
      } finally {
        m.remove();
      }
    }, 60_000);
  }
});

/** argv[0] of the first child of `pid` ("" while it has none). */
function childArgv0(pid: number): string {
  const child = childrenOf(pid)[0];
  try {
    return child === undefined ? "" : readFileSync(`/proc/${child}/cmdline`, "utf8").split("\0")[0]!;
  } catch {
    return ""; // gone meanwhile
  }
}
