import type { Capabilities, ProviderContext, ProviderDescriptor } from "../types";

export const SPRITES_CAPABILITIES: Capabilities = {
  streaming: true,
  files: true,
  pty: true,
  resize: true,
  // Sprites keeps labels as a string array; we store "key=value" and filter list() on our side.
  labels: true,
  stdin: true,
  // Sprites' network policy filters DNS answers, which a program bypasses by connecting to an
  // address: too weak for --network none or --allow-net, so both are refused.
  networkIsolation: false,
  // A sprite is a persistent VM that sleeps when idle: it has no lifetime to set.
  ttl: false,
  // --cpus and --memory become the sprite's config (cpus, ram_mb).
  resources: true,
  mounts: false,
  oneShot: false,
};

export const DEFAULT_SPRITES_URL = "https://api.sprites.dev";

/** Where the token comes from: the environment beats config.toml. */
export function spritesToken(ctx: ProviderContext): { token: string; source: string } | undefined {
  const fromEnv = ctx.env.SPRITES_TOKEN?.trim();
  if (fromEnv) return { token: fromEnv, source: "SPRITES_TOKEN" };
  const fromConfig = ctx.config.token;
  if (typeof fromConfig === "string" && fromConfig.trim()) return { token: fromConfig.trim(), source: "config.toml" };
  return undefined;
}

/** SPRITES_API_URL beats api_url in config.toml; both exist so tests can point at a fake. */
export function spritesUrl(ctx: ProviderContext): string {
  const fromConfig = typeof ctx.config.api_url === "string" ? ctx.config.api_url.trim() : "";
  return (ctx.env.SPRITES_API_URL?.trim() || fromConfig || DEFAULT_SPRITES_URL).replace(/\/+$/, "");
}

export const spritesDescriptor: ProviderDescriptor = {
  name: "sprites",
  description: "Sprites by Fly.io (persistent Firecracker VMs) through its REST and WebSocket API",
  capabilities: SPRITES_CAPABILITIES,
  async detect(ctx) {
    const credential = spritesToken(ctx);
    if (!credential) return { configured: false, missing: "set SPRITES_TOKEN (or token under [providers.sprites] in config.toml)" };
    const url = spritesUrl(ctx);
    return { configured: true, source: credential.source, ...(url !== DEFAULT_SPRITES_URL ? { details: `API ${url}` } : {}) };
  },
  async load(ctx) {
    const { SpritesProvider } = await import("./provider");
    return new SpritesProvider(ctx);
  },
};
