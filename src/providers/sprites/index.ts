import { capabilities, defineProvider, details } from "../define";
import { baseUrl, credential, missing } from "../shared/settings";
import type { ProviderContext } from "../types";

// Labels: Sprites keeps a string array; we store "key=value" and filter list() on our side.
// Not networkIsolation: Sprites' network policy filters DNS answers, which a program bypasses by
// connecting to an address: too weak for --network none or --allow-net, so both are refused.
// Not ttl: a sprite is a persistent VM that sleeps when idle, with no lifetime to set.
// Resources: --cpus and --memory become the sprite's config (cpus, ram_mb).
export const SPRITES_CAPABILITIES = capabilities("streaming", "files", "pty", "resize", "labels", "stdin", "resources");

export const DEFAULT_SPRITES_URL = "https://api.sprites.dev";

/** Where the token comes from: the environment beats config.toml. */
export const spritesToken = (ctx: ProviderContext) => credential(ctx, ["SPRITES_TOKEN"], "token");

/** SPRITES_API_URL beats api_url in config.toml; both exist so tests can point at a fake. */
export const spritesUrl = (ctx: ProviderContext) => baseUrl(ctx, ["SPRITES_API_URL"], "api_url", DEFAULT_SPRITES_URL);

export const MISSING_TOKEN = missing("sprites", "SPRITES_TOKEN", "token");

export const spritesDescriptor = defineProvider({
  name: "sprites",
  description: "Sprites by Fly.io (persistent Firecracker VMs) through its REST and WebSocket API",
  capabilities: SPRITES_CAPABILITIES,
  settings: (ctx) => ({ token: spritesToken(ctx), url: spritesUrl(ctx) }),
  describe: ({ token, url }) => (token ? { source: token.source, details: details(url !== DEFAULT_SPRITES_URL && `API ${url}`) } : { missing: MISSING_TOKEN }),
  load: async (_settings, ctx) => new (await import("./provider")).SpritesProvider(ctx),
});
