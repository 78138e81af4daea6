import { existsSync, lstatSync, readFileSync, readlinkSync, realpathSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Mount, NetworkMode } from "../types";
import { shellQuote as quote } from "../../base/quote";
import { type LimitPlan, rlimitArgv } from "./limits";
import { unescapeMountField } from "./limits-host";
import { START_INSIDE } from "./start";

/**
 * How a local sandbox is built. Two mechanisms with one layout:
 *  - bubblewrap, when installed;
 *  - otherwise ("util-linux") sandbox-start itself (startUnshareArgv), or where it cannot run,
 *    util-linux `unshare` + a small mount script (unshareArgv), which every distribution ships.
 * Both give new mount, pid, ipc, uts and network namespaces (the network one unless --network
 * host); as an ordinary user also a user namespace, in which the program is uid 0 without
 * capabilities (as in rootless Podman); as root the program is dropped to an unprivileged uid
 * (by sandbox-start, or setpriv without it), because a user namespace created by root still maps
 * to host root.
 *
 * Either wrapper starts one of two things inside: a one-shot program (run without --keep), or the
 * holder of a kept sandbox, a shell that keeps the namespaces alive and reaps orphans while
 * `exec`, `shell` and `cp` enter them (startEnterArgv, or nsenter without sandbox-start).
 */
export type IsolationMode = "bwrap" | "unshare";

export interface SandboxLayout {
  /** Host directory that becomes the sandbox's home (at the caller's own $HOME path). */
  homeDir: string;
  /** Host directory that becomes /tmp. */
  tmpDir: string;
  /** Generated /etc/passwd and /etc/group, so `whoami` and tools that look up the user work. */
  passwdFile: string;
  groupFile: string;
  /** Mount point used by the unshare mechanism to assemble the new root. */
  rootDir: string;
  /** The caller's home path, e.g. /root or /home/alice. */
  callerHome: string;
  /** Read-only binds of toolchains and PATH directories: [hostPath, sandboxPath]. */
  readOnlyBinds: Array<[string, string]>;
  mounts: Mount[];
  network: NetworkMode;
  /** The sandbox's /etc/hosts (localhost, its hostname and host.sandboxes.internal). */
  hostsFile: string;
  /** Host directory holding the egress proxy's socket, seen inside as EGRESS_DIR. */
  egressDir: string;
  /** How the sandboxes binary is seen inside (for the egress bridge): binds and argv. */
  helper: { binds: Array<[string, string]>; argv: string[] };
  /**
   * sandbox-start on the host (start.ts), for a one-shot program: bound at START_INSIDE, it
   * starts the program (startArgv), which then finds the bridge's port listening at once, the
   * bridge itself starting only on the first connection, if ever.
   */
  start?: string;
  /**
   * Set when this process itself makes the sandbox's 127.0.0.1:BRIDGE_PORT listener (netns.ts,
   * as root, for a one-shot program): no bridge runs inside, and the sandbox needs neither the
   * proxy's socket directory nor the helper binary.
   */
  egressListener?: boolean;
  /** Set when we run as root: the unprivileged uid/gid the program runs as. */
  dropToUid?: number;
}

/**
 * What the wrapper starts inside: the program itself, with the rlimits it starts under (set by
 * sandbox-start, or prlimit(1) without it), or the holder of a kept sandbox.
 */
export type Inner = { kind: "program"; argv: string[]; rlimits?: LimitPlan["rlimits"] } | { kind: "holder" };

/** The first descriptor past stdio that a wrapper inherits from us (BwrapHandshake's, bwrapArgv's rootFrom). */
export const FIRST_EXTRA_FD = 3;

/** The egress bridge listens here on the sandbox's own loopback (proxyEnvironment(BRIDGE_PORT)). */
export const BRIDGE_PORT = 3128;
/** Inside the sandbox: our own files (the helper binary, the proxy's socket directory). */
export const RUN_DIR = "/run/sandboxes";
export const EGRESS_DIR = `${RUN_DIR}/net`;
export const EGRESS_SOCKET = "egress.sock";
/** The proxy's unix socket as the sandbox sees it. */
const EGRESS_SOCKET_INSIDE = `${EGRESS_DIR}/${EGRESS_SOCKET}`;
/** The sandbox's user in its /etc/passwd and /etc/group (its uid is dropToUid as root). */
export const SANDBOX_USER = "sandbox";
/** The line the holder prints once the sandbox is up (and its bridge listens). */
export const HOLDER_READY = "sandboxes-holder-ready";

