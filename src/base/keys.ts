/**
 * Keys chosen by users (labels, env names, config tables, command and topic names) live in
 * dictionaries without a prototype, and are looked up with own-property checks: in a plain
 * object `__proto__` is swallowed on assignment and `constructor` or `toString` answer on lookup.
 */

/** A dictionary without a prototype; `dict(entries)` copies them in order. */
export function dict<V>(entries: Iterable<readonly [string, V]> = []): Record<string, V> {
  const out = Object.create(null) as Record<string, V>;
  for (const [key, value] of entries) out[key] = value;
  return out;
}

/** The value stored under `key` itself, never one inherited from Object.prototype. */
export function own<V>(record: Readonly<Record<string, V>> | undefined, key: string): V | undefined {
  return record !== undefined && record !== null && Object.hasOwn(record, key) ? record[key] : undefined;
}

/** Whether `labels` has every wanted key with exactly that value (no wanted labels: true). */
export function hasLabels(labels: Readonly<Record<string, string>> | undefined, wanted: Readonly<Record<string, string>> | undefined): boolean {
  for (const [key, value] of Object.entries(wanted ?? {})) if (own(labels, key) !== value) return false;
  return true;
}
