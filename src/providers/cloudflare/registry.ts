import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * The bridge API stores nothing about a sandbox and cannot list them: `POST /v1/sandbox` only
 * hands out an id, and any well-formed id is accepted later (a container starts for it on first
 * use). So this machine keeps the sandboxes it created, per Worker URL, in
 * $XDG_STATE_HOME/sandboxes/cloudflare/sandboxes.json (0600: the sandbox env is in it):
 *   - list() is this file, filtered by label here;
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

export class CloudflareRegistry {
  private readonly dir: string;
  private readonly file: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, "cloudflare");
    this.file = join(this.dir, "sandboxes.json");
  }

  private all(): Record<string, CloudflareEntry> {
    if (!existsSync(this.file)) return {};
    try {
      const parsed = JSON.parse(readFileSync(this.file, "utf8")) as unknown;
      return parsed && typeof parsed === "object" ? (parsed as Record<string, CloudflareEntry>) : {};
    } catch {
      return {};
    }
  }

  /** The sandboxes of one Worker, by id. */
  of(url: string): Array<[string, CloudflareEntry]> {
    return Object.entries(this.all()).filter(([, entry]) => entry.url === url);
  }

  get(url: string, id: string): CloudflareEntry | undefined {
    const entry = this.all()[id];
    return entry?.url === url ? entry : undefined;
  }

  set(id: string, entry: CloudflareEntry): void {
    this.save({ ...this.all(), [id]: entry });
  }

  forget(id: string): void {
    const all = this.all();
    if (!(id in all)) return;
    delete all[id];
    this.save(all);
  }

  private save(all: Record<string, CloudflareEntry>): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const temporary = `${this.file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    writeFileSync(temporary, JSON.stringify(all, null, 2), { mode: 0o600 });
    renameSync(temporary, this.file);
  }
}
