import { existsSync, readdirSync, readFileSync } from "node:fs";
import { type HostArchive, hostTar } from "./archive";
import { basename, dirname, join, relative } from "node:path";
import ignore, { type Ignore } from "ignore";

/**
 * The files of a project directory that git would track: every .gitignore on the way down is
 * honoured (each relative to its own directory) and .git itself never travels. Paths are
 * relative to `root`; directories end with "/" so empty ones are kept.
 */
export function projectFiles(root: string): string[] {
  const files: string[] = [];
  const walk = (dir: string, rules: Array<{ base: string; matcher: Ignore }>) => {
    const gitignore = join(dir, ".gitignore");
    const scoped = existsSync(gitignore) ? [...rules, { base: dir, matcher: ignore().add(readFileSync(gitignore, "utf8")) }] : rules;
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (entry.name === ".git") continue;
      const path = join(dir, entry.name);
      const isDir = entry.isDirectory();
      const ignored = scoped.some(({ base, matcher }) => matcher.ignores(relative(base, path) + (isDir ? "/" : "")));
      if (ignored) continue;
      const rel = relative(root, path);
      if (isDir) {
        files.push(`${rel}/`);
        walk(path, scoped);
      } else {
        files.push(rel);
      }
    }
  };
  walk(root, []);
  return files;
}

/** A tar whose single top-level entry is basename(root), holding projectFiles(root). */
export function packProjectDir(root: string): HostArchive {
  const name = basename(root);
  const list = [name, ...projectFiles(root).map((file) => join(name, file.replace(/\/$/, "")))].join("\0") + "\0";
  return hostTar(["--format=gnu", "--no-recursion", "--null", "-C", dirname(root), "-T", "-"], root, { stdin: new TextEncoder().encode(list) });
}
