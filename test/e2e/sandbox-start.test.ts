/**
 * sandbox-start (src/providers/local/sandbox-start.c) on its own, as `npm run build` wrote it for
 * this machine: what it makes of the process it becomes, and how it refuses. The ways the local
 * provider uses it (the handover, the waiter) run through the binary in local-network,
 * local-left-behind and isolation; here each option is checked against /proc, and each failure
 * for its one line and exit code, before any program could start.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { startHelperFile } from "../../scripts/build-binaries";
import { startHelper } from "../../src/providers/local/start";
import { BINARY, freshEnv } from "../helpers";

const helper = startHelperFile(process.arch as "x64" | "arm64");
const isRoot = process.getuid?.() === 0;
const work = mkdtempSync(join(tmpdir(), "sandbox-start-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function start(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", env: { PATH: "/usr/bin:/bin" } });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

/** `argv` in a mount namespace of its own where /etc/passwd is `passwd` (as a sandbox's is ours). */
function withPasswd(passwd: string, argv: string[]): string[] {
  const file = join(work, `passwd-${Math.random().toString(36).slice(2)}`);
  writeFileSync(file, passwd);
  return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", 'mount --bind "$0" /etc/passwd && exec "$@"', file, ...argv];
}

const status = "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Groups):' /proc/self/status | tr -s '\\t ' ' '";

