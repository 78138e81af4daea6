import { existsSync, lstatSync, statSync } from "node:fs";
import { basename, dirname, posix } from "node:path";
import type { ArchiveChunk, ArchiveSource, Provider } from "../providers/types";
import { type HostArchive, packPath, type Unpacked, unpackTo } from "./archive";
import { SandboxesError } from "../base/errors";
import { throwIfAborted } from "./lifecycle";

export function requireFiles(provider: Provider): void {
  if (!provider.capabilities.files || !provider.putArchive || !provider.getArchive) {
    throw new SandboxesError("unsupported", `provider ${provider.name} cannot transfer files`, "user", "use a provider whose `sandboxes providers` capabilities include files");
  }
}

/** The most a probe's answer may be: each prints a word or a number. */
const PROBE_MAX_BYTES = 64 * 1024;

/**
 * Runs a tiny probe command and returns its stdout; for `test -d` style questions. A sandbox whose
 * root replaced its `sh` could answer without end: past PROBE_MAX_BYTES the probe is stopped, and
 * that is the error.
 */
export async function probe(provider: Provider, id: string, script: string, ...args: string[]): Promise<{ code: number; stdout: string }> {
  const out: Uint8Array[] = [];
  let size = 0;
  const tooLong = new AbortController();
  const onStdout = (chunk: Uint8Array) => {
    size += chunk.length;
    if (size > PROBE_MAX_BYTES) tooLong.abort();
    else out.push(chunk);
  };
  const outcome = await provider.exec(id, { argv: ["sh", "-c", script, "sh", ...args], env: {}, onStdout, onStderr: () => {}, signal: tooLong.signal });
  if (tooLong.signal.aborted) {
    throw new SandboxesError("sandbox_misbehaved", `sandbox ${id} answered a check of ours with more than ${PROBE_MAX_BYTES / 1024} KiB`, "provider", "its `sh` may have been replaced: destroy it");
  }
  return { code: outcome.exitCode, stdout: Buffer.concat(out).toString("utf8") };
}

/** Copies a local file or directory into the sandbox with `cp -r` semantics. Returns the remote path. */
export async function uploadPath(provider: Provider, id: string, localPath: string, remotePath: string, signal?: AbortSignal): Promise<string> {
  requireFiles(provider);
  if (!existsSync(localPath)) throw new SandboxesError("file_not_found", `${localPath}: no such file or directory`, "user");
  // What is at the path, and at the path of the same name inside it: "dir" (a directory, or a
  // link to one, at the path only), "other" or "none"; one round trip.
  const { stdout } = await probe(
    provider,
    id,
    'if [ -d "$1" ]; then echo dir; elif [ -e "$1" ] || [ -L "$1" ]; then echo other; else echo none; fi; if [ -d "$2" ] && [ ! -L "$2" ]; then echo dir; elif [ -e "$2" ] || [ -L "$2" ]; then echo other; else echo none; fi',
    remotePath,
    posix.join(remotePath, basename(localPath)),
  );
  const [atPath, inside] = stdout.trim().split("\n");
  const remoteIsDir = atPath === "dir" || remotePath.endsWith("/");
  const target = remoteIsDir ? posix.join(remotePath, basename(localPath)) : remotePath;
  // As cp -r: a directory never replaces anything else, nor the reverse (tar would).
  const there = remoteIsDir ? inside : atPath;
  const sendsDirectory = lstatSync(localPath).isDirectory(); // tar sends a link as a link
  if (there !== "none" && sendsDirectory !== (there === "dir")) {
    const message = sendsDirectory ? `cannot overwrite non-directory ${id}:${target} with a directory` : `cannot overwrite directory ${id}:${target} with a non-directory`;
    throw new SandboxesError("file_exists", message, "user", "copy to another path, or move what is there out of the way");
  }
  await sendArchive(provider, id, posix.dirname(target), packPath(localPath, posix.basename(target), signal));
  return target;
}

/** putArchive of an archive the host's tar packs as it goes; tar failing here is the error told. */
export async function sendArchive(provider: Provider, id: string, dir: string, archive: HostArchive): Promise<void> {
  try {
    await provider.putArchive!(id, dir, archive);
  } catch (error) {
    throw archive.failure ?? error;
  }
  if (archive.failure) throw archive.failure;
}

