import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * The Hopx API stores no labels, metadata or name with a sandbox. This machine keeps them in
 * $XDG_STATE_HOME/sandboxes/hopx/sandboxes.json, keyed by sandbox id, so list() can filter by
 * label and find a name. The limits: a sandbox created on another machine (or with another state
 * directory) has no labels and no name here, and a label filter never matches it.
 */
export interface LocalFacts {
  name?: string;
  labels: Record<string, string>;
  createdAt: string;
}

export class LocalLabels {
  private readonly dir: string;
  private readonly file: string;

  constructor(stateDir: string) {
    this.dir = join(stateDir, "hopx");
    this.file = join(this.dir, "sandboxes.json");
  }

  all(): Record<string, LocalFacts> {
    if (!existsSync(this.file)) return {};
    try {
      const parsed = JSON.parse(readFileSync(this.file, "utf8")) as unknown;
      return parsed && typeof parsed === "object" ? (parsed as Record<string, LocalFacts>) : {};
    } catch {
      return {};
    }
  }

  get(id: string): LocalFacts | undefined {
    return this.all()[id];
  }

  set(id: string, facts: LocalFacts): void {
    this.save({ ...this.all(), [id]: facts });
  }

  /** Forgets ids; with `keep`, forgets every id not in it (the sandboxes the service still has). */
  forget(ids: string[], keep?: Set<string>): void {
    const all = this.all();
    let changed = false;
    for (const id of Object.keys(all)) {
      if (ids.includes(id) || (keep && !keep.has(id))) {
        delete all[id];
        changed = true;
      }
    }
    if (changed) this.save(all);
  }

  private save(all: Record<string, LocalFacts>): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const temporary = `${this.file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    writeFileSync(temporary, JSON.stringify(all, null, 2), { mode: 0o600 });
    renameSync(temporary, this.file);
  }
}
