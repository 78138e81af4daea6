/** The node:fs calls readAtMost uses: its callers pass the module, loaded when they need it. */
type FileCalls = Pick<typeof import("node:fs"), "closeSync" | "openSync" | "readFileSync" | "readSync" | "statSync">;

/**
 * A file's bytes when there are at most `limit` of them, else undefined: a regular file by its
 * size, anything else (a pipe from `<(…)`, a device such as /dev/zero) read until it ends or
 * passes the bound, so no input can make us hold more. `fs` is node:fs, passed in: commands that
 * never read a file do not pay for loading it.
 */
export function readAtMost(fs: FileCalls, path: string, limit: number): Uint8Array | undefined {
  const stats = fs.statSync(path);
  if (stats.isFile()) return stats.size > limit ? undefined : new Uint8Array(fs.readFileSync(path));
  // Read by hand: Bun.file(…).stream() cannot poll a device (/dev/zero: epoll_ctl EPERM).
  const file = fs.openSync(path, "r");
  try {
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(1 << 20);
    let total = 0;
    for (;;) {
      const read = fs.readSync(file, buffer);
      if (read === 0) return Buffer.concat(chunks, total);
      total += read;
      if (total > limit) return undefined;
      // A copy of what was read: a pipe may give a byte at a time.
      chunks.push(buffer.slice(0, read));
    }
  } finally {
    fs.closeSync(file);
  }
}
