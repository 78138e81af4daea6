/**
 * Request bodies too big to hold, for the APIs that take a whole file as one body (Vercel's
 * gzipped tar, Hopx's base64 in JSON): written to a file of ours first, then sent from there, so
 * a copy of gigabytes costs disk for a moment rather than memory (Bun sends a file body as it
 * reads it, with its length, and each retry reads it again).
 */
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Spooled {
  /** The body, to send as many times as a request is tried. */
  file(): Blob;
  readonly size: number;
  /** Removes the file; safe to call twice. */
  remove(): void;
}

/**
 * Writes a body to a new file in a private directory of TMPDIR, through `fill`'s writes (each
 * chunk goes to the disk before the next is read, so memory holds one chunk). The file is removed
 * when `fill` fails; otherwise the caller removes it once sent.
 */
export async function spool(fill: (write: (chunk: Uint8Array) => void) => Promise<void>): Promise<Spooled> {
  const dir = mkdtempSync(join(tmpdir(), "sandboxes-upload-"));
  const path = join(dir, "body");
  const remove = () => rmSync(dir, { recursive: true, force: true });
  let size = 0;
  try {
    const fd = openSync(path, "wx", 0o600);
    try {
      await fill((chunk) => {
        for (let offset = 0; offset < chunk.length; ) offset += writeSync(fd, chunk, offset);
        size += chunk.length;
      });
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    remove();
    throw error;
  }
  return { file: () => Bun.file(path), size, remove };
}

/**
 * Bytes, or a stream read to its end (or as far as it got when `signal` aborts: stdin that a
 * Ctrl-C cut short), spooled.
 */
export function spoolFrom(source: Uint8Array | ReadableStream<Uint8Array>, signal?: AbortSignal): Promise<Spooled> {
  return spool(async (write) => {
    if (source instanceof Uint8Array) return write(source);
    const reader = source.getReader();
    const cancel = () => void reader.cancel().catch(() => {});
    signal?.addEventListener("abort", cancel, { once: true });
    try {
      for (let next = await reader.read(); !next.done && !signal?.aborted; next = await reader.read()) write(next.value);
    } finally {
      signal?.removeEventListener("abort", cancel);
      reader.releaseLock();
    }
  });
}

