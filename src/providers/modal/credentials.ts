import { text } from "../shared/settings";

/** A Modal token pair and where it came from (for `providers`). */
export interface ModalCredentials {
  tokenId: string;
  tokenSecret: string;
  source: string;
  /** server_url of the ~/.modal.toml profile, when it has one. */
  serverUrl?: string;
}

type Env = Record<string, string | undefined>;

/** The path the Modal CLI and SDK read: $MODAL_CONFIG_PATH or ~/.modal.toml. */
export function modalConfigPath(env: Env): string | undefined {
  if (env.MODAL_CONFIG_PATH) return env.MODAL_CONFIG_PATH;
  return env.HOME ? `${env.HOME.replace(/\/+$/, "")}/.modal.toml` : undefined;
}

/**
 * The profile the Modal CLI would use: $MODAL_PROFILE, else the one marked `active`, else the
 * only one. A small local file, no network.
 */
async function modalProfile(env: Env): Promise<{ profile: Record<string, unknown>; path: string } | undefined> {
  const path = modalConfigPath(env);
  if (!path) return undefined;
  let parsed: Record<string, unknown>;
  try {
    parsed = Bun.TOML.parse(await Bun.file(path).text()) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const profiles = Object.entries(parsed).filter(([, v]) => v && typeof v === "object") as Array<[string, Record<string, unknown>]>;
  const chosen = env.MODAL_PROFILE
    ? profiles.find(([name]) => name === env.MODAL_PROFILE)
    : (profiles.find(([, p]) => p.active === true) ?? (profiles.length === 1 ? profiles[0] : undefined));
  return chosen ? { profile: chosen[1], path } : undefined;
}

/** Environment beats config.toml beats ~/.modal.toml; a pair is only taken whole. */
export async function findModalCredentials(env: Env, config: Record<string, unknown>): Promise<ModalCredentials | undefined> {
  if (env.MODAL_TOKEN_ID && env.MODAL_TOKEN_SECRET) {
    return { tokenId: env.MODAL_TOKEN_ID, tokenSecret: env.MODAL_TOKEN_SECRET, source: "MODAL_TOKEN_ID + MODAL_TOKEN_SECRET" };
  }
  const fromConfig = { id: text(config.token_id), secret: text(config.token_secret) };
  if (fromConfig.id && fromConfig.secret) return { tokenId: fromConfig.id, tokenSecret: fromConfig.secret, source: "config.toml [providers.modal]" };
  const file = await modalProfile(env);
  const id = text(file?.profile.token_id);
  const secret = text(file?.profile.token_secret);
  if (file && id && secret) return { tokenId: id, tokenSecret: secret, source: file.path, serverUrl: text(file.profile.server_url) };
  return undefined;
}

export const MISSING_CREDENTIALS = "set MODAL_TOKEN_ID and MODAL_TOKEN_SECRET (or run `modal token new`, which writes ~/.modal.toml)";
