import { LocalRecords } from "../shared/records";

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
  name?: string;
  labels: Record<string, string>;
  /** Applied to every command: the API keeps no env. */
  env: Record<string, string>;
  createdAt: string;
  /** The Worker the sandbox belongs to. */
  url: string;
}

/** The sandboxes created through each Worker (records of several Workers share one table). */
export class CloudflareRegistry {
  private readonly records: LocalRecords<CloudflareEntry>;

  constructor(stateDir: string) {
    this.records = new LocalRecords(stateDir, "cloudflare");
  }

  /** The sandboxes of one Worker, by id. */
  of(url: string): Array<[string, CloudflareEntry]> {
    return this.records.list().filter(([, entry]) => entry.url === url);
  }

  get(url: string, id: string): CloudflareEntry | undefined {
    const entry = this.records.get(id);
    return entry?.url === url ? entry : undefined;
  }

  set(id: string, entry: CloudflareEntry): void {
    this.records.set(id, entry);
  }

  forget(id: string): void {
    this.records.forget([id]);
  }
}
