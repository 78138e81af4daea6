import { join } from "node:path";
import { byId, type Store, storeOnFirstUse } from "../../base/store";

/**
 * What this machine keeps about one provider's sandboxes, by sandbox id, in the state store
 * (src/base/store.ts): for APIs that keep no labels or names (Hopx) or nothing at all (the
 * Cloudflare bridge). `<kind>/sandboxes.json` from older versions is imported once.
 */
export class LocalRecords<T> {
  private readonly store: () => Store;

  constructor(
    stateDir: string,
    private readonly kind: string,
  ) {
    this.store = storeOnFirstUse(stateDir, { kind, file: join(stateDir, kind, "sandboxes.json"), records: byId });
  }

  list(): Array<[string, T]> {
    return this.store().list<T>(this.kind);
  }

  get(id: string): T | undefined {
    return this.store().get<T>(this.kind, id);
  }

  set(id: string, record: T): void {
    this.store().put(this.kind, id, record);
  }

  /** Forgets ids; with `keep`, forgets every id not in it as well (the sandboxes the service still has). */
  forget(ids: string[], keep?: Set<string>): void {
    const store = this.store();
    store.transaction(() => {
      const gone = keep ? store.list(this.kind).map(([id]) => id).filter((id) => ids.includes(id) || !keep.has(id)) : ids;
      store.delete(this.kind, gone);
    });
  }
}
