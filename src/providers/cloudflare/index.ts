import { capabilities, defineProvider, details } from "../define";
import { credential, setting } from "../shared/settings";
import type { ProviderContext } from "../types";

/**
 * Cloudflare Sandbox reached through a Worker of your own that serves the HTTP API of
 * `@cloudflare/sandbox/bridge` (0.12.x) under /v1. That API creates an id and nothing more: no
 * image, env, labels, name or lifetime, and it has no list endpoint. Labels, names and the
 * sandbox env are kept on this machine (registry.ts), so labels are claimed: list() filters them.
 *
 * Streaming: exec answers with server-sent events while the command runs. Files: through the file
 * endpoints (which accept /workspace only) and tar in the container. Stdin: exec has none, so it
 * is uploaded whole as a file and redirected (provider.ts). Not networkIsolation: the container's
 * network is the Worker's configuration. Not ttl: a sandbox sleeps after the Worker's
 * `sleepAfter`. Not resources: CPU and memory are the container's instance type in wrangler config.
 */
export const CLOUDFLARE_CAPABILITIES = capabilities("streaming", "files", "pty", "resize", "labels", "stdin");

export interface CloudflareSettings {
  /** The Worker's base URL, without a trailing slash. */
  url?: string;
  /** Where the URL came from, for `providers`. */
  urlSource?: string;
  /** The Worker's SANDBOX_API_KEY; a Worker without that secret accepts any request. */
  apiKey?: string;
  stateDir: string;
}

/** The environment beats config.toml ([providers.cloudflare] url / api_key). */
export function cloudflareSettings(ctx: ProviderContext): CloudflareSettings {
  const url = credential(ctx, ["CLOUDFLARE_SANDBOX_URL"], "url");
  return {
    url: url?.value.replace(/\/+$/, ""),
    urlSource: url?.source,
    apiKey: setting(ctx, ["CLOUDFLARE_SANDBOX_API_KEY", "SANDBOX_API_KEY"], "api_key"),
    stateDir: ctx.stateDir,
  };
}

export const NOT_CONFIGURED = "set CLOUDFLARE_SANDBOX_URL to your sandbox Worker's URL (or url under [providers.cloudflare] in config.toml)";

export const cloudflareDescriptor = defineProvider({
  name: "cloudflare",
  description: "Cloudflare Sandbox through your own Worker serving the @cloudflare/sandbox bridge API",
  capabilities: CLOUDFLARE_CAPABILITIES,
  settings: cloudflareSettings,
  describe: (s) => (s.urlSource ? { source: s.urlSource, details: details(`worker ${s.url}`, !s.apiKey && "no API key set") } : { missing: NOT_CONFIGURED }),
  load: async (settings) => new (await import("./provider")).CloudflareProvider(settings),
});
