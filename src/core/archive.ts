import { cpSync, existsSync, lstatSync, mkdtempSync, readdirSync, realpathSync, renameSync, rmSync, statfsSync, statSync, symlinkSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { InterruptedError, machineCause, SandboxesError, type StopReason, transferFailed } from "../base/errors";
import { printable } from "../base/quote";
import type { ArchiveSource } from "../providers/types";

/**
 * Local side of file transfers. Packing uses the host's tar(1), which keeps file modes (Bun.Archive
 * would lose +x) and streams; unpacking uses node-tar (unpackTo).
 */

/** An archive the host's tar packs as it is read; `failure` is how tar failed, once it has. */
export interface HostArchive extends ArchiveSource {
  readonly failure: SandboxesError | undefined;
}

/**
 * `tar -c -f - …args` run on this machine each time the archive is read, so a retried upload
 * starts over and memory stays at a chunk whatever the size. tar failing (a file it cannot read)
 * ends the stream with an error, one line naming `what`, kept as `failure` for the caller
 * (sendArchive): a provider's own error about a cut-off upload would hide the cause.
 */
export function hostTar(args: string[], what: string, options: { stdin?: Uint8Array; signal?: AbortSignal } = {}): HostArchive {
  const { stdin, signal } = options;
  let failure: SandboxesError | undefined;
  return {
    get failure() {
      return failure;
    },
    stream() {
      const child = Bun.spawn(["tar", "-c", "-f", "-", ...args], { stdin: stdin ?? "ignore", stdout: "pipe", stderr: "pipe" });
      const errors = new Response(child.stderr).text();
      const reader = child.stdout.getReader();
      // Ctrl-C or SIGTERM ends the upload: tar is stopped, and the stream ends with the reason.
      const stop = () => child.kill();
      signal?.addEventListener("abort", stop, { once: true });
      const end = () => signal?.removeEventListener("abort", stop);
      // Given up by its reader (an attempt the provider's API refused before taking it all): the
      // tar stopped for it is no failure of the copy, which the next attempt may still make.
      let cancelled = false;
      return new ReadableStream<Uint8Array>({
        async pull(controller) {
          const next = await reader.read();
          if (cancelled) return;
          if (signal?.aborted) {
            end();
            failure = new InterruptedError((signal.reason as StopReason) ?? "SIGINT");
            return controller.error(failure);
          }
          if (!next.done) return controller.enqueue(next.value);
          end();
          const code = await child.exited;
          if (code === 0) return controller.close();
          if (cancelled) return;
          failure = transferFailed(`cannot read ${what}`, await errors, code);
          controller.error(failure);
        },
        cancel() {
          cancelled = true;
          end();
          child.kill();
        },
      });
    },
  };
}

/** A local file or directory as an archive whose single top-level entry is `entryName`. */
export function packPath(localPath: string, entryName: string, signal?: AbortSignal): HostArchive {
  const name = basename(localPath);
  const transform = name === entryName ? [] : renameArgs(escapePattern(name), escapeReplacement(entryName));
  return hostTar([...formatArgs(), ...transform, "-C", dirname(localPath), name], localPath, { signal });
}

/** GNU tar (Linux) renames with --transform; bsdtar (macOS, Windows) with -s. */
export function renameArgs(from: string, to: string): string[] {
  return process.platform === "linux" ? [`--transform=s|^${from}|${to}|`] : ["-s", `|^${from}|${to}|`];
}

/** GNU format keeps long names and big files portable; bsdtar's default (pax) does too. */
export function formatArgs(): string[] {
  return process.platform === "linux" ? ["--format=gnu"] : [];
}

/** A literal name as a sed regular expression (delimiter `|`). */
function escapePattern(text: string): string {
  return text.replace(/[\\|.*[\]^$]/g, (c) => `\\${c}`);
}

/** A literal name as a sed replacement: only `\`, `&` and the delimiter are special there. */
function escapeReplacement(text: string): string {
  return text.replace(/[\\&|]/g, (c) => `\\${c}`);
}

/** Packs one in-memory file (source code) as a tar with a single entry. */
export async function packFile(name: string, data: Uint8Array | string): Promise<Blob> {
  return new Blob([await new Bun.Archive({ [name]: data }).bytes()]);
}

/** What unpackTo wrote, and the entries of the archive it would not write: how many, and the first few with why. */
export interface Unpacked {
  path: string;
  skipped: { count: number; first: string[] };
}

/** How many skipped entries an Unpacked names: a hostile archive may hold millions. */
const SKIPPED_NAMED = 10;

/** Links to absolute paths kept to be made last: what a tree of programs has, bounded in memory. */
const MAX_ABSOLUTE_LINKS = 100_000;

/** One line for a person about the entries a copy did not write; undefined when it wrote them all. */
export function skippedNotice(skipped: Unpacked["skipped"], from: string): string | undefined {
  if (skipped.count === 0) return undefined;
  const more = skipped.count > skipped.first.length ? `; and ${skipped.count - skipped.first.length} more` : "";
  return `skipped ${skipped.count} ${skipped.count === 1 ? "entry" : "entries"} of ${from}: cp copies files, directories and links, and only inside the copy (${skipped.first.join("; ")}${more})`;
}

/**
 * Receives a tar as `fill` hands it over, chunk by chunk (the promise a write returns holds the
 * sender until the chunk is on disk), and puts its single top-level entry at `target` (cp
 * semantics: into it when it is an existing directory, otherwise as that path). So an archive of
 * any size costs memory of a few chunks, not its size.
 *
 * The archive comes from a sandbox, so it may be hostile (a program can replace the sandbox's
 * tar). node-tar unpacks it into a fresh staging directory and writes nothing outside it: no
 * `..`, no absolute path, nothing through a symbolic link, no hard link out; no device or FIFO;
 * never the archive's owners; and here no setuid, setgid or sticky bit. A symbolic link to an
 * absolute path is kept as it is (node-tar would make it relative), made once everything else is
 * written, so nothing is written through it. What is not written is reported, not fatal; this
 * machine failing to write (a full disk, a directory it may not write) ends the copy.
 */
export async function unpackTo(target: string, fill: (write: (chunk: Uint8Array) => unknown) => Promise<void>): Promise<Unpacked> {
  const { Unpack } = await import("tar");
  // Beside where the copy lands, on that filesystem: an existing directory is often a mount of
  // its own (a disk, a tmpfs), and a rename from its parent's filesystem would fail after the
  // whole transfer.
  const landsIn = statSync(target, { throwIfNoEntry: false })?.isDirectory() ? target : dirname(target);
  const staging = mkdtempSync(join(existsSync(landsIn) ? landsIn : osTmpdir(), STAGING_PREFIX));
  const skipped = { count: 0, first: [] as string[] };
  // Names from the archive, shown in one line of ours: a newline in one stays an escape.
  const skip = (line: string) => {
    if (skipped.count++ < SKIPPED_NAMED) skipped.first.push(printable(line));
  };
  const absoluteLinks: Array<{ path: string; to: string }> = [];
  let hostFailure: SandboxesError | undefined;
  const failed = (path: string, cause: string) => (hostFailure ??= new SandboxesError("file_system", `cannot write ${path} into ${landsIn}: ${cause}`, "user"));
  // Bytes of regular files the archive holds and node-tar took on: node-tar (fs-minipass) takes a
  // short write for a whole one, so a disk that fills during a file's last write would go unseen.
  let expectedBytes = 0;
  // What this filesystem has for an ordinary user's files as the copy starts (root's reserve
  // stays). A tar says each file's size before its bytes: a copy that cannot fit (a sandbox's
  // sparse file of a terabyte is sent whole) is refused at the first file past it, instead of
  // filling the disk under everything else on this machine and failing then.
  // A filesystem that reports no size at all (some network and FUSE ones) is not taken at its word.
  const { bavail, blocks, bsize } = statfsSync(staging);
  const room = blocks > 0 ? bavail * bsize : Number.POSITIVE_INFINITY;
  try {
    const unpack = new Unpack({
      cwd: staging,
      preserveOwner: false,
      strict: false,
      filter: (path, entry) => {
        if (!("type" in entry)) return true;
        if (entry.type === "SymbolicLink" && entry.linkpath?.startsWith("/")) {
          if (absoluteLinks.length < MAX_ABSOLUTE_LINKS) absoluteLinks.push({ path, to: entry.linkpath });
          else skip(`${path}: more than ${MAX_ABSOLUTE_LINKS} links to absolute paths`);
          return false;
        }
        if (entry.mode !== undefined) entry.mode &= 0o777;
        if (REGULAR_FILE.has(entry.type)) expectedBytes += entry.size ?? 0;
        if (expectedBytes > room && !hostFailure) {
          hostFailure = new SandboxesError(
            "no_space",
            `cannot copy to ${target}: its files need more than the ${formatBytes(room)} free there (${path} alone is ${formatBytes(entry.size ?? 0)})`,
            "user",
            "free some space or copy elsewhere; a file can take far more room here than in the sandbox (a sparse file is copied whole)",
          );
        }
        return !hostFailure;
      },
      onwarn: (code, message, data) => {
        if (code === "TAR_ENTRY_INFO") return;
        const { entry, code: errno } = data as { entry?: { path?: string; type?: string; size?: number }; code?: string };
        if (entry && REGULAR_FILE.has(entry.type ?? "")) expectedBytes -= entry.size ?? 0;
        // This machine failing to write (a full disk, a read-only directory) ends the copy; an
        // entry the archive should not have had is only skipped.
        const cause = machineCause(errno);
        if (cause) failed(entry?.path ?? basename(target), cause);
        else skip(`${entry?.path ? `${entry.path}: ` : ""}${message.replaceAll(`${staging}/`, "")}`);
      },
    });
    const finished = new Promise<void>((resolve, reject) => {
      unpack.on("close", resolve);
      unpack.on("error", (error: Error) => reject(new SandboxesError("file_transfer_failed", `the archive from the sandbox cannot be read: ${error.message}`, "provider")));
    });
    finished.catch(() => {}); // awaited below; a write waiting for room learns of it first
    // node-tar reads headers with Buffer's methods: a chunk that is a plain Uint8Array fails its
    // checksums. The view costs no copy.
    const write = (chunk: Uint8Array) => {
      // Once this machine could not write, the rest of the transfer is not worth its time.
      if (hostFailure) throw hostFailure;
      return unpack.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    };
    try {
      await fill((chunk) => (write(chunk) ? undefined : Promise.race([new Promise((resolve) => unpack.once("drain", resolve)), finished])));
    } catch (error) {
      unpack.abort(error as Error);
      throw error;
    }
    unpack.end();
    await finished;
    const written = bytesOfFiles(staging);
    if (!hostFailure && written < expectedBytes) failed(basename(target), `${expectedBytes - written} of its ${expectedBytes} bytes did not reach the disk${statfsSync(staging).bavail === 0 ? " (no space left on the device)" : ""}`);
    if (hostFailure) throw hostFailure;
    for (const link of absoluteLinks) placeLink(staging, link.path, link.to, skip);
    const entries = readdirSync(staging);
    if (entries.length !== 1) throw new SandboxesError("file_transfer_failed", `expected one entry in the archive, found ${entries.length}`, "provider");
    const entry = entries[0]!;
    const destination = existsSync(target) && statSync(target).isDirectory() ? join(target, entry) : target;
    const conflict = firstConflict(join(staging, entry), destination);
    if (conflict) throw new SandboxesError("file_exists", conflict, "user", "copy to another path, or move what is there out of the way");
    moveInto(join(staging, entry), destination);
    return { path: destination, skipped };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/**
 * Where moving `from` onto `to` as `cp -r` would have to replace a directory with something else
 * or the reverse, said as cp says it; undefined when nothing does. Checked before anything moves,
 * so a refused copy changes nothing here. A symbolic link already at `to` (or below it) is not
 * followed: what the sandbox sends lands beside your files, never through your links.
 */
function firstConflict(from: string, to: string): string | undefined {
  const there = lstatSync(to, { throwIfNoEntry: false });
  if (!there) return undefined;
  const isDirectory = lstatSync(from).isDirectory();
  if (isDirectory && !there.isDirectory()) return `cannot overwrite non-directory ${to} with a directory`;
  if (!isDirectory && there.isDirectory()) return `cannot overwrite directory ${to} with a non-directory`;
  if (!isDirectory) return undefined;
  for (const name of readdirSync(from)) {
    const conflict = firstConflict(join(from, name), join(to, name));
    if (conflict) return conflict;
  }
  return undefined;
}

/**
 * Moves `from` onto `to` as `cp -r` leaves them: a directory onto a directory merges (what is
 * there and not in the copy stays, with its own modes), anything else replaces what is at `to`.
 * firstConflict has found nothing that would replace a directory or be replaced by one.
 */
function moveInto(from: string, to: string): void {
  if (lstatSync(to, { throwIfNoEntry: false })?.isDirectory() && lstatSync(from).isDirectory()) {
    for (const name of readdirSync(from)) moveInto(join(from, name), join(to, name));
    return;
  }
  try {
    renameSync(from, to);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EXDEV") throw error;
    // `to` is on another filesystem than the staging directory (a mount inside the directory
    // copied into): copied there first, beside `to`, then renamed over it, as mv does. What is at
    // `to` stays until the copy is whole, and is then replaced, never written through (a link of
    // yours included); links in the copy stay links.
    const beside = mkdtempSync(join(dirname(to), STAGING_PREFIX));
    try {
      cpSync(from, join(beside, "copy"), { recursive: true, verbatimSymlinks: true, preserveTimestamps: true, errorOnExist: true, force: false });
      renameSync(join(beside, "copy"), to);
    } catch (copyError) {
      const { code, message } = copyError as NodeJS.ErrnoException;
      throw new SandboxesError("file_system", `cannot write ${to}: ${machineCause(code) ?? message}`, "user");
    } finally {
      rmSync(beside, { recursive: true, force: true });
    }
  }
}

/** Bytes for a person: 1.5 GiB, 12.0 MiB, 512 bytes. */
function formatBytes(bytes: number): string {
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
  if (bytes < 1024) return `${bytes} bytes`;
  let value = bytes / 1024;
  let unit = 0;
  for (; value >= 1024 && unit < units.length - 1; unit++) value /= 1024;
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** Where a copy out of a sandbox is assembled before it is moved into place (removed after). */
const STAGING_PREFIX = ".sandboxes-cp-";

/** node-tar's names for entries that are files with content. */
const REGULAR_FILE = new Set(["File", "OldFile", "ContiguousFile"]);

/** The bytes of the regular files under `dir`, each file once however many hard links it has; no link followed. */
function bytesOfFiles(dir: string): number {
  let total = 0;
  const seen = new Set<string>();
  const pending = [dir];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    for (const item of readdirSync(next, { withFileTypes: true })) {
      const path = join(next, item.name);
      if (item.isDirectory()) pending.push(path);
      if (!item.isFile()) continue;
      const stat = lstatSync(path);
      if (stat.nlink > 1) {
        const inode = `${stat.dev}:${stat.ino}`;
        if (seen.has(inode)) continue;
        seen.add(inode);
      }
      total += stat.size;
    }
  }
  return total;
}

/**
 * A symbolic link to an absolute path, at `path` inside `root`, if its directory is inside root
 * once resolved (no link on the way out) and nothing is there yet.
 */
function placeLink(root: string, path: string, to: string, skip: (line: string) => void): void {
  const at = resolve(root, path.replace(/^\/+/, ""));
  const realRoot = realpathSync(root);
  let parent: string;
  try {
    parent = realpathSync(dirname(at));
  } catch {
    skip(`${path}: its directory was not written`);
    return;
  }
  if (parent !== realRoot && !parent.startsWith(`${realRoot}/`)) {
    skip(`${path}: its directory is outside the copy`);
    return;
  }
  if (lstatExists(at)) {
    skip(`${path}: the archive has another entry there`);
    return;
  }
  symlinkSync(to, join(parent, basename(at)));
}

function lstatExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** node:os on first use: every run imports this module, few copy into a directory that is missing. */
function osTmpdir(): string {
  return (require("node:os") as typeof import("node:os")).tmpdir();
}
