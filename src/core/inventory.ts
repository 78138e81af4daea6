import { findDescriptor } from "../providers/catalog";
import type { SandboxRecord } from "../providers/types";
import type { Settings } from "./config";
import { SandboxesError } from "../base/errors";
import { destroySandbox } from "./lifecycle";
import { resolveSandbox } from "./resolve";
import { configuredProviders, loadProvider } from "./select";

export interface ListResult {
  sandboxes: SandboxRecord[];
  /** Providers that failed; the others still listed. */
  warnings: Array<{ provider: string; message: string }>;
}

/** Lists across every configured provider (or one); a failing provider becomes a warning. */
export async function listSandboxes(settings: Settings, options: { provider?: string; labels: Record<string, string> }): Promise<ListResult> {
  const descriptors = options.provider ? [findDescriptor(options.provider)] : await configuredProviders(settings);
  const warnings: ListResult["warnings"] = [];
  const results = await Promise.all(
    descriptors.map(async (descriptor) => {
      try {
        const provider = await loadProvider(settings, descriptor.name);
        return await provider.list({ labels: Object.keys(options.labels).length ? options.labels : undefined });
      } catch (error) {
        if (options.provider) throw error;
        warnings.push({ provider: descriptor.name, message: (error as Error).message });
        return [];
      }
    }),
  );
  return { sandboxes: results.flat(), warnings };
}

export interface DestroyResult {
  destroyed: Array<{ id: string; provider: string }>;
  failed: Array<{ ref: string; message: string }>;
  /** Refs no provider knows: already destroyed (or never there), so nothing was left to do. */
  missing: Array<{ ref: string; message: string }>;
}

export async function destroySandboxes(settings: Settings, refs: string[], provider?: string): Promise<DestroyResult> {
  // A provider name that does not exist is a usage error for the whole command, as for `list -p`.
  if (provider) findDescriptor(provider);
  const result: DestroyResult = { destroyed: [], failed: [], missing: [] };
  for (const ref of refs) {
    try {
      const resolved = await resolveSandbox(settings, ref, provider);
      await destroySandbox(settings, resolved);
      result.destroyed.push({ id: resolved.record.id, provider: resolved.provider.name });
    } catch (error) {
      const gone = (error as SandboxesError).code === "unknown_sandbox";
      (gone ? result.missing : result.failed).push({ ref, message: (error as Error).message });
    }
  }
  return result;
}

/** Destroys already-listed sandboxes (destroy --all). */
export async function destroyRecords(settings: Settings, records: SandboxRecord[]): Promise<DestroyResult> {
  const result: DestroyResult = { destroyed: [], failed: [], missing: [] };
  await Promise.all(
    records.map(async (record) => {
      try {
        await destroySandbox(settings, { provider: await loadProvider(settings, record.provider), record });
        result.destroyed.push({ id: record.id, provider: record.provider });
      } catch (error) {
        result.failed.push({ ref: record.id, message: (error as Error).message });
      }
    }),
  );
  return result;
}

export function assertHasFilter(all: boolean, refs: string[]): void {
  if (!all && refs.length === 0) throw new SandboxesError("missing_argument", "name at least one sandbox id or name, or use --all -l key=value", "usage");
  if (all && refs.length > 0) throw new SandboxesError("conflicting_arguments", "give either sandbox ids or --all, not both", "usage");
}
