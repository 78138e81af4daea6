import { capabilities, defineProvider } from "../define";
import { credential, missing, setting } from "../shared/settings";
import type { ProviderContext } from "../types";

// networkAllowList takes CIDRs only.
export const DAYTONA_CAPABILITIES = capabilities("streaming", "files", "pty", "resize", "labels", "stdin", "networkIsolation", "networkAllowCidrs", "ttl", "resources");

export const DEFAULT_DAYTONA_API_URL = "https://app.daytona.io/api";

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
  describe: (settings) => {
    if (!settings.apiKey || !settings.source) return { missing: missing("daytona", "DAYTONA_API_KEY", "api_key") };
    const where = settings.apiUrl === DEFAULT_DAYTONA_API_URL ? undefined : `api ${settings.apiUrl}`;
    return { source: settings.source, details: [where, settings.target ? `target ${settings.target}` : undefined].filter(Boolean).join(", ") };
  },
  load: async (settings) => new (await import("./provider")).DaytonaProvider(settings),
});
