import { afterAll, describe, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { openStore } from "../../src/base/store";
import { Registry, type RegistryEntry } from "../../src/core/registry";
import { CloudflareRegistry } from "../../src/providers/cloudflare/registry";
import { LocalLabels } from "../../src/providers/hopx/labels";

const dirs: string[] = [];
afterAll(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));
/** A state directory that does not exist yet, as on a machine that never ran sandboxes. */
function stateDir(): string {
  const home = mkdtempSync(join(tmpdir(), "sandboxes-store-"));
  dirs.push(home);
  return join(home, "state", "sandboxes");
}
const entry = (provider: string, id: string, name?: string): RegistryEntry => ({ id, provider, ...(name ? { name } : {}), labels: { k: "v" }, createdAt: "2026-01-01T00:00:00.000Z" });

describe("the state store", () => {
  test("keeps JSON records per kind, lists them oldest write first, replaces by key", () => {
    const store = openStore(stateDir());
    store.put("a", "1", { n: 1 });
    store.put("a", "2", { n: 2 });
    store.put("b", "1", { other: true });
    store.put("a", "1", { n: 3 });
    expect(store.list("a")).toEqual([
      ["2", { n: 2 }],
      ["1", { n: 3 }],
    ]);
    expect(store.get("b", "1")).toEqual({ other: true });
    expect(store.get("b", "2")).toBeUndefined();
    expect(store.delete("a", ["1", "9"])).toBe(1);
    expect(store.list("a")).toEqual([["2", { n: 2 }]]);
  });

  test("is one private file, state.db (0600 in a 0700 directory), in WAL mode", () => {
    const dir = stateDir();
    openStore(dir).put("a", "1", {});
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const file of ["state.db", "state.db-wal", "state.db-shm"]) expect({ file, mode: statSync(join(dir, file)).mode & 0o777 }).toEqual({ file, mode: 0o600 });
    const db = new Database(join(dir, "state.db"), { readonly: true });
    expect(db.query<{ journal_mode: string }, []>("PRAGMA journal_mode").get()?.journal_mode).toBe("wal");
    db.close();
  });

  test("constructing the registry, Hopx's labels or Cloudflare's records touches no file", () => {
    const dir = stateDir();
    new Registry(dir);
    new LocalLabels(dir);
    new CloudflareRegistry(dir);
    expect(existsSync(dir)).toBe(false);
  });

  test("a transaction that throws leaves nothing behind", () => {
    const store = openStore(stateDir());
    expect(() =>
      store.transaction(() => {
        store.put("a", "1", {});
        throw new Error("abandoned");
      }),
    ).toThrow("abandoned");
    expect(store.list("a")).toEqual([]);
  });

  test("20 processes adding 25 registry entries each at once lose none", async () => {
    const dir = stateDir();
    const registry = resolve(import.meta.dir, "../../src/core/registry.ts");
    const writer = `import { Registry } from ${JSON.stringify(registry)};
const [dir, who] = process.argv.slice(-2);
const registry = new Registry(dir);
for (let i = 0; i < 25; i++) registry.add({ id: who + "-" + i, provider: "local", labels: {}, createdAt: new Date().toISOString() });`;
    const children = Array.from({ length: 20 }, (_, who) => Bun.spawn([process.execPath, "-e", writer, dir, String(who)], { stdout: "ignore", stderr: "pipe" }));
    const failures = await Promise.all(children.map(async (child) => ((await child.exited) === 0 ? "" : await new Response(child.stderr).text())));
    expect(failures.filter(Boolean)).toEqual([]);
    expect(new Registry(dir).entries()).toHaveLength(500);
  }, 60_000);

  // What the 20 processes above meet by chance: a new file is in SQLite's rollback mode, and the
  // process that switches it to WAL holds its write lock meanwhile. Here a connection of this
  // process holds that lock on purpose until a timer lets it go; SQLite answers the other
  // process's switch at once (SQLITE_BUSY, no busy timeout), and the store must wait it out.
  test("a store opened while another process holds a new file's write lock waits for it, then writes", async () => {
    const dir = stateDir();
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const holder = new Database(join(dir, "state.db"));
    holder.run("BEGIN IMMEDIATE");
    holder.run("CREATE TABLE other (a)");
    const store = resolve(import.meta.dir, "../../src/base/store.ts");
    const writer = `import { openStore } from ${JSON.stringify(store)};
openStore(process.argv.at(-1)).put("k", "written", { by: "child" });`;
    const child = Bun.spawn([process.execPath, "-e", writer, dir], { stdout: "ignore", stderr: "pipe" });
    const release = setTimeout(() => holder.run("COMMIT"), 300);
    const [code, stderr] = await Promise.all([child.exited, new Response(child.stderr).text()]);
    clearTimeout(release);
    holder.close();
    expect(stderr).toBe("");
    expect(code).toBe(0);
    const db = new Database(join(dir, "state.db"));
    expect(db.query("PRAGMA journal_mode").get()).toEqual({ journal_mode: "wal" });
    expect(db.query("SELECT value FROM records WHERE kind = 'k' AND key = 'written'").get()).toEqual({ value: JSON.stringify({ by: "child" }) });
    db.close();
  }, 30_000);
});

