import { existsSync, mkdtempSync, renameSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { SandboxesError } from "../base/errors";

/**
 * Local side of file transfers. Packing uses the host's tar(1) because Bun.Archive cannot carry
 * file modes (executables would lose +x); unpacking uses Bun.Archive, which keeps them.
 */
export async function packPath(localPath: string, entryName: string): Promise<Uint8Array> {
  const parent = dirname(localPath);
  const name = basename(localPath);
  const transform = name === entryName ? [] : renameArgs(escapePattern(name), escapeReplacement(entryName));
  const child = Bun.spawn(["tar", "-c", "-f", "-", ...formatArgs(), ...transform, "-C", parent, name], { stdout: "pipe", stderr: "pipe" });
  const [bytes, errors, code] = await Promise.all([new Response(child.stdout).bytes(), new Response(child.stderr).text(), child.exited]);
  if (code !== 0) throw new SandboxesError("file_transfer_failed", `cannot read ${localPath}: ${errors.trim().split("\n").pop()}`, "user");
  return bytes;
}

/** GNU tar (Linux) renames with --transform; bsdtar (macOS, Windows) with -s. */
export function renameArgs(from: string, to: string): string[] {
  return process.platform === "linux" ? [`--transform=s|^${from}|${to}|`] : ["-s", `|^${from}|${to}|`];
}

/** GNU format keeps long names and big files portable; bsdtar's default (pax) does too. */
export function formatArgs(): string[] {
  return process.platform === "linux" ? ["--format=gnu"] : [];
}

/** A literal name as a sed regular expression (delimiter `|`). */
function escapePattern(text: string): string {
  return text.replace(/[\\|.*[\]^$]/g, (c) => `\\${c}`);
}

/** A literal name as a sed replacement: only `\`, `&` and the delimiter are special there. */
function escapeReplacement(text: string): string {
  return text.replace(/[\\&|]/g, (c) => `\\${c}`);
}

/** Packs one in-memory file (source code) as a tar with a single entry. */
export async function packFile(name: string, data: Uint8Array | string): Promise<Uint8Array> {
  const archive = new Bun.Archive({ [name]: data });
  return archive.bytes();
}

/**
 * Writes the tar's single top-level entry to `target` (cp semantics: into it when it is an
 * existing directory, otherwise as that path).
 */
export async function unpackTo(tar: Uint8Array, target: string): Promise<string> {
  const staging = mkdtempSync(join(existsSync(dirname(target)) ? dirname(target) : osTmpdir(), ".sandboxes-cp-"));
  try {
    await new Bun.Archive(tar).extract(staging);
    const entries = [...new Bun.Glob("*").scanSync({ cwd: staging, onlyFiles: false, dot: true })];
    if (entries.length !== 1) throw new SandboxesError("file_transfer_failed", `expected one entry in the archive, found ${entries.length}`, "provider");
    const entry = entries[0]!;
    const destination = existsSync(target) && statSync(target).isDirectory() ? join(target, entry) : target;
    if (existsSync(destination) && statSync(destination).isDirectory() && statSync(join(staging, entry)).isDirectory()) {
      // cp -r into an existing directory of the same name merges; keep it simple and replace.
      rmSync(destination, { recursive: true, force: true });
    }
    renameSync(join(staging, entry), destination);
    return destination;
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** node:os on first use: every run imports this module, few copy into a directory that is missing. */
function osTmpdir(): string {
  return (require("node:os") as typeof import("node:os")).tmpdir();
}
