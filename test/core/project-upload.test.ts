import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { packProjectDir, projectFiles } from "../../src/core/project-upload";
import { wholeArchive } from "../../src/providers/types";

const root = join(mkdtempSync(join(tmpdir(), "sandboxes-upload-")), "proj");
afterAll(() => rmSync(join(root, ".."), { recursive: true, force: true }));

function tree(files: Record<string, string>): void {
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(root, path, ".."), { recursive: true });
    writeFileSync(join(root, path), content);
  }
}

tree({
  ".gitignore": "node_modules/\n*.log\n/build\n!keep.log\n",
  "src/main.ts": "x",
  "src/debug.log": "x",
  "src/keep.log": "x",
  "src/.gitignore": "generated.ts\n",
  "src/generated.ts": "x",
  "node_modules/dep/index.js": "x",
  "build/out.js": "x",
  "docs/build/page.md": "x",
  ".git/HEAD": "ref",
  ".env.example": "x",
});
mkdirSync(join(root, "empty"));

test("projectFiles honours every .gitignore (scoped to its directory), negations, and skips .git", () => {
  expect(projectFiles(root)).toEqual([
    ".env.example",
    ".gitignore",
    "docs/",
    "docs/build/",
    "docs/build/page.md",
    "empty/",
    "src/",
    "src/.gitignore",
    "src/keep.log",
    "src/main.ts",
  ]);
});

test("packProjectDir: one top-level entry named after the directory, holding only the kept files", async () => {
  const tar = await wholeArchive(packProjectDir(root));
  const out = mkdtempSync(join(tmpdir(), "sandboxes-upload-out-"));
  try {
    await new Bun.Archive(tar).extract(out);
    const files = [...new Bun.Glob("**").scanSync({ cwd: out, dot: true })].sort();
    expect(files).toEqual(["proj/.env.example", "proj/.gitignore", "proj/docs/build/page.md", "proj/src/.gitignore", "proj/src/keep.log", "proj/src/main.ts"]);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
