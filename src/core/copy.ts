import type { Settings } from "./config";
import { SandboxesError } from "../base/errors";
import type { Unpacked } from "./archive";
import { resolveSandbox } from "./resolve";
import { downloadPath, parseRemote, uploadPath } from "./transfer";

export interface CopyResult {
  direction: "upload" | "download";
  sandboxId: string;
  provider: string;
  from: string;
  to: string;
  /** Download only: entries of the sandbox's archive not written here (unpackTo says which and why). */
  skipped?: Unpacked["skipped"];
}

/** Ctrl-C or SIGTERM (`signal`) stops a copy that is under way and removes what it had written here. */
export async function copy(settings: Settings, source: string, destination: string, provider?: string, signal?: AbortSignal): Promise<CopyResult> {
  const remoteSource = parseRemote(source);
  const remoteDestination = parseRemote(destination);
  if (remoteSource && remoteDestination) throw new SandboxesError("bad_copy", "both paths are in sandboxes: one side of cp must be a local path", "usage");
  if (!remoteSource && !remoteDestination) {
    throw new SandboxesError("bad_copy", "neither path names a sandbox: write one side as ID:/path or NAME:/path", "usage");
  }
  if (remoteDestination) {
    const { provider: p, record } = await resolveSandbox(settings, remoteDestination.ref, provider);
    const to = await uploadPath(p, record.id, source, remoteDestination.path, signal);
    return { direction: "upload", sandboxId: record.id, provider: p.name, from: source, to };
  }
  const { provider: p, record } = await resolveSandbox(settings, remoteSource!.ref, provider);
  const { path: to, skipped } = await downloadPath(p, record.id, remoteSource!.path, destination, signal);
  return { direction: "download", sandboxId: record.id, provider: p.name, from: remoteSource!.path, to, skipped };
}
