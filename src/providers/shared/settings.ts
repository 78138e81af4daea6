import { SandboxesError } from "../../base/errors";
import type { ProviderContext } from "../types";

/** A non-empty string, trimmed; anything else (a number, blanks) is absent. */
export function text(value: unknown): string | undefined {
  return typeof value === "string" && value.trim() ? value.trim() : undefined;
}

/** A positive number, from TOML or from a string; anything else is absent. */
export function seconds(value: unknown): number | undefined {
  const number = typeof value === "string" ? Number(value) : value;
  return typeof number === "number" && Number.isFinite(number) && number > 0 ? number : undefined;
}

export interface Credential {
  value: string;
  /** Where it came from, for `providers`: the variable's name or "config.toml". */
  source: string;
}

/**
 * The one credential reader: the first of `variables` that is set beats `key` in the provider's
 * table of config.toml (environment credentials beat stored ones).
 */
export function credential(ctx: ProviderContext, variables: string[], key: string): Credential | undefined {
  for (const variable of variables) {
    const value = text(ctx.env[variable]);
    if (value) return { value, source: variable };
  }
  const stored = text(ctx.config[key]);
  return stored ? { value: stored, source: "config.toml" } : undefined;
}

/** A setting that is not secret: the first of `variables`, else `key` in config.toml, else `fallback`. */
export function setting(ctx: ProviderContext, variables: string[], key: string, fallback: string): string;
export function setting(ctx: ProviderContext, variables: string[], key: string): string | undefined;
export function setting(ctx: ProviderContext, variables: string[], key: string, fallback?: string): string | undefined {
  return credential(ctx, variables, key)?.value ?? fallback;
}

/** A service's base URL as `setting` finds it, without a trailing slash. */
export function baseUrl(ctx: ProviderContext, variables: string[], key: string, fallback: string): string {
  return setting(ctx, variables, key, fallback).replace(/\/+$/, "");
}

/** The line `providers` shows for a missing credential. */
export function missing(provider: string, variable: string, key: string): string {
  return `set ${variable} (or ${key} under [providers.${provider}] in config.toml)`;
}

/** The error for using a provider whose credentials are missing; `missing` says what to set. */
export function notConfigured(provider: string, missing: string): SandboxesError {
  return new SandboxesError("not_configured", `provider ${provider} is not configured: ${missing}`, "user");
}
