import type { Database } from "bun:sqlite";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync } from "node:fs";
import { join } from "node:path";

/**
 * All state this machine keeps about sandboxes, in one SQLite file: $XDG_STATE_HOME/sandboxes/
 * state.db (0600 in a 0700 directory: Cloudflare's records hold the sandbox env). Each user of it
 * owns a `kind` of records (JSON documents by key). WAL mode and a busy timeout let processes
 * write at once; each write is one statement or one transaction, never a read-modify-write of a
 * whole file, so parallel `run --keep` lose nothing.
 *
 * Imports bun:sqlite: load it only on the paths that touch state (never --version, --help,
 * providers; test/e2e/release-startup.test.ts checks).
 */
export interface Store {
  /** Every record of a kind, oldest write first. */
  list<T>(kind: string): Array<[key: string, value: T]>;
  get<T>(kind: string, key: string): T | undefined;
  /** Inserts or replaces (a replaced record becomes the newest). */
  put(kind: string, key: string, value: unknown): void;
  /** Deletes these keys; returns how many existed. */
  delete(kind: string, keys: Iterable<string>): number;
  /** Runs `work` in one write transaction (BEGIN IMMEDIATE), so what it reads stays true until it commits. */
  transaction<T>(work: () => T): T;
  /**
   * Imports a JSON file an older version kept, once: its records are added (a key the store
   * already has is kept) and the file is renamed to FILE.migrated, in one transaction.
   */
  migrate(kind: string, file: string, records: (parsed: unknown) => Array<[string, unknown]>): void;
}

const BUSY_TIMEOUT_MS = 10_000;
const open = new Map<string, Store>();

/** The store of a state directory; one connection per directory and process. */
export function openStore(stateDir: string): Store {
  const path = join(stateDir, "state.db");
  let store = open.get(path);
  if (!store) {
    store = new SqliteStore(connect(stateDir, path));
    open.set(path, store);
  }
  return store;
}

/** What an older version kept in a JSON file, and how its content becomes records of a kind. */
export interface LegacyFile {
  kind: string;
  file: string;
  records: (parsed: unknown) => Array<[string, unknown]>;
}

/**
 * The store, opened on first use, so constructing what uses it does no I/O; the legacy file is
 * imported then.
 */
export function storeOnFirstUse(stateDir: string, legacy: LegacyFile): () => Store {
  let store: Store | undefined;
  return () => {
    if (!store) {
      store = openStore(stateDir);
      store.migrate(legacy.kind, legacy.file, legacy.records);
    }
    return store;
  };
}

/** The records of a JSON object keyed by id (what the Hopx and Cloudflare files were). */
export const byId = (parsed: unknown): Array<[string, unknown]> => (parsed && typeof parsed === "object" && !Array.isArray(parsed) ? Object.entries(parsed) : []);

function connect(stateDir: string, path: string): Database {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  // Created 0600 before SQLite opens it; SQLite gives its -wal and -shm files the same mode.
  closeSync(openSync(path, "a", 0o600));
  // bun:sqlite on first use: a one-shot run never opens the store, and loading it costs a millisecond.
  const { Database: SqliteDatabase } = require("bun:sqlite") as typeof import("bun:sqlite");
  const db = new SqliteDatabase(path, { strict: true });
  db.run(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  untilNotBusy(() => db.run("PRAGMA journal_mode = WAL"), deadline);
  db.run("PRAGMA synchronous = NORMAL");
  untilNotBusy(() => db.run("CREATE TABLE IF NOT EXISTS records (kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY (kind, key))"), deadline);
  return db;
}

/**
 * Runs `step` again while SQLite answers SQLITE_BUSY, until `deadline`. The busy timeout does not
 * cover the store's set-up: a new file starts in SQLite's rollback mode, and switching it to WAL
 * is a write made while holding a read lock. SQLite answers that at once rather than wait (waiting
 * could deadlock), so when several processes open a new store together (parallel `run --keep`
 * on a fresh machine), all but the one that got the write lock would fail. Once one has switched
 * the file, the others find it in WAL mode and write nothing.
 */
function untilNotBusy(step: () => void, deadline: number): void {
  for (let attempt = 1; ; attempt++) {
    try {
      return step();
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (typeof code !== "string" || !code.startsWith("SQLITE_BUSY") || Date.now() >= deadline) throw error;
      // Jittered, so processes that met here do not meet again.
      Bun.sleepSync(Math.min(attempt, 20) * (0.5 + Math.random()));
    }
  }
}

class SqliteStore implements Store {
  private readonly selectAll;
  private readonly selectOne;
  private readonly upsert;
  private readonly insertNew;
  private readonly deleteOne;
  private readonly immediate;

  constructor(private readonly db: Database) {
    this.selectAll = db.query<{ key: string; value: string }, { kind: string }>("SELECT key, value FROM records WHERE kind = $kind ORDER BY rowid");
    this.selectOne = db.query<{ value: string }, { kind: string; key: string }>("SELECT value FROM records WHERE kind = $kind AND key = $key");
    // REPLACE deletes and inserts, so the record gets a new rowid and lists as the newest.
    this.upsert = db.query("INSERT OR REPLACE INTO records (kind, key, value) VALUES ($kind, $key, $value)");
    this.insertNew = db.query("INSERT OR IGNORE INTO records (kind, key, value) VALUES ($kind, $key, $value)");
    this.deleteOne = db.query("DELETE FROM records WHERE kind = $kind AND key = $key");
    this.immediate = <T>(work: () => T): T => db.transaction(work).immediate();
  }

  list<T>(kind: string): Array<[string, T]> {
    return this.selectAll.all({ kind }).map((row) => [row.key, JSON.parse(row.value) as T]);
  }

  get<T>(kind: string, key: string): T | undefined {
    const row = this.selectOne.get({ kind, key });
    return row ? (JSON.parse(row.value) as T) : undefined;
  }

  put(kind: string, key: string, value: unknown): void {
    this.upsert.run({ kind, key, value: JSON.stringify(value) });
  }

  delete(kind: string, keys: Iterable<string>): number {
    const all = [...keys];
    if (all.length === 0) return 0;
    return this.immediate(() => all.reduce((deleted, key) => deleted + this.deleteOne.run({ kind, key }).changes, 0));
  }

  transaction<T>(work: () => T): T {
    return this.immediate(work);
  }

  migrate(kind: string, file: string, records: (parsed: unknown) => Array<[string, unknown]>): void {
    if (!existsSync(file)) return;
    this.immediate(() => {
      // Another process may have migrated it while this one waited for the lock.
      if (!existsSync(file)) return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(readFileSync(file, "utf8"));
      } catch {
        parsed = undefined; // unreadable: nothing to import, but do not try again
      }
      for (const [key, value] of parsed === undefined ? [] : records(parsed)) this.insertNew.run({ kind, key, value: JSON.stringify(value) });
      renameSync(file, `${file}.migrated`);
    });
  }
}
