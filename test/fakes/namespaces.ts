/**
 * One sandbox's own files and processes, for fakes whose sandboxes are local processes (Daytona,
 * Modal): a holder process in mount and pid namespaces of its own, with the sandbox directory's
 * home/ and tmp/ mounted over its HOME and /tmp and a /proc of its own; every command enters them
 * with nsenter. So a command that reaches the wrong sandbox sees none of the right one's files
 * in /tmp and none of its processes. (The Vercel and Sprites fakes hold a mount namespace the same way.)
 */
import { chmodSync, mkdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";

/**
 * $1 the sandbox directory, $2 its HOME inside. A HOME under /home gets an empty /home first, so
 * the mkdir happens in the namespace's tmpfs and not on this machine.
 */
const HOLDER_SCRIPT = [
  'case "$2" in /home/*) mount -t tmpfs fake-home /home && mkdir -p "$2" || exit 1;; esac',
  'mount --bind "$1/home" "$2" && mount --bind "$1/tmp" /tmp || exit 1',
  "echo ready",
  "exec sleep 2147483647",
].join("\n");

/** Runs a command inside: in its directory ($1), as the rest of argv. */
const ENTER_SCRIPT = 'cd "$1" 2>/dev/null || { echo "sandbox: chdir $1: no such file or directory" >&2; exit 1; }; shift; exec "$@"';

export interface Held {
  /** Host pid of pid 1 inside: killing it ends every process of the sandbox. */
  pid: number;
  /** Its pid namespace (readlink of /proc/PID/ns/pid). */
  pidNamespace: string;
}

/** Makes `dir`/home and `dir`/tmp and starts the holder; an error says why it could not. */
export async function holdNamespaces(dir: string, home: string): Promise<Held | { error: string }> {
  mkdirSync(join(dir, "home"), { recursive: true });
  mkdirSync(join(dir, "tmp"), { recursive: true });
  chmodSync(join(dir, "tmp"), 0o1777);
  const asRoot = process.getuid?.() === 0;
  const unshare = Bun.spawn(["unshare", "--mount", "--pid", "--fork", "--mount-proc", ...(asRoot ? [] : ["--map-root-user"]), "/bin/sh", "-c", HOLDER_SCRIPT, "fake-sandbox", dir, home], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const reader = (unshare.stdout as ReadableStream<Uint8Array>).getReader();
  const first = await reader.read();
  reader.releaseLock();
  if (first.done || !new TextDecoder().decode(first.value).startsWith("ready")) {
    return { error: (await new Response(unshare.stderr as ReadableStream<Uint8Array>).text()).trim() || `unshare exited ${await unshare.exited}` };
  }
  // unshare --fork waits for its child, the shell that became pid 1 inside.
  const pid = Number(readFileSync(`/proc/${unshare.pid}/task/${unshare.pid}/children`, "utf8").trim().split(" ")[0]);
  return { pid, pidNamespace: readlinkSync(`/proc/${pid}/ns/pid`) };
}

/** argv that runs `argv` inside the holder's namespaces, in `cwd` (a path inside). */
export function enter(held: Held, cwd: string, argv: string[]): string[] {
  const asRoot = process.getuid?.() === 0;
  return ["nsenter", "--target", String(held.pid), "--mount", "--pid", ...(asRoot ? [] : ["--user", "--preserve-credentials"]), "--", "/bin/sh", "-c", ENTER_SCRIPT, "fake-sandbox", cwd, ...argv];
}

/** A path inside the sandbox, as this machine reaches it through the holder's root. */
export function pathInside(held: Held, path: string): string {
  return `/proc/${held.pid}/root${path}`;
}

/** Ends the sandbox's processes, all of them: pid 1 of a pid namespace takes the rest along. */
export function release(held: Held): void {
  try {
    process.kill(held.pid, "SIGKILL");
  } catch {}
}

/**
 * nsenter mirrors its child's stop onto itself (as su does) and waits for a SIGCONT that, in a
 * real sandbox, no one would send: a tree stopped on its way to being killed (SIGSTOP, then TERM
 * and CONT) would leave a stopped nsenter that never collects the exit. The fake continues it.
 * Returns the function that ends the watch.
 */
export function keepEntering(nsenterPid: number): () => void {
  const watch = setInterval(() => {
    try {
      const stat = readFileSync(`/proc/${nsenterPid}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2)[0] === "T") process.kill(nsenterPid, "SIGCONT");
    } catch {
      clearInterval(watch);
    }
  }, 100);
  watch.unref?.();
  return () => clearInterval(watch);
}
