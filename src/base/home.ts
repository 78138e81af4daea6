/**
 * This user's home directory: $HOME first, so tests and sandboxes can point it elsewhere. A
 * relative $HOME (or none) is not one: /etc/passwd's entry is.
 */
export function homeDir(env: Record<string, string | undefined>): string {
  if (env.HOME?.startsWith("/")) return env.HOME;
  return passwdHome() ?? (require("node:os") as typeof import("node:os")).homedir();
}

/** This uid's home in /etc/passwd (Bun's os.userInfo() answers $HOME, whatever it holds). */
function passwdHome(): string | undefined {
  const { readFileSync } = require("node:fs") as typeof import("node:fs");
  try {
    const uid = String(process.getuid?.());
    const entry = readFileSync("/etc/passwd", "utf8").split("\n").map((line) => line.split(":")).find((fields) => fields[2] === uid);
    return entry?.[5]?.startsWith("/") ? entry[5] : undefined;
  } catch {
    return undefined; // no /etc/passwd (Windows)
  }
}

/**
 * An XDG base directory variable's value when it may be used: absolute. The spec has a relative
 * one ignored, and taken as given it would put the state under whatever directory a command
 * runs in, where the next command, run elsewhere, would not find its sandboxes.
 */
export function xdgBaseDir(value: string | undefined): string | undefined {
  return value?.startsWith("/") ? value : undefined;
}
