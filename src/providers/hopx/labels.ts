import { LocalRecords } from "../shared/records";

/**
 * The Hopx API stores no labels, metadata or name with a sandbox. This machine keeps them, keyed
 * by sandbox id, so list() can filter by label and find a name. The limits: a sandbox created on
 * another machine (or with another state directory) has no labels and no name here, and a label
 * filter never matches it.
 */
export interface LocalFacts {
  name?: string;
  labels: Record<string, string>;
  createdAt: string;
}

export class LocalLabels extends LocalRecords<LocalFacts> {
  constructor(stateDir: string) {
    super(stateDir, "hopx");
  }

  all(): Record<string, LocalFacts> {
    return Object.fromEntries(this.list());
  }
}
