import { chmodSync, existsSync, mkdirSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";

/** Where a sandbox sees sandbox-start: bound there read-only (isolation.ts's ownBinds). */
export const START_INSIDE = "/run/sandboxes/start";

let written: string | undefined;

/**
 * sandbox-start (sandbox-start.c), the first process of a one-shot sandbox, written out once
 * into `stateDir`/bin, whence sandboxes bind it. A Linux release binary carries it among its
 * embedded files (scripts/build-binaries.ts), under a name that holds a hash of its contents; a
 * run from the sources (the npm package) finds it in dist/ (startHelperFile), and names it by its
 * size and time. So a new build writes its own beside an older one. Made under another name and
 * renamed, so that a run beside the first one never executes it half written. Undefined where
 * there is none (not on Linux, or the sources never built), or with SANDBOXES_LOCAL_START=off: a
 * sandbox then starts its program through setpriv and prlimit, a bridge before it (isolation.ts).
 */
export async function startHelper(stateDir: string, env: Record<string, string | undefined>): Promise<string | undefined> {
  if (env.SANDBOXES_LOCAL_START === "off") return undefined;
  if (written) return written;
  const found = carried();
  if (!found) return undefined;
  const path = join(stateDir, "bin", found.name);
  if (!existsSync(path)) {
    mkdirSync(join(stateDir, "bin"), { recursive: true, mode: 0o700 });
    const partial = `${path}.${process.pid}.partial`;
    writeFileSync(partial, await found.file.bytes());
    // Any user's to run: as root the sandbox's own uid runs it.
    chmodSync(partial, 0o755);
    renameSync(partial, path);
  }
  return (written = path);
}

function carried(): { name: string; file: Blob } | undefined {
  const embedded = Bun.embeddedFiles.find((file) => (file as Blob & { name?: string }).name?.startsWith("sandbox-start"));
  if (embedded) return { name: (embedded as Blob & { name: string }).name.replace(/\.$/, ""), file: embedded };
  if (process.platform !== "linux") return undefined;
  const built = resolve(import.meta.dir, `../../../dist/sandbox-start-linux-${process.arch}`);
  try {
    const { size, mtimeMs } = statSync(built);
    return { name: `sandbox-start-${size}-${Math.floor(mtimeMs)}`, file: Bun.file(built) };
  } catch {
    return undefined;
  }
}
