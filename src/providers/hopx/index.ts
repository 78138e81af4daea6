import type { Capabilities, ProviderContext, ProviderDescriptor } from "../types";

/**
 * Hopx runs a command through one JSON request to the in-VM agent (POST /commands/run) and answers
 * once it has finished: no streaming. Stdin travels as files through the agent's file API (see
 * exec.ts). Labels and names have no place in the Hopx API: this machine keeps them (labels.ts).
 */
export const HOPX_CAPABILITIES: Capabilities = {
  streaming: false,
  files: true,
  pty: true,
  resize: true,
  labels: true,
  stdin: true,
  networkIsolation: true,
  ttl: true,
  resources: false,
  mounts: false,
  oneShot: false,
};

export const DEFAULT_HOPX_API_URL = "https://api.hopx.dev";
export const DEFAULT_HOPX_TEMPLATE = "code-interpreter";

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

const text = (value: unknown): string | undefined => (typeof value === "string" && value.trim() ? value.trim() : undefined);

function seconds(value: unknown): number | undefined {
  const number = typeof value === "string" ? Number(value) : value;
  return typeof number === "number" && Number.isFinite(number) && number > 0 ? number : undefined;
}

/** One hour: long enough for a kept sandbox to be used, short enough that a forgotten one stops. */
export const DEFAULT_HOPX_TTL_SECONDS = 3600;

/** Environment beats config.toml ([providers.hopx] api_key / api_url / template / ttl). */
export function hopxSettings(ctx: ProviderContext): HopxSettings {
  const envKey = text(ctx.env.HOPX_API_KEY);
  const fileKey = text(ctx.config.api_key);
  return {
    apiKey: envKey ?? fileKey,
    source: envKey ? "HOPX_API_KEY" : fileKey ? "config.toml" : undefined,
    apiUrl: (text(ctx.env.HOPX_API_URL) ?? text(ctx.config.api_url) ?? DEFAULT_HOPX_API_URL).replace(/\/+$/, ""),
    template: text(ctx.config.template) ?? DEFAULT_HOPX_TEMPLATE,
    ttlSeconds: seconds(ctx.config.ttl) ?? DEFAULT_HOPX_TTL_SECONDS,
    stateDir: ctx.stateDir,
  };
}

export const hopxDescriptor: ProviderDescriptor = {
  name: "hopx",
  description: "Hopx cloud sandboxes (microVMs) over the Hopx REST API and in-VM agent",
  capabilities: HOPX_CAPABILITIES,
  async detect(ctx) {
    const settings = hopxSettings(ctx);
    if (!settings.apiKey) return { configured: false, missing: "set HOPX_API_KEY (or api_key under [providers.hopx] in config.toml)" };
    const where = settings.apiUrl === DEFAULT_HOPX_API_URL ? undefined : `api ${settings.apiUrl}`;
    const details = [`default template: ${settings.template}`, where].filter(Boolean).join(", ");
    return { configured: true, source: settings.source, details };
  },
  async load(ctx) {
    const { HopxProvider } = await import("./provider");
    return new HopxProvider(hopxSettings(ctx));
  },
};
