import { capabilities, defineProvider } from "../define";
import { credential, missing, text } from "../shared/settings";
import type { ProviderContext } from "../types";

// network.allowOut takes CIDRs, IPs and (*.)domains; no ports. No --cpus/--memory: the template decides.
export const E2B_CAPABILITIES = capabilities("streaming", "files", "pty", "resize", "labels", "stdin", "networkIsolation", "networkAllowHosts", "networkAllowCidrs", "ttl");

export const MISSING_API_KEY = missing("e2b", "E2B_API_KEY", "api_key");

/** Where the API key comes from: the environment beats config.toml. */
export const e2bApiKey = (ctx: ProviderContext) => credential(ctx, ["E2B_API_KEY"], "api_key");

export const e2bDescriptor = defineProvider({
  name: "e2b",
  description: "E2B cloud sandboxes (Firecracker microVMs) through the official e2b SDK",
  capabilities: E2B_CAPABILITIES,
  settings: (ctx) => ({ key: e2bApiKey(ctx), template: text(ctx.config.template) ?? "base" }),
  describe: ({ key, template }) => (key ? { source: key.source, details: `default template: ${template}` } : { missing: MISSING_API_KEY }),
  load: async (_settings, ctx) => new (await import("./provider")).E2BProvider(ctx),
});
