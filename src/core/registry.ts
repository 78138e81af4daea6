import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * The sandboxes this machine created and kept, so `exec`, `cp` and `destroy` find the provider
 * of an id or name without -p. A hint, not the truth: providers are asked when it is silent.
 */
export interface RegistryEntry {
  id: string;
  provider: string;
  name?: string;
  labels: Record<string, string>;
  createdAt: string;
}

export class Registry {
  private readonly file: string;

  constructor(private readonly stateDir: string) {
    this.file = join(stateDir, "registry.json");
  }

  entries(): RegistryEntry[] {
    if (!existsSync(this.file)) return [];
    try {
      return JSON.parse(readFileSync(this.file, "utf8")) as RegistryEntry[];
    } catch {
      return [];
    }
  }

  private save(entries: RegistryEntry[]): void {
    mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
    const temporary = `${this.file}.${process.pid}.tmp`;
    writeFileSync(temporary, JSON.stringify(entries, null, 2), { mode: 0o600 });
    renameSync(temporary, this.file);
  }

  add(entry: RegistryEntry): void {
    this.save([...this.entries().filter((e) => !(e.id === entry.id && e.provider === entry.provider)), entry]);
  }

  remove(provider: string, id: string): void {
    const entries = this.entries();
    const kept = entries.filter((e) => !(e.id === id && e.provider === provider));
    if (kept.length !== entries.length) this.save(kept);
  }

  /** Entries whose id or name is `ref` (optionally for one provider). */
  lookup(ref: string, provider?: string): RegistryEntry[] {
    return this.entries().filter((e) => (e.id === ref || e.name === ref) && (!provider || e.provider === provider));
  }
}
