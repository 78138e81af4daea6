import { chmodSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { carriedHelper } from "./carried-start";

/** Where a sandbox sees sandbox-start: bound there read-only (isolation.ts's ownBinds). */
export const START_INSIDE = "/run/sandboxes/start";


/** How many builds of one kind stay in bin/: a few versions in use side by side keep theirs. */
const KEPT_BUILDS = 3;

/**
 * sandbox-start (sandbox-start.c), the first process of a one-shot sandbox (without bubblewrap
 * also the maker of every sandbox) and of each command entered into a kept one, written out once
 * into `stateDir`/bin, whence sandboxes run it or bind it. A Linux release binary carries it among its
 * embedded files (scripts/build-binaries.ts), under a name that holds a hash of its contents; a
 * run from the sources (the npm package) finds it in dist/ (startHelperFile), and names it by its
 * size and time. So a new build writes its own beside an older one, and removes the oldest of its
 * kind past KEPT_BUILDS (a sandbox still running one keeps it: its bind holds the file). Looked
 * for on every run, not remembered: a long-lived process (the MCP server, the library) may see
 * it removed by a newer build, or use several state directories. Made under another name, run
 * once there (a filesystem mounted noexec would stop it inside the sandbox too: a bind keeps
 * the flag), and renamed, so that a run beside the first one never executes it half written.
 * Undefined where there is none (not on Linux, the sources never built), where it cannot be
 * written or run, or with SANDBOXES_LOCAL_START=off: the programs it stands in for (setpriv,
 * prlimit, a bridge started first; unshare and a mount script; nsenter) then do (isolation.ts).
 */
export async function startHelper(stateDir: string, env: Record<string, string | undefined>): Promise<string | undefined> {
  if (env.SANDBOXES_LOCAL_START === "off") return undefined;
  const carried = carriedHelper();
  if (!carried) return undefined;
  const dir = join(stateDir, "bin");
  const path = join(dir, carried.name);
  if (existsSync(path)) return path;
  const partial = `${path}.${process.pid}.partial`;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(partial, await carried.file.bytes());
    // Any user's to run: as root the sandbox's own uid runs it.
    chmodSync(partial, 0o755);
    const tried = Bun.spawnSync([partial, "--", "true"], { env: { PATH: "/usr/bin:/bin" }, stdin: "ignore", stdout: "ignore", stderr: "ignore" });
    if (tried.exitCode !== 0) throw new Error("it does not run here");
    renameSync(partial, path);
  } catch {
    try {
      rmSync(partial, { force: true });
    } catch {
      // A state directory we may not write (or look into): what comes next says so.
    }
    return undefined;
  }
  const builds = readdirSync(dir).filter((entry) => entry.startsWith(carried.family) && !entry.endsWith(".partial"));
  const newestFirst = builds.map((entry) => ({ entry, mtime: statSync(join(dir, entry), { throwIfNoEntry: false })?.mtimeMs ?? 0 })).sort((a, b) => b.mtime - a.mtime);
  for (const { entry } of newestFirst.slice(KEPT_BUILDS)) if (entry !== carried.name) rmSync(join(dir, entry), { force: true });
  return path;
}
