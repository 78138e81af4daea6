import type { Capabilities, ProviderContext, ProviderDescriptor } from "../types";

export const DAYTONA_CAPABILITIES: Capabilities = {
  streaming: true,
  files: true,
  pty: true,
  resize: true,
  labels: true,
  stdin: true,
  networkIsolation: true,
  // networkAllowList takes CIDRs only.
  networkAllowCidrs: true,
  ttl: true,
  resources: true,
  mounts: false,
  oneShot: false,
};

export const DEFAULT_DAYTONA_API_URL = "https://app.daytona.io/api";

export interface DaytonaSettings {
  apiKey?: string;
  /** Where the key came from, for `providers`. */
  source?: string;
  apiUrl: string;
  target?: string;
}

const text = (value: unknown): string | undefined => (typeof value === "string" && value.trim() ? value.trim() : undefined);

/** Environment beats config.toml ([providers.daytona] api_key / api_url / target). */
export function daytonaSettings(ctx: ProviderContext): DaytonaSettings {
  const envKey = text(ctx.env.DAYTONA_API_KEY);
  const fileKey = text(ctx.config.api_key);
  return {
    apiKey: envKey ?? fileKey,
    source: envKey ? "DAYTONA_API_KEY" : fileKey ? "config.toml" : undefined,
    apiUrl: text(ctx.env.DAYTONA_API_URL) ?? text(ctx.env.DAYTONA_SERVER_URL) ?? text(ctx.config.api_url) ?? DEFAULT_DAYTONA_API_URL,
    target: text(ctx.env.DAYTONA_TARGET) ?? text(ctx.config.target),
  };
}

export const daytonaDescriptor: ProviderDescriptor = {
  name: "daytona",
  description: "Daytona cloud sandboxes (official @daytonaio/sdk)",
  capabilities: DAYTONA_CAPABILITIES,
  async detect(ctx) {
    const settings = daytonaSettings(ctx);
    if (!settings.apiKey) return { configured: false, missing: "set DAYTONA_API_KEY (or api_key under [providers.daytona] in config.toml)" };
    const where = settings.apiUrl === DEFAULT_DAYTONA_API_URL ? undefined : `api ${settings.apiUrl}`;
    const details = [where, settings.target ? `target ${settings.target}` : undefined].filter(Boolean).join(", ");
    return { configured: true, source: settings.source, ...(details ? { details } : {}) };
  },
  async load(ctx) {
    const { DaytonaProvider } = await import("./provider");
    return new DaytonaProvider(daytonaSettings(ctx));
  },
};
