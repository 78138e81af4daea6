/**
 * This user's home directory: $HOME first, so tests and sandboxes can point it elsewhere. A
 * relative $HOME (or none) is not one: the user database's entry is.
 */
export function homeDir(env: Record<string, string | undefined>): string {
  if (env.HOME?.startsWith("/")) return env.HOME;
  const os = require("node:os") as typeof import("node:os");
  try {
    return os.userInfo().homedir;
  } catch {
    return os.homedir(); // no entry for this uid
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
