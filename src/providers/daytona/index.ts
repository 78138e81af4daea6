import { capabilities, defineProvider, details } from "../define";
import { credential, missing, setting } from "../shared/settings";
import type { ProviderContext } from "../types";

// networkAllowList takes CIDRs only.
export const DAYTONA_CAPABILITIES = capabilities("streaming", "files", "pty", "resize", "labels", "stdin", "networkIsolation", "networkAllowCidrs", "ttl", "resources");

export const DEFAULT_DAYTONA_API_URL = "https://app.daytona.io/api";
export const MISSING_API_KEY = missing("daytona", "DAYTONA_API_KEY", "api_key");

export interface DaytonaSettings {
  apiKey?: string;
  /** Where the key came from, for `providers`. */
  source?: string;
  apiUrl: string;
  target?: string;
}

/** Environment beats config.toml ([providers.daytona] api_key / api_url / target). */
export function daytonaSettings(ctx: ProviderContext): DaytonaSettings {
  const key = credential(ctx, ["DAYTONA_API_KEY"], "api_key");
  return {
    apiKey: key?.value,
    source: key?.source,
    apiUrl: setting(ctx, ["DAYTONA_API_URL", "DAYTONA_SERVER_URL"], "api_url", DEFAULT_DAYTONA_API_URL),
    target: setting(ctx, ["DAYTONA_TARGET"], "target"),
  };
}

export const daytonaDescriptor = defineProvider({
  name: "daytona",
  description: "Daytona cloud sandboxes (official @daytonaio/sdk)",
  capabilities: DAYTONA_CAPABILITIES,
  settings: daytonaSettings,
  describe: (s) => (s.source ? { source: s.source, details: details(s.apiUrl !== DEFAULT_DAYTONA_API_URL && `api ${s.apiUrl}`, s.target && `target ${s.target}`) } : { missing: MISSING_API_KEY }),
  load: async (settings) => new (await import("./provider")).DaytonaProvider(settings),
});