/** System directories shared read-only; a missing one is skipped (e.g. /lib64 on arm64). */
const SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/nix", "/snap"];

/** Toolchains users install under their home directory; only these parts are shared, read-only. */
const HOME_TOOLCHAINS = [".cargo/bin", ".rustup", ".pyenv", ".nvm", ".bun", "go/bin", ".deno", ".volta", ".local/bin", ".sdkman"];

/** Directories of the caller that must be visible read-only so their toolchains work inside. */
export function toolchainBinds(env: Record<string, string | undefined>, home: string): Array<[string, string]> {
  const callerHome = resolve(home);
  const binds = new Set<string>();
  const add = (path: string) => {
    if (!path || !path.startsWith("/")) return;
    const absolute = resolve(path);
    if (binds.has(absolute) || SYSTEM_DIRS.some((dir) => absolute === dir || absolute.startsWith(dir + "/"))) return;
    // /root and /home hold other users' homes too.
    if (absolute === "/root" || absolute === "/home" || exposesSecrets(absolute, callerHome)) return;
    if (existsSync(absolute)) binds.add(absolute);
  };
  for (const rel of HOME_TOOLCHAINS) add(join(callerHome, rel));
  for (const dir of (env.PATH ?? "").split(":")) add(dir);
  for (const variable of ["RUSTUP_HOME", "PYENV_ROOT", "NVM_DIR", "GOROOT", "BUN_INSTALL", "VOLTA_HOME"]) {
    const value = env[variable];
    if (value) add(value);
  }
  // Symlinked PATH directories (e.g. pyenv shims pointing elsewhere) need their targets too.
  for (const path of [...binds]) {
    try {
      // The native one (realpath(3)): about 0.1 ms less at its first use, which is every run.
      const real = realpathSync.native(path);
      if (real !== path) add(real);
    } catch {
      /* vanished between checks: nothing to bind */
    }
  }
  // A directory inside another one bound here is seen through it (bwrap binds recursively, as
  // does util-linux's --rbind): binding it again would cost a mount and a mount point each.
  const paths = [...binds];
  return paths.filter((path) => !paths.some((other) => path.startsWith(`${other}/`))).map((path) => [path, path]);
}

const HOME_SECRETS = [".ssh", ".aws", ".gnupg", ".config", ".npmrc", ".docker", ".kube", ".netrc", ".cargo/credentials.toml", ".cargo/credentials"];

/**
 * Whether binding `path` would show the caller's secrets: it is the home or holds it (a PATH
 * entry of `$HOME`, `/`, or the home's parent), lies inside a secret (`~/.config/x/bin`), or holds
 * one (`~/.cargo`, which holds `credentials.toml`). `path` and `home` absolute and normalised.
 */
function exposesSecrets(path: string, home: string): boolean {
  if (path === "/" || path === home || home.startsWith(`${path}/`)) return true;
  const prefix = home === "/" ? "/" : `${home}/`;
  if (!path.startsWith(prefix)) return false;
  const inHome = path.slice(prefix.length);
  return HOME_SECRETS.some((secret) => inHome === secret || inHome.startsWith(`${secret}/`) || secret.startsWith(`${inHome}/`));
}

/** A system directory of this host: bound as it is, or a symlink made again (/bin -> usr/bin). */
type SystemDir = { dir: string; link?: string };

let systemDirsFound: SystemDir[] | undefined;

/**
 * The system directories this host has; looked at once per process. Without an error for the
 * missing ones: a run that throws none saves the milliseconds of Bun's first system error.
 */
function systemDirs(): SystemDir[] {
  return (systemDirsFound ??= SYSTEM_DIRS.flatMap((dir): SystemDir[] => {
    const stats = lstatSync(dir, { throwIfNoEntry: false });
    if (!stats) return [];
    return [stats.isSymbolicLink() ? { dir, link: readlinkSync(dir) } : { dir }];
  }));
}

/**
 * setpriv by its full path (the same inside: /usr is shared), so that no PATH, which a program
 * may get from its environment, chooses it.
 */
