import { SandboxesError } from "../base/errors";
import { dict, own } from "../base/keys";
import { homeDir, xdgBaseDir } from "../base/home";

// Paths are joined by hand: node:path and node:os cost ~0.5 ms to load, and these run on every
// command, including `providers` (bench/startup.ts).

/** Everything configurable, after defaults < config file < environment (flags are applied by callers). */
export interface Settings {
  env: Record<string, string | undefined>;
  configPath: string;
  stateDir: string;
  /** The parsed config.toml, or {} when there is none. */
  file: ConfigFile;
}

export interface ConfigFile {
  default_provider?: string;
  providers?: Record<string, Record<string, unknown>>;
  [key: string]: unknown;
}

export { homeDir };

export function configDir(env: Record<string, string | undefined>): string {
  return `${xdgBaseDir(env.XDG_CONFIG_HOME) ?? `${homeDir(env)}/.config`}/sandboxes`;
}

export function stateDir(env: Record<string, string | undefined>): string {
  return `${xdgBaseDir(env.XDG_STATE_HOME) ?? `${homeDir(env)}/.local/state`}/sandboxes`;
}

/**
 * Reads config.toml with Bun's file API: node:fs would cost ~1 ms on every command. Most people
 * have none: asked first whether it exists, because the error a read of a missing file throws
 * costs a command milliseconds (Bun makes its first system error: CONTRIBUTING.md, "sandbox-start, measured").
 */
export async function loadSettings(env: Record<string, string | undefined> = process.env): Promise<Settings> {
  const configPath = env.SANDBOXES_CONFIG || `${configDir(env)}/config.toml`;
  let file: ConfigFile = {};
  let text: string | undefined;
  try {
    const config = Bun.file(configPath);
    if (await config.exists()) text = await config.text();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "ENOENT" && code !== "ENOTDIR") {
      throw new SandboxesError("bad_config", `cannot read ${configPath}: ${code ?? (error as Error).message}`, "user", "make it a readable file or move it away");
    }
  }
  if (text !== undefined) {
    try {
      file = Bun.TOML.parse(text) as ConfigFile;
    } catch (error) {
      throw new SandboxesError(
        "bad_config",
        `cannot parse ${configPath}: ${(error as Error).message}`,
        "user",
        "fix the TOML syntax or move the file away",
      );
    }
  }
  return { env, configPath, stateDir: stateDir(env), file };
}

export function providerConfig(settings: Settings, provider: string): Record<string, unknown> {
  // Table names are the user's: [providers.constructor] is a table like any other, never Object's.
  const table = own(own(settings.file, "providers") as Record<string, unknown> | undefined, provider);
  return dict(table !== null && typeof table === "object" ? Object.entries(table) : []);
}
