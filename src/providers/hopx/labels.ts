import { join } from "node:path";
import { openStore, type Store } from "../../base/store";

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
  private readonly store: Store;

  constructor(stateDir: string) {
    this.store = openStore(stateDir);
    this.store.migrate(KIND, join(stateDir, "hopx", "sandboxes.json"), (parsed) =>
      parsed && typeof parsed === "object" ? Object.entries(parsed as Record<string, LocalFacts>) : [],
    );
  }

  all(): Record<string, LocalFacts> {
    return Object.fromEntries(this.store.list<LocalFacts>(KIND));
  }

  get(id: string): LocalFacts | undefined {
    return this.store.get<LocalFacts>(KIND, id);
  }

  set(id: string, facts: LocalFacts): void {
    this.store.put(KIND, id, facts);
  }

  /** Forgets ids; with `keep`, forgets every id not in it (the sandboxes the service still has). */
  forget(ids: string[], keep?: Set<string>): void {
    this.store.transaction(() => {
      const gone = keep ? this.store.list(KIND).map(([id]) => id).filter((id) => ids.includes(id) || !keep.has(id)) : ids;
      this.store.delete(KIND, gone);
    });
  }
}
