import type { Capabilities, ProviderContext, ProviderDescriptor } from "../types";

/**
 * Cloudflare Sandbox reached through a Worker of your own that serves the HTTP API of
 * `@cloudflare/sandbox/bridge` (0.12.x) under /v1. That API creates an id and nothing more: no
 * image, env, labels, name or lifetime, and it has no list endpoint. Labels, names and the
 * sandbox env are kept on this machine (registry.ts), so labels are claimed: list() filters them.
 */
export const CLOUDFLARE_CAPABILITIES: Capabilities = {
  // exec answers with server-sent events while the command runs.
  streaming: true,
  // Through the file endpoints (which accept /workspace only) and tar in the container.
  files: true,
  pty: true,
  resize: true,
  labels: true,
  // exec has no stdin: it is uploaded whole as a file and redirected (provider.ts).
  stdin: true,
  // The container's network is the Worker's configuration, not something a request can change.
  networkIsolation: false,
  // A sandbox sleeps after the Worker's `sleepAfter`; no request sets a lifetime.
  ttl: false,
  // CPU and memory are the container's instance type in wrangler config.
  resources: false,
  mounts: false,
  oneShot: false,
};

export interface CloudflareSettings {
  /** The Worker's base URL, without a trailing slash. */
  url?: string;
  /** Where the URL came from, for `providers`. */
  urlSource?: string;
  /** The Worker's SANDBOX_API_KEY; a Worker without that secret accepts any request. */
  apiKey?: string;
  stateDir: string;
}

const text = (value: unknown): string | undefined => (typeof value === "string" && value.trim() ? value.trim() : undefined);

/** The environment beats config.toml ([providers.cloudflare] url / api_key). */
export function cloudflareSettings(ctx: ProviderContext): CloudflareSettings {
  const envUrl = text(ctx.env.CLOUDFLARE_SANDBOX_URL);
  const fileUrl = text(ctx.config.url);
  const url = envUrl ?? fileUrl;
  return {
    url: url?.replace(/\/+$/, ""),
    urlSource: envUrl ? "CLOUDFLARE_SANDBOX_URL" : fileUrl ? "config.toml" : undefined,
    apiKey: text(ctx.env.CLOUDFLARE_SANDBOX_API_KEY) ?? text(ctx.env.SANDBOX_API_KEY) ?? text(ctx.config.api_key),
    stateDir: ctx.stateDir,
  };
}

export const NOT_CONFIGURED = "set CLOUDFLARE_SANDBOX_URL to your sandbox Worker's URL (or url under [providers.cloudflare] in config.toml)";

export const cloudflareDescriptor: ProviderDescriptor = {
  name: "cloudflare",
  description: "Cloudflare Sandbox through your own Worker serving the @cloudflare/sandbox bridge API",
  capabilities: CLOUDFLARE_CAPABILITIES,
  async detect(ctx) {
    const settings = cloudflareSettings(ctx);
    if (!settings.url) return { configured: false, missing: NOT_CONFIGURED };
    return { configured: true, source: settings.urlSource, details: `worker ${settings.url}${settings.apiKey ? "" : ", no API key set"}` };
  },
  async load(ctx) {
    const { CloudflareProvider } = await import("./provider");
    return new CloudflareProvider(cloudflareSettings(ctx));
  },
};
