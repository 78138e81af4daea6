import { join } from "node:path";
import { byId, type Store, storeOnFirstUse } from "../../base/store";

/**
 * The bridge API stores nothing about a sandbox and cannot list them: `POST /v1/sandbox` only
 * hands out an id, and any well-formed id is accepted later (a container starts for it on first
 * use). So this machine keeps the sandboxes it created, per Worker URL, in the state store
 * (src/base/store.ts, 0600: the sandbox env is in it; cloudflare/sandboxes.json from older
 * versions is imported once):
 *   - list() is these records, filtered by label here;
 *   - get() knows only these ids: a sandbox created on another machine is not found;
 *   - the env given at create time is applied by us to every command (the API has no env).
 */
export interface CloudflareEntry {
  /** The Worker the sandbox belongs to. */
  url: string;
  name?: string;
  labels: Record<string, string>;
  env: Record<string, string>;
  createdAt: string;
}

const KIND = "cloudflare";

export class CloudflareRegistry {
  private readonly store: () => Store;

  constructor(stateDir: string) {
    this.store = storeOnFirstUse(stateDir, { kind: KIND, file: join(stateDir, "cloudflare", "sandboxes.json"), records: byId });
  }

  /** The sandboxes of one Worker, by id. */
  of(url: string): Array<[string, CloudflareEntry]> {
    return this.store().list<CloudflareEntry>(KIND).filter(([, entry]) => entry.url === url);
  }

  get(url: string, id: string): CloudflareEntry | undefined {
    const entry = this.store().get<CloudflareEntry>(KIND, id);
    return entry?.url === url ? entry : undefined;
  }

  set(id: string, entry: CloudflareEntry): void {
    this.store().put(KIND, id, entry);
  }

  forget(id: string): void {
    this.store().delete(KIND, [id]);
  }
}
