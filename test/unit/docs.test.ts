import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { defaultSources, DOCS_COMMAND, renderDocs, staleFiles, type DocSources } from "../../scripts/gen-docs";
import { COMMANDS } from "../../src/cli/registry";
import { defineCommand } from "../../src/cli/command";
import { commandHelp } from "../../src/cli/help-text";
import { PROVIDERS } from "../../src/providers/catalog";

const sources = await defaultSources();
const files = await renderDocs(sources);
const scratch = mkdtempSync(join(tmpdir(), "sandboxes-docs-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe("docs/", () => {
  test("matches the command, exit-code and provider tables (else: run `bun run docs`)", async () => {
    const stale = await staleFiles(files);
    const verdict = stale.length ? `docs/ is stale (${stale.map((p) => `docs/${p}`).join(", ")}): run \`${DOCS_COMMAND}\`` : "docs/ is up to date";
    expect(verdict).toBe("docs/ is up to date");
  });

  test("has a page per command and per provider, an index, the capability matrix and the exit codes", () => {
    const expected = [
      ...Object.keys(COMMANDS).map((name) => `commands/${name}.md`),
      ...PROVIDERS.map((p) => `providers/${p.name}.md`),
      "README.md",
      "capabilities.md",
      "exit-codes.md",
      // A hand-written page with a generated block (run's flags).
      "usage.md",
    ];
    expect([...files.keys()].sort()).toEqual(expected.sort());
  });

  test("each command page lists every flag exactly as `--help` shows it", async () => {
    let checked = 0;
    for (const name of Object.keys(COMMANDS)) {
      const help = (await commandHelp(name))!;
      const flagColumn = help
        .slice(help.indexOf("Flags:\n"))
        .split("\n")
        .slice(1)
        .filter((line) => /^ {2}(-\w, | {4})--/.test(line))
        .map((line) => line.trim().split(/ {2,}/)[0]!);
      checked += flagColumn.length;
      const page = files.get(`commands/${name}.md`)!;
      const missing = flagColumn.filter((flag) => !page.includes(`| \`${flag.replace(/\|/g, "\\|")}\` |`));
      expect({ name, missing }).toEqual({ name, missing: [] });
    }
    expect(checked).toBeGreaterThan(Object.keys(COMMANDS).length);
  });

  test("the capability matrix has a row per capability and a yes/no per provider", () => {
    const matrix = files.get("capabilities.md")!;
    for (const [key] of sources.capabilityNotes) {
      const row = matrix.split("\n").find((line) => line.startsWith(`| \`${key}\` | `))!;
      const cells = row.split(" | ").slice(1).map((c) => c.replace(/ \|$/, ""));
      expect(cells).toEqual(PROVIDERS.map((p) => (p.capabilities[key] ? "yes" : "no")));
    }
    expect(sources.capabilityNotes.map(([key]): string => key).sort()).toEqual(Object.keys(PROVIDERS[0]!.capabilities).sort());
  });

  test("a cloud provider's page says what to set, as `sandboxes providers` does", () => {
    expect(files.get("providers/e2b.md")).toContain("Set E2B_API_KEY");
    expect(files.get("providers/local.md")).toContain("Needs no account.");
  });

  test("no generated file names this machine (checkout path, home directory) or a date", () => {
    const checkout = resolve(import.meta.dir, "../..");
    for (const [path, content] of files) {
      expect({ path, checkout: content.includes(checkout), home: content.includes(homedir()), date: /\b20\d\d-\d\d-\d\d\b/.test(content) })
        .toEqual({ path, checkout: false, home: false, date: false });
    }
  });
});

describe("the generator", () => {
  test("never documents an internal command (name starting with __)", async () => {
    const hidden = defineCommand({ meta: { name: "__selfcheck", description: "internal" }, args: {}, toOptions: () => ({}), run: async () => 0 });
    const withHidden: DocSources = {
      ...sources,
      commands: { ...sources.commands, __selfcheck: async () => ({ default: hidden }) },
      summaries: { ...sources.summaries, __selfcheck: "internal" },
    };
    const out = await renderDocs(withHidden);
    expect([...out.keys()].filter((path) => path.includes("__selfcheck"))).toEqual([]);
    expect([...out.values()].filter((content) => content.includes("__selfcheck"))).toEqual([]);
  });

  test("lists the hand-written pages at the top of docs/ in the index, by their title", async () => {
    const out = await renderDocs({ ...sources, guides: [["agents.md", "Sandboxes for AI agents"]] });
    expect(out.get("README.md")).toContain("## Guides\n\n- [Sandboxes for AI agents](agents.md)\n");
    expect(out.has("agents.md")).toBe(false);
  });

  test("keeps a hand-written page's flag table a generated block: rewritten from the table, never a hand copy", async () => {
    const guide = "# Guide\n\nBefore.\n\n<!-- flags: list -->\n| hand | copy |\n<!-- end flags -->\n\nAfter.\n";
    const out = await renderDocs({ ...sources, guideTexts: new Map([["guide.md", guide]]) });
    const page = out.get("guide.md")!;
    expect(page.startsWith("# Guide\n\nBefore.\n\n<!-- flags: list -->\n| Flag | Description |\n")).toBe(true);
    expect(page).toContain("| `-l, --label key=value` | Label key=value. Repeatable. |\n| `--json` |");
    expect(page.endsWith("| `-h, --help` | Show this help. |\n<!-- end flags -->\n\nAfter.\n")).toBe(true);
    expect(page).not.toContain("hand | copy");
    // docs/usage.md holds run's flags this way, so its table is checked like the generated pages.
    expect(files.get("usage.md")).toContain("<!-- flags: run -->\n| Flag | Description |\n| --- | --- |\n| `-f, --file path` |");
    await expect(renderDocs({ ...sources, guideTexts: new Map([["guide.md", "<!-- flags: __proto__ -->\n<!-- end flags -->\n"]]) })).rejects.toThrow("names no command");
  });

  test("reports edited, missing and orphaned pages as stale", async () => {
    const dir = join(scratch, "stale");
    for (const [path, content] of files) {
      mkdirSync(join(dir, path, ".."), { recursive: true });
      writeFileSync(join(dir, path), content);
    }
    expect(await staleFiles(files, dir)).toEqual([]);
    writeFileSync(join(dir, "commands/run.md"), "edited by hand\n");
    rmSync(join(dir, "exit-codes.md"));
    writeFileSync(join(dir, "commands/removed-command.md"), "a command that no longer exists\n");
    writeFileSync(join(dir, "agents.md"), "# A hand-written guide\n");
    expect(await staleFiles(files, dir)).toEqual(["commands/removed-command.md", "commands/run.md", "exit-codes.md"]);
  });

  test("is deterministic: two runs give the same files", async () => {
    const again = await renderDocs(await defaultSources());
    expect([...again.entries()]).toEqual([...files.entries()]);
  });
});
