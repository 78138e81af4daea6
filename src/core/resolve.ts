import { findDescriptor } from "../providers/catalog";
import type { Provider, SandboxRecord } from "../providers/types";
import type { Settings } from "./config";
import { SandboxesError } from "../base/errors";
import { Registry } from "./registry";
import { configuredProviders, loadProvider } from "./select";

export interface ResolvedSandbox {
  provider: Provider;
  record: SandboxRecord;
}

/**
 * Finds a sandbox by id or name. The registry of sandboxes this machine created answers first;
 * otherwise every configured provider (or just -p) is asked, and exactly one must have it.
 */
export async function resolveSandbox(settings: Settings, ref: string, providerName?: string): Promise<ResolvedSandbox> {
  if (!ref.trim()) throw new SandboxesError("unknown_sandbox", "empty sandbox id", "usage");
  if (providerName) findDescriptor(providerName);
  const registry = new Registry(settings.stateDir);
  for (const entry of registry.lookup(ref, providerName)) {
    const provider = await loadProvider(settings, entry.provider);
    const record = await provider.get(entry.id);
    if (record) return { provider, record };
    registry.remove(entry.provider, entry.id);
  }
  const candidates = providerName ? [findDescriptor(providerName)] : await configuredProviders(settings);
  const found: ResolvedSandbox[] = [];
  const failures: string[] = [];
  await Promise.all(
    candidates.map(async (descriptor) => {
      try {
        const provider = await loadProvider(settings, descriptor.name);
        const byId = await provider.get(ref).catch(() => null);
        if (byId) return void found.push({ provider, record: byId });
        const byName = (await provider.list({})).filter((r) => r.name === ref);
        for (const record of byName) found.push({ provider, record });
      } catch (error) {
        if (providerName) throw error;
        failures.push(`${descriptor.name}: ${(error as Error).message}`);
      }
    }),
  );
  if (found.length === 1) return found[0]!;
  if (found.length > 1) {
    const where = found.map((f) => `${f.record.id} (${f.provider.name})`).join(", ");
    throw new SandboxesError("ambiguous_sandbox", `"${ref}" matches more than one sandbox: ${where}`, "user", "pass the full id, or -p PROVIDER");
  }
  const checked = candidates.map((c) => c.name).join(", ");
  throw new SandboxesError(
    // Only when every provider answered is the sandbox known to be absent (destroy takes that as done).
    failures.length ? "unchecked_sandbox" : "unknown_sandbox",
    `no sandbox "${ref}" on ${checked}${failures.length ? ` (could not check ${failures.join("; ")})` : ""}: see \`sandboxes list\``,
    "user",
  );
}
