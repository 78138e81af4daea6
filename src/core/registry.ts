import { join } from "node:path";
import { type Store, storeOnFirstUse } from "../base/store";

/**
 * The sandboxes this machine created and kept, so `exec`, `cp` and `destroy` find the provider
 * of an id or name without -p. A hint, not the truth: providers are asked when it is silent.
 * Kept in the state store (src/base/store.ts); registry.json, from older versions, is imported once.
 */
export interface RegistryEntry {
  id: string;
  provider: string;
  name?: string;
  labels: Record<string, string>;
  createdAt: string;
}

const KIND = "registry";
const keyOf = (provider: string, id: string) => `${provider}/${id}`;

export class Registry {
  private readonly store: () => Store;

  constructor(stateDir: string) {
    this.store = storeOnFirstUse(stateDir, {
      kind: KIND,
      file: join(stateDir, "registry.json"),
      records: (parsed) => (Array.isArray(parsed) ? (parsed as RegistryEntry[]) : []).map((entry) => [keyOf(entry.provider, entry.id), entry]),
    });
  }

  entries(): RegistryEntry[] {
    return this.store().list<RegistryEntry>(KIND).map(([, entry]) => entry);
  }

  add(entry: RegistryEntry): void {
    this.store().put(KIND, keyOf(entry.provider, entry.id), entry);
  }

  remove(provider: string, id: string): void {
    this.store().delete(KIND, [keyOf(provider, id)]);
  }

  /** Entries whose id or name is `ref` (optionally for one provider). */
  lookup(ref: string, provider?: string): RegistryEntry[] {
    return this.entries().filter((e) => (e.id === ref || e.name === ref) && (!provider || e.provider === provider));
  }
}
