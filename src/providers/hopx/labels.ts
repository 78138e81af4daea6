import { join } from "node:path";
import { byId, type Store, storeOnFirstUse } from "../../base/store";

/**
 * The Hopx API stores no labels, metadata or name with a sandbox. This machine keeps them in the
 * state store (src/base/store.ts), keyed by sandbox id, so list() can filter by label and find a
 * name. The limits: a sandbox created on another machine (or with another state directory) has
 * no labels and no name here, and a label filter never matches it. hopx/sandboxes.json, from
 * older versions, is imported once.
 */
export interface LocalFacts {
  name?: string;
  labels: Record<string, string>;
  createdAt: string;
}

const KIND = "hopx";

export class LocalLabels {
  private readonly store: () => Store;

  constructor(stateDir: string) {
    this.store = storeOnFirstUse(stateDir, { kind: KIND, file: join(stateDir, "hopx", "sandboxes.json"), records: byId });
  }

  all(): Record<string, LocalFacts> {
    return Object.fromEntries(this.store().list<LocalFacts>(KIND));
  }

  get(id: string): LocalFacts | undefined {
    return this.store().get<LocalFacts>(KIND, id);
  }

  set(id: string, facts: LocalFacts): void {
    this.store().put(KIND, id, facts);
  }

  /** Forgets ids; with `keep`, forgets every id not in it (the sandboxes the service still has). */
  forget(ids: string[], keep?: Set<string>): void {
    const store = this.store();
    store.transaction(() => {
      const gone = keep ? store.list(KIND).map(([id]) => id).filter((id) => ids.includes(id) || !keep.has(id)) : ids;
      store.delete(KIND, gone);
    });
  }
}
