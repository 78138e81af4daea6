import { capabilities, defineProvider, details } from "../define";
import { baseUrl, credential, missing, seconds, setting } from "../shared/settings";
import type { ProviderContext } from "../types";

/**
 * Hopx runs a command through one JSON request to the in-VM agent (POST /commands/run) and answers
 * once it has finished: no streaming. Stdin travels as files through the agent's file API (see
 * exec.ts). Labels and names have no place in the Hopx API: this machine keeps them (labels.ts).
 */
export const HOPX_CAPABILITIES = capabilities("files", "pty", "resize", "labels", "stdin", "networkIsolation", "ttl");

export const DEFAULT_HOPX_API_URL = "https://api.hopx.dev";
export const DEFAULT_HOPX_TEMPLATE = "code-interpreter";
/** One hour: long enough for a kept sandbox to be used, short enough that a forgotten one stops. */
export const DEFAULT_HOPX_TTL_SECONDS = 3600;
export const MISSING_API_KEY = missing("hopx", "HOPX_API_KEY", "api_key");

export interface HopxSettings {
  apiKey?: string;
  /** Where the key came from, for `providers`. */
  source?: string;
  apiUrl: string;
  template: string;
  /** Seconds a sandbox lives unless --ttl says otherwise. */
  ttlSeconds: number;
  stateDir: string;
}

/** Environment beats config.toml ([providers.hopx] api_key / api_url / template / ttl). */
export function hopxSettings(ctx: ProviderContext): HopxSettings {
  const key = credential(ctx, ["HOPX_API_KEY"], "api_key");
  return {
    apiKey: key?.value,
    source: key?.source,
    apiUrl: baseUrl(ctx, ["HOPX_API_URL"], "api_url", DEFAULT_HOPX_API_URL),
    template: setting(ctx, [], "template", DEFAULT_HOPX_TEMPLATE),
    ttlSeconds: seconds(ctx.config.ttl) ?? DEFAULT_HOPX_TTL_SECONDS,
    stateDir: ctx.stateDir,
  };
}

export const hopxDescriptor = defineProvider({
  name: "hopx",
  description: "Hopx cloud sandboxes (microVMs) over the Hopx REST API and in-VM agent",
  capabilities: HOPX_CAPABILITIES,
  settings: hopxSettings,
  describe: (s) => (s.source ? { source: s.source, details: details(`default template: ${s.template}`, s.apiUrl !== DEFAULT_HOPX_API_URL && `api ${s.apiUrl}`) } : { missing: MISSING_API_KEY }),
  load: async (settings) => new (await import("./provider")).HopxProvider(settings),
});
