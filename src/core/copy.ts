import type { Settings } from "./config";
import { SandboxesError } from "../base/errors";
import type { Unpacked } from "./archive";
import { resolveSandbox } from "./resolve";
import type { ArchiveSource } from "../providers/types";
import { downloadArchive, downloadPath, parseRemote, uploadArchive, uploadPath } from "./transfer";

export interface CopyResult {
  direction: "upload" | "download";
  sandboxId: string;
  provider: string;
  from: string;
  to: string;
  /** Download only: entries of the sandbox's archive not written here (unpackTo says which and why). */
  skipped?: Unpacked["skipped"];
}

/**
 * Where `-` leads, as in `docker cp`: a tar of the copy to cp's standard output, or one from its
 * standard input unpacked in the sandbox.
 */
export interface CopyStreams {
  /** Takes the archive's next chunk; resolves once it is out, so the reader's pace holds the transfer. */
  write(chunk: Uint8Array): Promise<void>;
  /** The archive on standard input (read once). */
  read(): ReadableStream<Uint8Array>;
}

/** Ctrl-C or SIGTERM (`signal`) stops a copy that is under way and removes what it had written here. */
export async function copy(settings: Settings, source: string, destination: string, provider?: string, signal?: AbortSignal, streams?: CopyStreams): Promise<CopyResult> {
  const remoteSource = parseRemote(source);
  const remoteDestination = parseRemote(destination);
  if (remoteSource && remoteDestination) throw new SandboxesError("bad_copy", "both paths are in sandboxes: one side of cp must be a local path", "usage");
  if (!remoteSource && !remoteDestination) {
    const hint = source === "-" || destination === "-" ? ": `-` is a tar archive on standard input or output, and the other side a sandbox's path" : "";
    throw new SandboxesError("bad_copy", `neither path names a sandbox: write one side as ID:/path or NAME:/path${hint}`, "usage");
  }
  if (remoteDestination) {
    const { provider: p, record } = await resolveSandbox(settings, remoteDestination.ref, provider);
    if (source === "-" && streams) {
      await uploadArchive(p, record.id, remoteDestination.path, once(streams.read), signal);
      return { direction: "upload", sandboxId: record.id, provider: p.name, from: "-", to: remoteDestination.path };
    }
    const to = await uploadPath(p, record.id, source, remoteDestination.path, signal);
    return { direction: "upload", sandboxId: record.id, provider: p.name, from: source, to };
  }
  const { provider: p, record } = await resolveSandbox(settings, remoteSource!.ref, provider);
  if (destination === "-" && streams) {
    await downloadArchive(p, record.id, remoteSource!.path, (chunk) => streams.write(chunk), signal);
    return { direction: "download", sandboxId: record.id, provider: p.name, from: remoteSource!.path, to: "-" };
  }
  const { path: to, skipped } = await downloadPath(p, record.id, remoteSource!.path, destination, signal);
  return { direction: "download", sandboxId: record.id, provider: p.name, from: remoteSource!.path, to, skipped };
}

/** Standard input as an archive source: a provider that would read it again (a retry) is told it cannot. */
function once(read: () => ReadableStream<Uint8Array>): ArchiveSource {
  let taken = false;
  return {
    stream() {
      if (taken) throw new SandboxesError("file_transfer_failed", "the upload was interrupted, and standard input cannot be read again", "provider", "run cp again");
      taken = true;
      return read();
    },
  };
}