describe.skipIf(process.platform !== "linux")("sandbox-start", () => {
  test.skipIf(!isRoot)("--user: the user's uid and gid from /etc/passwd, no groups, no capabilities, no new privileges", async () => {
    const r = await start(withPasswd("root:x:0:0:root:/root:/bin/sh\nsandbox:x:201234:201234:sandbox:/home:/bin/sh\n", [helper, "--user", "sandbox", "--", "sh", "-c", `id -u; id -g; ${status}`]));
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe(
      ["201234", "201234", "Groups: ", "CapInh: 0000000000000000", "CapPrm: 0000000000000000", "CapEff: 0000000000000000", "CapBnd: 0000000000000000", "CapAmb: 0000000000000000", "NoNewPrivs: 1", ""].join("\n"),
    );
    expect(r.code).toBe(0);
  });

  // A sandbox whose maker died before writing its /etc/passwd (the handshake's empty file).
  test.skipIf(!isRoot)("--user refuses a /etc/passwd without the user: 125, one line, the program never runs", async () => {
    for (const passwd of ["", "root:x:0:0:root:/root:/bin/sh\nsandboxer:x:5:5::/:/bin/sh\n"]) {
      const r = await start(withPasswd(passwd, [helper, "--user", "sandbox", "--", "sh", "-c", "echo ran"]));
      expect(r).toEqual({ code: 125, stdout: "", stderr: "sandboxes: the sandbox's /etc/passwd has no user sandbox\n" });
    }
  });

  test.skipIf(!isRoot)("--drop-capabilities: the same uid, no capabilities, no new privileges", async () => {
    const r = await start([helper, "--drop-capabilities", "--", "sh", "-c", `id -u; ${status} | grep -v Groups`]);
    expect(r.stdout).toBe(["0", "CapInh: 0000000000000000", "CapPrm: 0000000000000000", "CapEff: 0000000000000000", "CapBnd: 0000000000000000", "CapAmb: 0000000000000000", "NoNewPrivs: 1", ""].join("\n"));
    expect(r.code).toBe(0);
  });

  test("--nproc and --as: soft and hard limits of the program", async () => {
    const r = await start([helper, "--nproc", "321", "--as", String(512 * 1024 * 1024), "--", "sh", "-c", "grep -E '^Max (processes|address space)' /proc/self/limits | tr -s ' '"]);
    expect(r.stdout).toBe("Max processes 321 321 processes \nMax address space 536870912 536870912 bytes \n");
    expect(r.code).toBe(0);
  });

  test("no options: becomes the program, found on PATH, with its arguments and exit code", async () => {
    const r = await start([helper, "--", "sh", "-c", 'echo "$0 $1"; exit 7', "a b", "c"]);
    expect(r).toEqual({ code: 7, stdout: "a b c\n", stderr: "" });
  });

  test("a program that is not there: 127; one that cannot run: 126; one line each", async () => {
    expect(await start([helper, "--", "no-such-program-here"])).toEqual({ code: 127, stdout: "", stderr: "sandboxes: cannot run no-such-program-here: No such file or directory\n" });
    expect(await start([helper, "--", "/etc"])).toEqual({ code: 126, stdout: "", stderr: "sandboxes: cannot run /etc: Permission denied\n" });
  });

  test("bad arguments: 125 and one line, nothing run", async () => {
    const line = "sandboxes: sandbox-start: bad arguments (it is started by sandboxes, not by hand)\n";
    for (const argv of [[], ["--"], ["--bogus", "--", "true"], ["--nproc", "many", "--", "true"], ["--listen", "99999", "/x", "--bridge", "1", "b", "--", "true"], ["--listen", "3128", "/x", "--", "true"], ["--bridge", "9", "--", "true"],
      // The namespaces and the root's steps only with --root (and all of a step's words); --as-init
      // (a holder, pid 1 itself) with nothing of a program's.
      ["--unshare-net", "--", "true"], ["--as-init", "--", "true"], ["--tmpfs", "/", "755", "root", "--", "true"], ["--root", work, "--tmpfs", "/", "755", "--", "true"],
      ["--root", work, "--as-init", "--user", "sandbox", "--", "true"],
      // Entering: a pid, and nothing that makes a sandbox.
      ["--enter-net", "--", "true"], ["--new-session", "--", "true"], ["--terminal", "--", "true"], ["--enter", "1", "--terminal", "--new-session", "--", "true"], ["--enter", "one", "--", "true"], ["--enter", "1", "--root", work, "--", "true"], ["--enter", "1", "--die-with-parent", "--", "true"]]) {
      expect(await start([helper, ...argv])).toEqual({ code: 125, stdout: "", stderr: line });
    }
  });

  test("--cgroup: its own pid written to each file given", async () => {
    const files = [join(work, "procs-a"), join(work, "procs-b")];
    for (const file of files) writeFileSync(file, "");
    const r = await start([helper, "--cgroup", files[0]!, "--cgroup", files[1]!, "--", "sh", "-c", "echo $$"]);
    expect(r.code).toBe(0);
    expect(files.map((file) => readFileSync(file, "utf8"))).toEqual([r.stdout.trim(), r.stdout.trim()]);
  });

  // util-linux's root (isolation.ts's unshareRoot), made by pid 1 before the program could start.
  test("--root: a host path to bind that is not there: 125, one line, the program never runs", async () => {
    const root = mkdtempSync(join(work, "root-"));
    const r = await start([helper, ...(isRoot ? [] : ["--unshare-user"]), "--root", root, "--tmpfs", "/", "755", "sandbox", "--ro-bind", "/usr", "/usr", "--ro-bind", join(work, "not-here"), "/opt/x", "--", "/usr/bin/echo", "ran"]);
    expect(r).toEqual({ code: 125, stdout: "", stderr: `sandboxes: cannot bind ${join(work, "not-here")} into the sandbox: No such file or directory\n` });
  });

  test("--enter: a sandbox that is not running (its pid 1 gone): 125, one line, nothing run", async () => {
    const gone = Bun.spawnSync(["true"]).pid;
    expect(await start([helper, "--enter", String(gone), "--new-session", "--", "sh", "-c", "echo ran"])).toEqual({ code: 125, stdout: "", stderr: "sandboxes: cannot enter the sandbox (is it running?): No such file or directory\n" });
  });

  // The other side gone (the `sandboxes` process that runs the sandbox died): before it read the
  // descriptor's number, or after.
  test("--listen: the other side closes, at once or having read: 125, one line, the program never runs", async () => {
    for (const [when, line] of [["at once", /^sandboxes: (cannot reach the egress proxy at \S+: (Broken pipe|Connection reset by peer)|no answer from the egress proxy)\n$/], ["having read", /^sandboxes: no answer from the egress proxy\n$/]] as const) {
      const socket = join(work, `closing-${when.replace(" ", "-")}.sock`);
      const closing = Bun.listen({ unix: socket, socket: { open: (s) => void (when === "at once" && s.end()), data: (s) => void s.end() } });
      try {
        const r = await start(["unshare", ...(isRoot ? [] : ["--user", "--map-root-user"]), "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", helper, "--listen", "3128", socket, "--bridge", "1", "/bin/false", "--", "sh", "-c", "echo ran"]);
        expect(r.stdout).toBe("");
        expect(r.stderr).toMatch(line);
        expect(r.code).toBe(125);
      } finally {
        closing.stop(true);
      }
    }
  });

  // Written out into the state directory, which may be on a filesystem mounted noexec: a bind
  // keeps the flag, so it could not run inside either. The binary tries it once as it writes it.
  test.skipIf(!isRoot)("a state directory mounted noexec: the run starts its program without it, and leaves none of it there", async () => {
    const { home, env } = freshEnv();
    try {
      const state = env.XDG_STATE_HOME!;
      // Then what its bin/ holds: nothing half made is left there (the next run tries again).
      const script = 'mount -t tmpfs -o noexec,mode=700 state "$0" && "$@"; code=$?; echo "bin: $(ls -A "$0/sandboxes/bin")"; exit $code';
      const r = await start(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, state, BINARY, "run", "-p", "local", "echo ran; id -un"]);
      expect(r.stdout).toBe("ran\nsandbox\nbin: \n");
      expect(r.code).toBe(0);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  test("written out once into the state directory's bin/; past three builds of its kind, the oldest removed", async () => {
    const { home, env } = freshEnv();
    try {
      const bin = join(env.XDG_STATE_HOME!, "sandboxes", "bin");
      const run = () => Bun.spawnSync([BINARY, "run", "-p", "local", "--network", "none", "true"], { env });
      expect(run().exitCode).toBe(0);
      const [written] = readdirSync(bin);
      expect(written).toMatch(/^sandbox-start-linux-(x64|arm64)-[a-z0-9]+$/);
      // Older builds' (a day, two and three old), and one of a run from the sources (another kind).
      const older = [1, 2, 3].map((days) => {
        const name = written!.replace(/-[a-z0-9]+$/, `-0ld${days}`);
        writeFileSync(join(bin, name), "");
        const when = new Date(Date.now() - days * 86_400_000);
        utimesSync(join(bin, name), when, when);
        return name;
      });
      writeFileSync(join(bin, "sandbox-start-sources-1-2"), "");
      // Found where it was written: nothing is written, nothing removed.
      expect(run().exitCode).toBe(0);
      expect(readdirSync(bin).sort()).toEqual([...older, written!, "sandbox-start-sources-1-2"].sort());
      // Written again: the newest three of its kind stay.
      rmSync(join(bin, written!));
      expect(run().exitCode).toBe(0);
      expect(readdirSync(bin).sort()).toEqual([older[0]!, older[1]!, written!, "sandbox-start-sources-1-2"].sort());
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });

  // One process, several state directories (the library, a test run), or one whose file a newer
  // build removed (the MCP server across an upgrade): looked for each time, never remembered.
  test("startHelper writes it into each state directory it is asked for, again once removed", async () => {
    const [first, second] = [join(work, "state-1"), join(work, "state-2")];
    const a = await startHelper(first, {});
    expect(a).toStartWith(join(first, "bin", "sandbox-start-sources-"));
    rmSync(first, { recursive: true });
    const b = await startHelper(second, {});
    expect(b).toStartWith(join(second, "bin", "sandbox-start-sources-"));
    rmSync(b!);
    expect(await startHelper(second, {})).toBe(b);
    expect(readdirSync(join(second, "bin"))).toEqual([basename(b!)]);
    expect(await startHelper(second, { SANDBOXES_LOCAL_START: "off" })).toBeUndefined();
  });
});
