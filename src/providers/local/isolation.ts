import { existsSync, lstatSync, realpathSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Mount } from "../types";
import { shellQuote as quote } from "../../base/quote";

/**
 * How a local sandbox is built. Two mechanisms with one layout:
 *  - bubblewrap, when installed;
 *  - util-linux `unshare` + a small mount script, which every distribution ships.
 * Both give new mount, pid, ipc and uts namespaces (and net with --network none); as an
 * ordinary user also a user namespace; as root the program is dropped to an unprivileged uid
 * (setpriv), because a user namespace created by root still maps to host root.
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
  network: boolean;
  /** Set when we run as root: the unprivileged uid/gid the program runs as. */
  dropToUid?: number;
}

/** System directories shared read-only; a missing one is skipped (e.g. /lib64 on arm64). */
const SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/nix", "/snap"];

/** Toolchains users install under their home directory; only these parts are shared, read-only. */
const HOME_TOOLCHAINS = [".cargo/bin", ".rustup", ".pyenv", ".nvm", ".bun", "go/bin", ".deno", ".volta", ".local/bin", ".sdkman"];

/** Directories of the caller that must be visible read-only so their toolchains work inside. */
export function toolchainBinds(env: Record<string, string | undefined>, callerHome: string): Array<[string, string]> {
  const binds = new Map<string, string>();
  const add = (path: string) => {
    if (!path || !path.startsWith("/") || !existsSync(path)) return;
    const absolute = resolve(path);
    if (SYSTEM_DIRS.some((dir) => absolute === dir || absolute.startsWith(dir + "/"))) return;
    if (absolute === "/" || absolute === callerHome || isSecretPath(absolute, callerHome)) return;
    // A PATH entry that is the home itself, or /root, would expose every secret in it.
    if (absolute === "/root" || absolute === "/home") return;
    binds.set(absolute, absolute);
  };
  for (const rel of HOME_TOOLCHAINS) add(join(callerHome, rel));
  for (const dir of (env.PATH ?? "").split(":")) add(dir);
  for (const variable of ["RUSTUP_HOME", "PYENV_ROOT", "NVM_DIR", "GOROOT", "BUN_INSTALL", "VOLTA_HOME"]) {
    const value = env[variable];
    if (value) add(value);
  }
  // Symlinked PATH directories (e.g. pyenv shims pointing elsewhere) need their targets too.
  for (const path of [...binds.keys()]) {
    try {
      const real = realpathSync(path);
      if (real !== path) add(real);
    } catch {
      /* vanished between checks: nothing to bind */
    }
  }
  // Nested binds must come after their parents, so sort by depth.
  return [...binds.entries()].sort((a, b) => a[0].split("/").length - b[0].split("/").length);
}

function isSecretPath(path: string, home: string): boolean {
  const secrets = [".ssh", ".aws", ".gnupg", ".config", ".npmrc", ".docker", ".kube", ".netrc", ".cargo/credentials.toml", ".cargo/credentials"];
  return secrets.some((secret) => path === join(home, secret) || path.startsWith(join(home, secret) + "/"));
}

export function systemDirs(): string[] {
  return SYSTEM_DIRS.filter((dir) => existsSync(dir));
}

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

const DROP_PRIVILEGES = (uid: number) => [
  "setpriv",
  `--reuid=${uid}`,
  `--regid=${uid}`,
  "--clear-groups",
  "--inh-caps=-all",
  "--bounding-set=-all",
  "--no-new-privs",
  "--",
];

/** argv that runs `program` (already including env(1) and cwd handling) inside the sandbox. */
export function bwrapArgv(bwrap: string, layout: SandboxLayout, program: string[], options: { pty: boolean }): string[] {
  const argv = [bwrap, "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"];
  if (!options.pty) argv.push("--new-session");
  if (!layout.network) argv.push("--unshare-net");
  if (layout.dropToUid === undefined) argv.push("--unshare-user");
  for (const dir of systemDirs()) {
    if (isSymlink(dir)) argv.push("--symlink", readLinkSafe(dir), dir);
    else argv.push("--ro-bind", dir, dir);
  }
  argv.push("--ro-bind", layout.passwdFile, "/etc/passwd", "--ro-bind", layout.groupFile, "/etc/group");
  argv.push("--proc", "/proc", "--dev", "/dev", "--tmpfs", "/run", "--tmpfs", "/var", "--symlink", "../tmp", "/var/tmp");
  argv.push("--symlink", "../run", "/var/run", "--tmpfs", "/home", "--tmpfs", "/root", "--tmpfs", "/mnt");
  argv.push("--bind", layout.tmpDir, "/tmp");
  // bwrap creates missing parents of a mount point mode 0700, which a dropped uid cannot enter.
  for (const parent of ancestors(layout.callerHome)) argv.push("--perms", "0755", "--dir", parent);
  argv.push("--bind", layout.homeDir, layout.callerHome);
  for (const [host, inside] of layout.readOnlyBinds) argv.push("--ro-bind", host, inside);
  for (const mount of layout.mounts) {
    for (const parent of ancestors(mount.sandboxPath)) argv.push("--perms", "0755", "--dir", parent);
    argv.push(mount.readonly ? "--ro-bind" : "--bind", mount.hostPath, mount.sandboxPath);
  }
  argv.push("--chdir", "/");
  argv.push("--");
  if (layout.dropToUid !== undefined) argv.push(...DROP_PRIVILEGES(layout.dropToUid));
  argv.push(...program);
  return argv;
}