let setprivPath: string | undefined;
const setpriv = () => (setprivPath ??= Bun.which("setpriv", { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" }) ?? "setpriv");

/**
 * `argv` killed (SIGKILL) when this process dies, however it dies: util-linux unshare has no
 * --die-with-parent of its own (bwrap has), and its --kill-child then takes the sandbox's whole
 * process tree down with it. The death signal survives the exec of unshare (not set-uid) and
 * its user namespace (the same uid outside).
 */
export function dieWithParent(argv: string[]): string[] {
  return [setpriv(), "--pdeathsig", "KILL", "--", ...argv];
}

/**
 * By name: setpriv looks a user up by name first, and the sandbox's own /etc/passwd and
 * /etc/group (read-only, ours) name its uid `sandbox`, so the lookup ends there. A number would
 * miss there and go on through every NSS module of the host's nsswitch.conf (systemd's: a
 * library to load and sockets to try), a good part of setpriv's start-up. A sandbox without the
 * entry fails to start rather than run as anyone else.
 */
const DROP_PRIVILEGES = () => [
  setpriv(),
  `--reuid=${SANDBOX_USER}`,
  `--regid=${SANDBOX_USER}`,
  "--clear-groups",
  "--inh-caps=-all",
  "--bounding-set=-all",
  "--no-new-privs",
  "--",
];

/**
 * In a user namespace of its own the program is uid 0 there: it keeps no capability, so it
 * cannot remount the read-only binds (the caller's toolchains) writable.
 */
const DROP_CAPABILITIES = () => [setpriv(), "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"];

/**
 * The prefix that turns a process inside the sandbox into the sandbox's unprivileged user.
 * `capabilities` says whether the process still has any: bubblewrap drops them itself for an
 * ordinary user; unshare's mapped root and nsenter's entered user namespace keep them.
 */
export function dropPrivileges(layout: SandboxLayout, capabilities: boolean): string[] {
  if (layout.dropToUid !== undefined) return DROP_PRIVILEGES();
  return capabilities ? DROP_CAPABILITIES() : [];
}

/**
 * Whether the sandbox's egress port reaches the proxy through its unix socket on the host, in a
 * directory bound into the sandbox (the default policy, unless the listener is made from the
 * host: egressListener).
 */
export function egressViaUnixSocket(layout: SandboxLayout): boolean {
  return layout.network === "default" && !layout.egressListener;
}

/**
 * Whether a one-shot program in this layout starts behind sandbox-start, which hands the
 * sandbox's listener over (listeners.ts's takeListener); without it, a bridge starts first.
 */
export function handsOverListener(layout: SandboxLayout): boolean {
  return egressViaUnixSocket(layout) && layout.start !== undefined;
}

/**
 * sandbox-start's argv (sandbox-start.c) for a one-shot program: it becomes the sandbox's user
 * (as root) or drops the capabilities left (util-linux's mapped root), hands over the listener it
 * makes on the sandbox's loopback (the bridge's argv for its waiter, should the handover be
 * refused), sets the program's rlimits, and becomes the program. One static process in place of
 * setpriv, perl and prlimit, each a dynamically loaded program of milliseconds' start.
 */
function startArgv(layout: SandboxLayout, inner: Inner & { kind: "program" }, capabilities: boolean): string[] {
  return [START_INSIDE, ...startOptions(layout, inner, capabilities), "--", ...inner.argv];
}

/** sandbox-start's options for `inner` (startArgv's, without the program). */
function startOptions(layout: SandboxLayout, inner: Inner & { kind: "program" }, capabilities: boolean): string[] {
  const argv = startPrivilegeOptions(layout, capabilities);
  if (egressViaUnixSocket(layout)) {
    const bridge = [...layout.helper.argv, "__egress-bridge", "stdin", EGRESS_SOCKET_INSIDE];
    argv.push("--listen", String(BRIDGE_PORT), EGRESS_SOCKET_INSIDE, "--bridge", String(bridge.length), ...bridge);
  }
  return [...argv, ...startLimitOptions(inner.rlimits)];
}

/** sandbox-start's options that make it the sandbox's user (as dropPrivileges's setpriv does). */
function startPrivilegeOptions(layout: SandboxLayout, capabilities: boolean): string[] {
  if (layout.dropToUid !== undefined) return ["--user", SANDBOX_USER];
  return capabilities ? ["--drop-capabilities"] : [];
}

/** sandbox-start's options that set the program's rlimits (as rlimitArgv's prlimit does). */
function startLimitOptions(rlimits: LimitPlan["rlimits"] | undefined): string[] {
  const { nproc, asBytes } = rlimits ?? {};
  return [...(nproc !== undefined ? ["--nproc", String(nproc)] : []), ...(asBytes !== undefined ? ["--as", String(asBytes)] : [])];
}

/**
 * What runs inside for `inner`: the program itself when there is nothing to prepare; with the
 * default network policy, a one-shot program behind sandbox-start where this binary has it, else a
 * shell that first starts the egress bridge on the sandbox's own loopback and waits until it
 * listens (through a fifo: no polling), so the program's first connection already finds it.
 * The holder then says it is ready and reaps orphans forever: dash's `wait` reaps any child,
 * not only its own jobs.
 */
function innerArgv(layout: SandboxLayout, inner: Inner, capabilities: boolean): string[] {
  if (inner.kind === "program" && layout.start !== undefined) return startArgv(layout, inner, capabilities);
  const lines: string[] = [];
  if (egressViaUnixSocket(layout)) {
    const bridge = [...dropPrivileges(layout, capabilities), ...layout.helper.argv, "__egress-bridge", String(BRIDGE_PORT), EGRESS_SOCKET_INSIDE];
    // A program's bridge ends with it (sandbox-start.c's waiter says why): the shell's pid becomes the program's.
    const program = inner.kind === "program";
    lines.push(
      "mkfifo /run/.egress-ready",
      `${bridge.map(quote).join(" ")}${program ? ' "$$"' : ""} </dev/null >/run/.egress-ready 2>/dev/null &`,
      "read -r _ </run/.egress-ready; rm -f /run/.egress-ready",
    );
  }
  if (inner.kind === "program") {
    const program = [...dropPrivileges(layout, capabilities), ...rlimitArgv(inner.rlimits, inner.argv)];
    if (lines.length === 0) return program;
    return ["/bin/sh", "-c", [...lines, 'exec "$@"'].join("\n"), "sandbox", ...program];
  }
  lines.push(`echo ${HOLDER_READY}`, "exec >/dev/null 2>&1 </dev/null", "while :; do sleep 2147483647 & wait; done");
  return ["/bin/sh", "-c", lines.join("\n")];
}

/** The host's files and directories a sandbox sees besides the system and its home. */
function ownBinds(layout: SandboxLayout): Array<{ host: string; inside: string; kind: "ro-file" | "ro-dir" | "rw-dir" }> {
  const binds: Array<{ host: string; inside: string; kind: "ro-file" | "ro-dir" | "rw-dir" }> = [];
  if (layout.start !== undefined) binds.push({ host: layout.start, inside: START_INSIDE, kind: "ro-file" });
  if (layout.network === "host") return binds;
  binds.push({ host: layout.hostsFile, inside: "/etc/hosts", kind: "ro-file" });
  if (egressViaUnixSocket(layout)) {
    binds.push({ host: layout.egressDir, inside: EGRESS_DIR, kind: "rw-dir" });
    for (const [host, inside] of layout.helper.binds) binds.push({ host, inside, kind: lstatSync(host).isDirectory() ? "ro-dir" : "ro-file" });
  }
  return binds;
}

/**
 * How bwrap and its caller meet as root, where the program runs as the sandbox's user by name
 * (setpriv). The caller hands bwrap the sandbox's root once bwrap is in the sandbox's cgroups and
 * the paths the root binds exist (bwrap looks for each before it mounts anything). bwrap then
 * makes the sandbox's namespaces and its first mounts while the caller finishes the sandbox's
 * files (their owner, the files the program starts with, the mount points in its home) and makes
 * what the program needs in those namespaces (the egress listener, egressListener). bwrap reads
 * the sandbox's /etc/group on `groupFd` (--ro-bind-data) just before it binds the first of those
 * files (its /tmp): the caller hands it over once they are done. bwrap writes the host pid of the
 * sandbox's first process to `infoFd` (JSON, "child-pid"): a file, which bwrap writes to even
 * once its caller is gone (a pipe would kill bwrap then, and its first process would wait for it
 * for ever); the listener is made in that process's network namespace. Then the caller hands over
 * the sandbox's /etc/passwd on `passwdFd`, the root's last mount, which bwrap reads to its end
 * before it goes on to start the program. A caller that died first hands over empty files: the
 * sandbox then has no user or group, and sandbox-start, which runs the program as that user by name,
 * refuses, so the program never starts with no one reading its output.
 * (No seccomp filter and no --block-fd: a filter, even one that allows everything, costs every
 * system call of the program; an end of file on --block-fd would let bwrap go on.)
 */
export interface BwrapHandshake {
  infoFd: number;
  groupFd: number;
  passwdFd: number;
}

/**
 * argv that runs `inner` inside the sandbox. `chdir`: the program's directory, where bwrap starts
 * it (else "/": the program then carries env(1), which also sets the directory).
 *
 * With `rootFrom`, the sandbox's root (bwrapRoot) is not in argv: bwrap reads it from that
 * descriptor (--args), where the caller writes it once the sandbox's files exist, so that bwrap
 * can start meanwhile. Everything that isolates the sandbox (its namespaces, how it dies, how it
 * waits) stays in argv; the root only adds the host's files to an empty one. So a caller that
 * died before writing it leaves bwrap an empty root, where the program cannot even start.
 */
export function bwrapArgv(bwrap: string, layout: SandboxLayout, inner: Inner, options: { pty: boolean; handshake?: BwrapHandshake; chdir?: string; rootFrom?: number }): string[] {
  const argv = [bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"];
  if (options.handshake) argv.push("--info-fd", String(options.handshake.infoFd));
  // Not for the holder: bwrap itself would die with its parent, the CLI.
  if (inner.kind === "program") argv.push("--die-with-parent");
  if (!options.pty) argv.push("--new-session");
  if (layout.network !== "host") argv.push("--unshare-net");
  // uid 0 in its own user namespace: one mapping, no nested namespace (which bwrap makes for
  // --dev when the uid differs, and which nsenter could not enter).
  if (layout.dropToUid === undefined) argv.push("--unshare-user", "--uid", "0", "--gid", "0");
  if (options.rootFrom !== undefined) argv.push("--args", String(options.rootFrom));
  else argv.push(...bwrapRoot(layout, options.chdir, options.handshake));
  argv.push("--");
  argv.push(...innerArgv(layout, inner, false));
  return argv;
}

/**
 * bwrap's arguments that make the sandbox's root, and the directory the program starts in. With
 * a handshake, /etc/group and /etc/passwd are not layout's files but what the caller writes to
 * its descriptors (BwrapHandshake).
 */
export function bwrapRoot(layout: SandboxLayout, chdir: string | undefined, handshake?: Pick<BwrapHandshake, "groupFd" | "passwdFd">): string[] {
  const argv: string[] = [];
  for (const { dir, link } of systemDirs()) {
    if (link !== undefined) argv.push("--symlink", link, dir);
    else argv.push("--ro-bind", dir, dir);
  }
  if (!handshake) argv.push("--ro-bind", layout.passwdFile, "/etc/passwd", "--ro-bind", layout.groupFile, "/etc/group");
  // Empty directories in bwrap's own root, a tmpfs already: a tmpfs each would be a mount each.
  argv.push("--proc", "/proc", "--dev", "/dev", "--dir", "/run", "--dir", "/var", "--symlink", "../tmp", "/var/tmp");
  // --dev's /dev/shm is a directory only root may write; shared memory (POSIX semaphores, python's
  // multiprocessing) needs one every user may, as in a container. A directory of --dev's tmpfs,
  // not a tmpfs of its own: each new filesystem costs a run milliseconds (measured: ~5 ms).
  argv.push("--chmod", "1777", "/dev/shm");
  // /root as the util-linux mechanism's: root's, which the sandbox's user (as root) is not.
  argv.push("--symlink", "../run", "/var/run", "--dir", "/home", "--perms", "0700", "--dir", "/root", "--dir", "/mnt");
  // Before the first of the sandbox's own files: bwrap goes no further before they are done.
  if (handshake) argv.push("--perms", "0644", "--ro-bind-data", String(handshake.groupFd), "/etc/group");
  argv.push("--bind", layout.tmpDir, "/tmp");
  // bwrap creates missing parents of a mount point mode 0700, which a dropped uid cannot enter.
  for (const parent of ancestors(layout.callerHome)) argv.push("--perms", "0755", "--dir", parent);
  argv.push("--bind", layout.homeDir, layout.callerHome);
  for (const [host, inside] of layout.readOnlyBinds) {
    // (A toolchain outside the system's directories: /tmp/x/bin, /home/linuxbrew/.linuxbrew/bin.)
    for (const parent of ancestors(inside)) argv.push("--perms", "0755", "--dir", parent);
    argv.push("--ro-bind", host, inside);
  }
  for (const mount of layout.mounts) {
    for (const parent of ancestors(mount.sandboxPath)) argv.push("--perms", "0755", "--dir", parent);
    argv.push(mount.readonly ? "--ro-bind" : "--bind", mount.hostPath, mount.sandboxPath);
  }
  for (const bind of ownBinds(layout)) {
    for (const parent of ancestors(bind.inside)) if (parent !== "/etc") argv.push("--perms", "0755", "--dir", parent);
    argv.push(bind.kind === "rw-dir" ? "--bind" : "--ro-bind", bind.host, bind.inside);
  }
  if (handshake) argv.push("--perms", "0644", "--ro-bind-data", String(handshake.passwdFd), "/etc/passwd");
  argv.push("--chdir", chdir ?? "/");
  return argv;
}

/** "/a/b/c" -> ["/a", "/a/b"]. */
function ancestors(path: string): string[] {
  const parts = path.split("/").filter(Boolean);
  return parts.slice(0, -1).map((_, i) => "/" + parts.slice(0, i + 1).join("/"));
}



/**
 * One step in making the util-linux mechanism's root under layout.rootDir (`inside`: a path as
 * the sandbox sees it). A bind's mount point is made as the host path is: a directory, or an
 * empty file; a tmpfs or /proc mounts on a directory that an earlier `dirs` step made (all at
 * once: the script forks one mkdir for them). A read-only bind with `tree` makes the mounts it
 * brings along read-only too (readOnly).
 */
type RootStep =
  | { kind: "tmpfs"; inside: string; mode: string; name: string }
  | { kind: "ro-bind" | "bind"; host: string; inside: string; tree?: boolean }
  | { kind: "symlink"; target: string; inside: string }
  | { kind: "proc" | "devpts"; inside: string }
  | { kind: "dirs"; inside: string[] }
  | { kind: "chmod"; mode: string; inside: string };

/** The devices a sandbox's /dev has, bound from the host's (a user namespace may not make any). */
const DEVICES = ["null", "zero", "full", "random", "urandom", "tty"];

/**
 * The util-linux mechanism's root, the same layout as bwrapRoot's: a tmpfs, the system read-only,
 * /proc, a /dev of its own, the sandbox's home and /tmp, and the binds.
 */
function unshareRoot(layout: SandboxLayout): RootStep[] {
  const steps: RootStep[] = [{ kind: "tmpfs", inside: "/", mode: "755", name: "sandbox" }];
  for (const { dir, link } of systemDirs()) steps.push(link !== undefined ? { kind: "symlink", target: link, inside: dir } : readOnly(dir, dir));
  steps.push(readOnly(layout.passwdFile, "/etc/passwd"), readOnly(layout.groupFile, "/etc/group"));
  steps.push({ kind: "dirs", inside: ["/proc", "/dev", "/run", "/var", "/home", "/root", "/mnt"] });
  steps.push({ kind: "proc", inside: "/proc" }, { kind: "tmpfs", inside: "/dev", mode: "755", name: "dev" });
  for (const device of DEVICES) steps.push({ kind: "bind", host: `/dev/${device}`, inside: `/dev/${device}` });
  for (const [name, target] of [["fd", "/proc/self/fd"], ["stdin", "/proc/self/fd/0"], ["stdout", "/proc/self/fd/1"], ["stderr", "/proc/self/fd/2"]]) {
    steps.push({ kind: "symlink", target: target!, inside: `/dev/${name}` });
  }
  // /dev/shm a directory of /dev's tmpfs as under bubblewrap (a filesystem of its own would cost
  // a run milliseconds); devpts, the one /dev has besides, cannot be one.
  steps.push({ kind: "dirs", inside: ["/dev/pts", "/dev/shm"] }, { kind: "chmod", mode: "1777", inside: "/dev/shm" });
  steps.push({ kind: "devpts", inside: "/dev/pts" }, { kind: "symlink", target: "pts/ptmx", inside: "/dev/ptmx" });
  steps.push({ kind: "tmpfs", inside: "/run", mode: "755", name: "run" }, { kind: "tmpfs", inside: "/var", mode: "755", name: "var" });
  steps.push({ kind: "symlink", target: "../tmp", inside: "/var/tmp" }, { kind: "symlink", target: "../run", inside: "/var/run" });
  steps.push({ kind: "tmpfs", inside: "/home", mode: "755", name: "home" }, { kind: "tmpfs", inside: "/root", mode: "700", name: "root" }, { kind: "tmpfs", inside: "/mnt", mode: "755", name: "mnt" });
  steps.push({ kind: "bind", host: layout.tmpDir, inside: "/tmp" }, { kind: "bind", host: layout.homeDir, inside: layout.callerHome });
  for (const [host, inside] of layout.readOnlyBinds) steps.push(readOnly(host, inside));
  for (const mount of layout.mounts) steps.push(mount.readonly ? readOnly(mount.hostPath, mount.sandboxPath) : { kind: "bind", host: mount.hostPath, inside: mount.sandboxPath });
  for (const bind of ownBinds(layout)) steps.push(bind.kind === "rw-dir" ? { kind: "bind", host: bind.host, inside: bind.inside } : readOnly(bind.host, bind.inside));
  return steps;
}

/** A read-only bind; `tree` where the host has mounts below `host`, which must be read-only too. */
function readOnly(host: string, inside: string): RootStep {
  return { kind: "ro-bind", host, inside, tree: hasMountsBelow(host) };
}

let hostMountPoints: string[] | undefined;

/**
 * Whether the host has a mount below `path` (mountinfo's mount points): a
 * bind with none is made read-only by one remount, without reading the sandbox's mount table.
 */
function hasMountsBelow(path: string): boolean {
  hostMountPoints ??= readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((line) => unescapeMountField(line.split(" ")[4] ?? ""))
    .filter(Boolean);
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    return true; // not known: look
  }
  const prefix = real === "/" ? "/" : `${real}/`;
  return hostMountPoints.some((point) => point.startsWith(prefix) && point !== "/");
}

/** A root step as POSIX sh under "$R" (unshareArgv's script). */
function rootStepLines(step: RootStep): string[] {
  const under = (inside: string) => (inside === "/" ? '"$R"' : `"$R"${quote(inside)}`);
  if (step.kind === "dirs") return [`mkdir -p ${step.inside.map(under).join(" ")}`];
  const target = under(step.inside);
  switch (step.kind) {
    case "tmpfs":
      return [`mount -t tmpfs -o mode=${step.mode},nosuid,nodev ${step.name} ${target}`];
    case "ro-bind":
    case "bind": {
      const host = quote(step.host);
      const point = `if [ -d ${host} ]; then [ -d ${target} ] || mkdir -p ${target}; elif [ ! -e ${target} ]; then mkdir -p "$(dirname ${target})"; touch ${target}; fi`;
      if (step.kind === "bind") return [point, `mount --bind ${host} ${target}`];
      const lines = [point, `mount --rbind ${host} ${target}`, `ro_remount ${target}`];
      // The mounts below it in the mount tree (not an earlier mount it now covers).
      if (step.tree) lines.push(`findmnt -n -l -o TARGET -R --mountpoint ${target} | while IFS= read -r m; do ro_remount "$m"; done`);
      return lines;
    }
    case "devpts":
      return [`mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts ${target}`];
    case "chmod":
      return [`chmod ${step.mode} ${target}`];
    case "symlink":
      return [`ln -s ${quote(step.target)} ${target}`];
    case "proc":
      return [`mount -t proc -o nosuid,nodev,noexec proc ${target}`];
  }
}

/** A root step as sandbox-start's arguments (sandbox-start.c's --root). */
function rootStepWords(step: RootStep): string[] {
  switch (step.kind) {
    case "tmpfs":
      return ["--tmpfs", step.inside, step.mode, step.name];
    case "ro-bind":
    case "bind":
      return [step.tree ? "--ro-bind-tree" : `--${step.kind}`, step.host, step.inside];
    case "symlink":
      return ["--symlink", step.target, step.inside];
    case "proc":
    case "devpts":
      return [`--${step.kind}`, step.inside];
    case "dirs":
      return step.inside.flatMap((inside) => ["--dir", inside]);
    case "chmod":
      return ["--chmod", step.mode, step.inside];
  }
}

/**
 * argv for the util-linux mechanism without sandbox-start (SANDBOXES_LOCAL_START=off, or where it
 * cannot run): `unshare` creates the namespaces, then a POSIX sh script assembles
 * the new root under layout.rootDir (unshareRoot), chroots and runs the program.
 */
export function unshareArgv(layout: SandboxLayout, inner: Inner): string[] {
  const isRoot = layout.dropToUid !== undefined;
  // A read-only remount keeps the flags a user namespace may not clear (nosuid, nodev).
  const remount = 'ro_remount() { mount -o remount,bind,ro "$1" 2>/dev/null || mount -o remount,bind,ro,nosuid,nodev "$1"; }';
  // What the script makes, the sandbox's user must pass through (sandbox-start.c's make_root says
  // why); the program gets the caller's umask back.
  const callerUmask = process.umask().toString(8).padStart(4, "0");
  const lines: string[] = ["set -e", "umask 022", remount, `R=${quote(layout.rootDir)}`, ...unshareRoot(layout).flatMap(rootStepLines)];
  lines.push("hostname sandbox 2>/dev/null || true");
  // A new network namespace starts with lo down (bubblewrap brings it up by itself).
  if (layout.network !== "host") lines.push("ip link set lo up 2>/dev/null || ifconfig lo up 2>/dev/null || true");
  lines.push('cd "$R"', `umask ${callerUmask}`);
  const argv_ = innerArgv(layout, inner, !isRoot).map(quote).join(" ");
  if (inner.kind === "holder") {
    // The holder itself is pid 1 (a root shell, so the death signal stays), and nsenter's target.
    lines.push(`exec chroot "$R" ${argv_}`);
  } else {
    // Not exec: this shell stays pid 1 of the namespace and keeps unshare's --kill-child death
    // signal (setpriv's uid change clears it), so killing unshare kills the whole process tree.
    lines.push(`chroot "$R" ${argv_}`, 'exit $?');
  }
  const argv = ["unshare", "--mount", "--pid", "--fork", "--ipc", "--uts", "--kill-child", "--propagation", "private"];
  if (!isRoot) argv.push("--user", "--map-root-user");
  if (layout.network !== "host") argv.push("--net");
  // A session of its own (sandbox-start.c's enter_sandbox says why): setsid(1) does not fork
  // unshare's child, no group leader; -w keeps the status should it have to.
  argv.push("setsid", "-w", "sh", "-c", lines.join("\n"));
  return argv;
}

/**
 * argv that runs a program inside a kept sandbox through sandbox-start (`start`, on the host), in
 * the place of nsenter, setpriv, setsid and prlimit, each a dynamically linked program of
 * milliseconds' start: it joins the cgroups (`cgroupFiles`), the namespaces, root and directory
 * of the sandbox's pid 1 (`target`: the holder, or bwrap's first process; its user namespace
 * first, as an ordinary user), and in a child, which leads a session of its own unless the
 * program has a terminal (what killExecTree kills), becomes the sandbox's user and sets the
 * rlimits.
 */
export function startEnterArgv(start: string, target: number, layout: SandboxLayout, inner: Inner & { kind: "program" }, pty: boolean, cgroupFiles: string[]): string[] {
  const argv = [start, ...cgroupFiles.flatMap((file) => ["--cgroup", file]), "--enter", String(target)];
  if (layout.dropToUid === undefined) argv.push("--enter-user");
  if (layout.network !== "host") argv.push("--enter-net");
  // A terminal's program gets one of the sandbox's own (its /dev/pts/N is the sandbox's too).
  argv.push(pty ? "--terminal" : "--new-session");
  // An entered user namespace gives every capability in it: dropped, as for the holder's own.
  return [...argv, ...startPrivilegeOptions(layout, true), ...startLimitOptions(inner.rlimits), "--", ...inner.argv];
}

/**
 * argv for the util-linux mechanism with sandbox-start (`start`, its path on the host): one
 * static process in the place of setpriv's death signal, the shell that joins the cgroups
 * (`cgroupFiles`, their cgroup.procs), unshare, and the mount script's forty-odd processes
 * (mount, mkdir, ln: ~300 ms of a run here). It makes the same namespaces and the same root
 * (unshareRoot). For a program it stays the sandbox's pid 1, as that script's shell did, and
 * starts the program as the sandbox's user (startArgv's options) in its child; pid 1 becomes a
 * kept sandbox's holder itself.
 */
export function startUnshareArgv(start: string, layout: SandboxLayout, inner: Inner, cgroupFiles: string[]): string[] {
  const isRoot = layout.dropToUid !== undefined;
  // The holder outlives us, and is the sandbox's pid 1 itself (what entered commands join), as root.
  const argv = [start, ...(inner.kind === "program" ? ["--die-with-parent"] : []), ...cgroupFiles.flatMap((file) => ["--cgroup", file])];
  if (!isRoot) argv.push("--unshare-user");
  if (layout.network !== "host") argv.push("--unshare-net");
  argv.push("--root", layout.rootDir, ...unshareRoot(layout).flatMap(rootStepWords));
  if (inner.kind === "holder") return [...argv, "--as-init", "--", ...innerArgv(layout, inner, false)];
  return [...argv, ...startOptions(layout, inner, !isRoot), "--", ...inner.argv];
}
