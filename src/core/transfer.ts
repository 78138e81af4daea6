import { existsSync, statSync } from "node:fs";
import { basename, posix } from "node:path";
import type { Provider } from "../providers/types";
import { type HostArchive, packPath, type Unpacked, unpackTo } from "./archive";
import { SandboxesError } from "../base/errors";
import { throwIfAborted } from "./lifecycle";

export function requireFiles(provider: Provider): void {
  if (!provider.capabilities.files || !provider.putArchive || !provider.getArchive) {
    throw new SandboxesError("unsupported", `provider ${provider.name} cannot transfer files`, "user", "use a provider whose `sandboxes providers` capabilities include files");
  }
}

/** Runs a tiny probe command and returns its stdout; for `test -d` style questions. */
export async function probe(provider: Provider, id: string, script: string, ...args: string[]): Promise<{ code: number; stdout: string }> {
  const out: Uint8Array[] = [];
  const outcome = await provider.exec(id, { argv: ["sh", "-c", script, "sh", ...args], env: {}, onStdout: (c) => out.push(c), onStderr: () => {} });
  return { code: outcome.exitCode, stdout: Buffer.concat(out).toString("utf8") };
}

/** Copies a local file or directory into the sandbox with `cp -r` semantics. Returns the remote path. */
export async function uploadPath(provider: Provider, id: string, localPath: string, remotePath: string, signal?: AbortSignal): Promise<string> {
  requireFiles(provider);
  if (!existsSync(localPath)) throw new SandboxesError("file_not_found", `${localPath}: no such file or directory`, "user");
  const { stdout } = await probe(provider, id, 'if [ -d "$1" ]; then echo dir; elif [ -e "$1" ]; then echo file; else echo none; fi', remotePath);
  const remoteIsDir = stdout.trim() === "dir" || remotePath.endsWith("/");
  const target = remoteIsDir ? posix.join(remotePath, basename(localPath)) : remotePath;
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

/**
 * Copies a sandbox file or directory to the local machine with `cp -r` semantics, streaming it:
 * memory stays at a few chunks whatever its size. Entries it would not write (unpackTo) are in
 * `skipped`.
 */
export async function downloadPath(provider: Provider, id: string, remotePath: string, localPath: string, signal?: AbortSignal): Promise<Unpacked> {
  requireFiles(provider);
  const normalized = remotePath.length > 1 ? remotePath.replace(/\/+$/, "") : remotePath;
  const target = localPath.endsWith("/") && !existsSync(localPath) ? localPath.slice(0, -1) : localPath;
  if (localPath.endsWith("/") && !(existsSync(target) && statSync(target).isDirectory())) {
    throw new SandboxesError("file_not_found", `local directory ${localPath} does not exist`, "user");
  }
  // Ctrl-C or SIGTERM ends the download at its next chunk, and the partial copy goes.
  return unpackTo(target, (write) =>
    provider.getArchive!(id, normalized, (chunk) => {
      throwIfAborted(signal);
      return write(chunk);
    }),
  );
}

/** `ID|NAME:/path` -> {ref, path}; anything else is a local path. */
export function parseRemote(spec: string): { ref: string; path: string } | undefined {
  const match = /^([^/:\\]+):(.*)$/.exec(spec);
  if (!match || /^[A-Za-z]$/.test(match[1]!)) return undefined;
  return { ref: match[1]!, path: match[2] || "." };
}