/** "/a/b/c" -> ["/a", "/a/b"]. */
function ancestors(path: string): string[] {
  const parts = path.split("/").filter(Boolean);
  return parts.slice(0, -1).map((_, i) => "/" + parts.slice(0, i + 1).join("/"));
}

function readLinkSafe(path: string): string {
  try {
    return require("node:fs").readlinkSync(path) as string;
  } catch {
    return path;
  }
}


/**
 * argv for the util-linux mechanism: `unshare` creates the namespaces, then a POSIX sh script
 * assembles the new root under layout.rootDir with bind mounts, chroots and runs the program.
 */
export function unshareArgv(layout: SandboxLayout, program: string[], isRoot: boolean): string[] {
  const R = layout.rootDir;
  const lines: string[] = ["set -e", `R=${quote(R)}`, 'mount -t tmpfs -o mode=755 sandbox "$R"'];
  const roBind = (host: string, inside: string, kind: "dir" | "file" = "dir") => {
    const target = `"$R"${quote(inside)}`;
    lines.push(kind === "dir" ? `[ -d ${target} ] || mkdir -p ${target}` : `[ -e ${target} ] || { mkdir -p "$(dirname ${target})"; touch ${target}; }`);
    lines.push(`mount --rbind ${quote(host)} ${target}`, `mount -o remount,bind,ro ${target} 2>/dev/null || mount -o remount,bind,ro,nosuid,nodev ${target}`);
  };
  const rwBind = (host: string, inside: string) => {
    lines.push(`mkdir -p "$R"${quote(inside)}`, `mount --bind ${quote(host)} "$R"${quote(inside)}`);
  };
  for (const dir of systemDirs()) {
    if (isSymlink(dir)) lines.push(`ln -s ${quote(readLinkSafe(dir))} "$R"${quote(dir)}`);
    else roBind(dir, dir);
  }
  roBind(layout.passwdFile, "/etc/passwd", "file");
  roBind(layout.groupFile, "/etc/group", "file");
  lines.push('mkdir -p "$R/proc" "$R/dev" "$R/run" "$R/var" "$R/home" "$R/root" "$R/mnt"');
  lines.push('mount -t proc -o nosuid,nodev,noexec proc "$R/proc"');
  lines.push('mount -t tmpfs -o mode=755 dev "$R/dev"');
  for (const device of ["null", "zero", "full", "random", "urandom", "tty"]) {
    lines.push(`touch "$R/dev/${device}"; mount --bind /dev/${device} "$R/dev/${device}"`);
  }
  lines.push('ln -s /proc/self/fd "$R/dev/fd"; ln -s /proc/self/fd/0 "$R/dev/stdin"; ln -s /proc/self/fd/1 "$R/dev/stdout"; ln -s /proc/self/fd/2 "$R/dev/stderr"');
  lines.push('mkdir -p "$R/dev/pts" "$R/dev/shm"; mount -t tmpfs -o mode=1777 shm "$R/dev/shm"');
  lines.push('mount -t tmpfs -o mode=755 run "$R/run"; mount -t tmpfs -o mode=755 var "$R/var"; ln -s ../tmp "$R/var/tmp"; ln -s ../run "$R/var/run"');
  lines.push('mount -t tmpfs -o mode=755 home "$R/home"; mount -t tmpfs -o mode=700 root "$R/root"; mount -t tmpfs mnt "$R/mnt"');
  rwBind(layout.tmpDir, "/tmp");
  rwBind(layout.homeDir, layout.callerHome);
  for (const [host, inside] of layout.readOnlyBinds) roBind(host, inside);
  for (const mount of layout.mounts) (mount.readonly ? roBind : rwBind)(mount.hostPath, mount.sandboxPath);
  lines.push('hostname sandbox 2>/dev/null || true');
  lines.push('cd "$R"');
  const inner = [...(layout.dropToUid !== undefined ? DROP_PRIVILEGES(layout.dropToUid) : []), ...program];
  // Not exec: this shell stays pid 1 of the namespace and keeps unshare's --kill-child death
  // signal (setpriv's uid change clears it), so killing unshare kills the whole process tree.
  lines.push(`chroot "$R" ${inner.map(quote).join(" ")}`, 'exit $?');
  const argv = ["unshare", "--mount", "--pid", "--fork", "--ipc", "--uts", "--kill-child", "--propagation", "private"];
  if (!isRoot) argv.push("--user", "--map-root-user");
  if (!layout.network) argv.push("--net");
  argv.push("sh", "-c", lines.join("\n"));
  return argv;
}
