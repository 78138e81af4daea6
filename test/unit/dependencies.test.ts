import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "../..");
const manifest = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
/** Tools run from the command line rather than imported. */
const TOOLS = new Set(["bun", "typescript", "@types/bun"]);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return /\.(ts|js)$/.test(entry.name) ? [readFileSync(path, "utf8")] : [];
  });
}

test("every dependency in package.json is imported by src, test, bench or scripts", () => {
  const code = ["src", "test", "bench", "scripts", "bin"].flatMap((dir) => sources(join(ROOT, dir))).join("\n");
  const names = [...Object.keys(manifest.dependencies), ...Object.keys(manifest.devDependencies)].filter((name) => !TOOLS.has(name));
  const unused = names.filter((name) => !new RegExp(`(?:from |import\\(|require\\()["']${name.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}(?:/[^"']*)?["']`).test(code));
  expect(unused).toEqual([]);
});
