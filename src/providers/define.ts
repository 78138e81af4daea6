/**
 * What every provider's index.ts has in common, written once: its capabilities as one list, its
 * settings read once for `detect` and `load`, and the lazy import of its implementation. A
 * provider's index.ts is then its name, its settings and one line that says what it can do.
 */
import type { Capabilities, Detection, Provider, ProviderContext, ProviderDescriptor } from "./types";

export type Capability = keyof Capabilities;

/** Every capability in the order `providers` shows them (the order of the Capabilities interface). */
const ORDER: readonly Capability[] = [
  "streaming",
  "files",
  "pty",
  "resize",
  "labels",
  "stdin",
  "networkIsolation",
  "networkHost",
  "networkAllowHosts",
  "networkAllowCidrs",
  "networkAllowPorts",
  "ttl",
  "resources",
  "pids",
  "mounts",
  "oneShot",
  "oneShotFiles",
  "startsStopped",
];

/** The required capabilities; the optional ones are left out unless a provider has them. */
const REQUIRED = new Set<Capability>(["streaming", "files", "pty", "resize", "labels", "stdin", "networkIsolation", "ttl", "resources", "mounts", "oneShot"]);

/** The capabilities of a provider that has exactly `abilities`: each one true, every other false. */
export function capabilities(...abilities: Capability[]): Capabilities {
  const has = new Set(abilities);
  return Object.fromEntries(ORDER.filter((name) => has.has(name) || REQUIRED.has(name)).map((name) => [name, has.has(name)])) as unknown as Capabilities;
}

/** What `providers` says about a provider's settings: what is missing, or where they came from. */
export type Described = { missing: string } | { source: string; details?: string };

export interface ProviderDefinition<S> {
  name: string;
  description: string;
  capabilities: Capabilities;
  /** Its settings from the environment and config.toml: local files at most, no network, no SDK. */
  settings(ctx: ProviderContext): S | Promise<S>;
  describe(settings: S, ctx: ProviderContext): Described | Promise<Described>;
  /**
   * What keeps the provider from being used, or undefined: for a provider whose describe() costs
   * more than that answer (local probes the host's cgroups for its details). Loading the
   * provider asks only this; without it, describe() answers.
   */
  missing?(settings: S, ctx: ProviderContext): string | undefined;
  /** Imports the implementation (and through it the SDK) and makes the provider. */
  load(settings: S, ctx: ProviderContext): Promise<Provider>;
}

export interface DefinedProvider<S> extends ProviderDescriptor {
  settings(ctx: ProviderContext): S | Promise<S>;
}

export function defineProvider<S>(definition: ProviderDefinition<S>): DefinedProvider<S> {
  return {
    name: definition.name,
    description: definition.description,
    capabilities: definition.capabilities,
    settings: definition.settings,
    async detect(ctx, scope = "full"): Promise<Detection> {
      const settings = await definition.settings(ctx);
      if (scope === "configured" && definition.missing) {
        const missing = definition.missing(settings, ctx);
        return missing ? { configured: false, missing } : { configured: true };
      }
      const described = await definition.describe(settings, ctx);
      if ("missing" in described) return { configured: false, missing: described.missing };
      return { configured: true, source: described.source, ...(described.details ? { details: described.details } : {}) };
    },
    async load(ctx) {
      return definition.load(await definition.settings(ctx), ctx);
    },
  };
}

/** The facts `providers` shows after the source: those that apply, joined. */
export function details(...facts: Array<string | false | undefined>): string {
  return facts.filter(Boolean).join(", ");
}
