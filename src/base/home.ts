/** This user's home directory: $HOME first, so tests and sandboxes can point it elsewhere. */
export function homeDir(env: Record<string, string | undefined>): string {
  return env.HOME || (require("node:os") as typeof import("node:os")).homedir();
}