/** Unpacks a tar archive (`cp - BOX:DIR`) in the sandbox's directory `dir`, which must exist, as `docker cp -`. */
export async function uploadArchive(provider: Provider, id: string, dir: string, archive: ArchiveSource, signal?: AbortSignal): Promise<void> {
  requireFiles(provider);
  const { code } = await probe(provider, id, 'test -d "$1"', dir);
  if (code !== 0) throw new SandboxesError("file_not_found", `${id}:${dir} is not a directory: cp - unpacks a tar archive into a directory of the sandbox`, "user");
  throwIfAborted(signal);
  await provider.putArchive!(id, dir, {
    stream: () => {
      const reader = archive.stream().getReader();
      // Ctrl-C or SIGTERM stops the upload at its next chunk.
      return new ReadableStream<Uint8Array>({
        async pull(controller) {
          throwIfAborted(signal);
          const { done, value } = await reader.read();
          if (done) controller.close();
          else controller.enqueue(value);
        },
        cancel: (reason) => reader.cancel(reason),
      });
    },
  });
}

/**
 * A tar of a sandbox's file or directory (`cp BOX:PATH -`), its one top-level entry named as the
 * path's last part, handed to `onChunk` as it arrives: nothing is unpacked here.
 */
export async function downloadArchive(provider: Provider, id: string, remotePath: string, onChunk: ArchiveChunk, signal?: AbortSignal): Promise<void> {
  requireFiles(provider);
  await provider.getArchive!(id, withoutTrailingSlash(remotePath), (chunk) => {
    throwIfAborted(signal);
    return onChunk(chunk);
  });
}

function withoutTrailingSlash(path: string): string {
  return path.length > 1 ? path.replace(/\/+$/, "") : path;
}

/**
 * Where a copy out to `localPath` will go, or the reason it cannot, as cp says it: said before
 * anything is transferred (and by `run --download` before the program runs).
 */
export function localTarget(localPath: string): string {
  const target = localPath.endsWith("/") && !existsSync(localPath) ? localPath.slice(0, -1) : localPath;
  if (localPath.endsWith("/") && !(existsSync(target) && statSync(target).isDirectory())) {
    throw new SandboxesError("file_not_found", `local directory ${localPath} does not exist`, "user");
  }
  const parent = dirname(target);
  if (!existsSync(target) && !(existsSync(parent) && statSync(parent).isDirectory())) {
    const why = existsSync(parent) ? `${parent} is not a directory` : `directory ${parent} does not exist`;
    throw new SandboxesError("file_not_found", `cannot copy to ${localPath}: ${why}`, "user");
  }
  return target;
}

/**
 * Copies a sandbox file or directory to the local machine with `cp -r` semantics, streaming it:
 * memory stays at a few chunks whatever its size. Entries it would not write (unpackTo) are in
 * `skipped`.
 */
export async function downloadPath(provider: Provider, id: string, remotePath: string, localPath: string, signal?: AbortSignal): Promise<Unpacked> {
  requireFiles(provider);
  const normalized = withoutTrailingSlash(remotePath);
  const target = localTarget(localPath);
  // Ctrl-C or SIGTERM ends the download at its next chunk, and the partial copy goes.
  return unpackTo(target, (write) =>
    provider.getArchive!(id, normalized, (chunk) => {
      throwIfAborted(signal);
      return write(chunk);
    }),
  );
}

/**
 * `ID|NAME:/path` -> {ref, path} (a path may hold any character, a newline too); anything else
 * is a local path. On Windows a single letter before the colon is a drive (`C:\\dir`, `C:/dir`);
 * elsewhere it is a sandbox's one-letter name.
 */
export function parseRemote(spec: string, platform: string = process.platform): { ref: string; path: string } | undefined {
  const match = /^([^/:\\]+):([\s\S]*)$/.exec(spec);
  if (!match || (platform === "win32" && /^[A-Za-z]$/.test(match[1]!))) return undefined;
  return { ref: match[1]!, path: match[2] || "." };
}
