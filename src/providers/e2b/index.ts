import type { Capabilities, ProviderContext, ProviderDescriptor } from "../types";

export const E2B_CAPABILITIES: Capabilities = {
  streaming: true,
  files: true,
  pty: true,
  resize: true,
  labels: true,
  stdin: true,
  networkIsolation: true,
  // network.allowOut takes CIDRs, IPs and (*.)domains; no ports.
  networkAllowHosts: true,
  networkAllowCidrs: true,
  ttl: true,
  resources: false,
  mounts: false,
  oneShot: false,
};

/** Where the API key comes from: the environment beats config.toml. */
export function e2bApiKey(ctx: ProviderContext): { key: string; source: string } | undefined {
  const fromEnv = ctx.env.E2B_API_KEY?.trim();
  if (fromEnv) return { key: fromEnv, source: "E2B_API_KEY" };
  const fromConfig = ctx.config.api_key;
  if (typeof fromConfig === "string" && fromConfig.trim()) return { key: fromConfig.trim(), source: "config.toml" };
  return undefined;
}

export const e2bDescriptor: ProviderDescriptor = {
  name: "e2b",
  description: "E2B cloud sandboxes (Firecracker microVMs) through the official e2b SDK",
  capabilities: E2B_CAPABILITIES,
  async detect(ctx) {
    const credential = e2bApiKey(ctx);
    if (!credential) return { configured: false, missing: "set E2B_API_KEY (or api_key under [providers.e2b] in config.toml)" };
    const template = typeof ctx.config.template === "string" ? ctx.config.template : "base";
    return { configured: true, source: credential.source, details: `default template: ${template}` };
  },
  async load(ctx) {
    const { E2BProvider } = await import("./provider");
    return new E2BProvider(ctx);
  },
};