describe("what older versions kept in JSON files is imported once", () => {
  test("registry.json: its entries join the store, the file becomes registry.json.migrated", () => {
    const dir = stateDir();
    mkdirSync(dir, { recursive: true });
    const old = [entry("local", "a", "first"), entry("docker", "b")];
    writeFileSync(join(dir, "registry.json"), JSON.stringify(old));
    const registry = new Registry(dir);
    expect(registry.entries()).toEqual(old);
    expect(registry.lookup("first")).toEqual([old[0]!]);
    expect(existsSync(join(dir, "registry.json"))).toBe(false);
    expect(JSON.parse(readFileSync(join(dir, "registry.json.migrated"), "utf8"))).toEqual(old);
    registry.remove("local", "a");
    expect(new Registry(dir).entries()).toEqual([old[1]!]);
  });

  test("a record the store already has wins over the file's", () => {
    const dir = stateDir();
    new Registry(dir).add(entry("local", "a", "newer"));
    writeFileSync(join(dir, "registry.json"), JSON.stringify([entry("local", "a", "older"), entry("local", "c")]));
    expect(new Registry(dir).entries().map((e) => [e.id, e.name])).toEqual([
      ["a", "newer"],
      ["c", undefined],
    ]);
  });

  test("an unreadable file is set aside, not imported and not read again", () => {
    const dir = stateDir();
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "registry.json"), "{ not json");
    expect(new Registry(dir).entries()).toEqual([]);
    expect(readFileSync(join(dir, "registry.json.migrated"), "utf8")).toBe("{ not json");
  });

  test("hopx/sandboxes.json: labels and names by sandbox id", () => {
    const dir = stateDir();
    mkdirSync(join(dir, "hopx"), { recursive: true });
    const old = { s1: { name: "web", labels: { team: "a" }, createdAt: "2026-01-01T00:00:00.000Z" }, s2: { labels: {}, createdAt: "2026-01-02T00:00:00.000Z" } };
    writeFileSync(join(dir, "hopx", "sandboxes.json"), JSON.stringify(old));
    const labels = new LocalLabels(dir);
    expect(labels.all()).toEqual(old);
    expect(existsSync(join(dir, "hopx", "sandboxes.json.migrated"))).toBe(true);
    labels.forget([], new Set(["s2"]));
    expect(Object.keys(new LocalLabels(dir).all())).toEqual(["s2"]);
  });

  test("cloudflare/sandboxes.json: records per Worker URL, env included", () => {
    const dir = stateDir();
    mkdirSync(join(dir, "cloudflare"), { recursive: true });
    const record = { url: "http://127.0.0.1:1", labels: {}, env: { TOKEN: "x" }, createdAt: "2026-01-01T00:00:00.000Z" };
    writeFileSync(join(dir, "cloudflare", "sandboxes.json"), JSON.stringify({ c1: record, c2: { ...record, url: "http://127.0.0.1:2" } }));
    const sandboxes = new CloudflareRegistry(dir);
    expect(sandboxes.of("http://127.0.0.1:1")).toEqual([["c1", record]]);
    expect(sandboxes.get("http://127.0.0.1:2", "c1")).toBeUndefined();
    sandboxes.forget("c1");
    expect(new CloudflareRegistry(dir).of("http://127.0.0.1:1")).toEqual([]);
  });
});
