import { capabilities, defineProvider } from "../define";
import { baseUrl, credential, setting } from "../shared/settings";
import type { ProviderContext } from "../types";

// Streaming: the command's output arrives as an NDJSON stream of log lines while it runs.
// Not pty: the API has an interactive endpoint, but its WebSocket protocol is not in
// @vercel/sandbox (only the `sandbox` CLI speaks it), so our client cannot be proven against the SDK.
// Labels are Vercel tags (at most 5): list() filters by one tag on the server, the rest here.
// Stdin: the API has no stdin endpoint, so stdin is uploaded whole as a file first.
// --network none becomes the network policy { mode: "deny-all" }; allow lists become
// { allow: domains, subnets.allow: CIDRs }, without ports.
// --ttl is the sandbox timeout; --cpus is `resources.vcpus` (memory is 2048 MB per vCPU).
export const VERCEL_CAPABILITIES = capabilities("streaming", "files", "labels", "stdin", "networkIsolation", "networkAllowHosts", "networkAllowCidrs", "ttl", "resources");

export const DEFAULT_VERCEL_URL = "https://vercel.com/api";

export interface VercelCredentials {
  token: string;
  teamId: string;
  projectId: string;
  source: string;
}

/** Token, team and project: each from the environment first, then [providers.vercel] in config.toml. */
export function vercelCredentials(ctx: ProviderContext): VercelCredentials | { missing: string[] } {
  const token = credential(ctx, ["VERCEL_TOKEN"], "token");
  const teamId = setting(ctx, ["VERCEL_TEAM_ID"], "team_id");
  const projectId = setting(ctx, ["VERCEL_PROJECT_ID"], "project_id");
  const missing = [token ? "" : "VERCEL_TOKEN", teamId ? "" : "VERCEL_TEAM_ID", projectId ? "" : "VERCEL_PROJECT_ID"].filter(Boolean);
  if (!token || !teamId || !projectId) return { missing };
  return { token: token.value, teamId, projectId, source: token.source };
}

export function missingVercelCredentials(missing: string[]): string {
  return `set ${missing.join(", ")} (or token, team_id, project_id under [providers.vercel] in config.toml)`;
}

/** VERCEL_API_URL beats api_url in config.toml; both exist so tests can point at a fake. */
export const vercelUrl = (ctx: ProviderContext) => baseUrl(ctx, ["VERCEL_API_URL"], "api_url", DEFAULT_VERCEL_URL);

export const vercelDescriptor = defineProvider({
  name: "vercel",
  description: "Vercel Sandbox (Firecracker microVMs) through its REST API",
  capabilities: VERCEL_CAPABILITIES,
  settings: vercelCredentials,
  describe: (credentials, ctx) => {
    if ("missing" in credentials) return { missing: missingVercelCredentials(credentials.missing) };
    const url = vercelUrl(ctx);
    return { source: credentials.source, details: `project ${credentials.projectId}${url !== DEFAULT_VERCEL_URL ? `, API ${url}` : ""}` };
  },
  load: async (_credentials, ctx) => new (await import("./provider")).VercelProvider(ctx),
});
