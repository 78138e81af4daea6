import type { Capabilities, ProviderContext, ProviderDescriptor } from "../types";

export const VERCEL_CAPABILITIES: Capabilities = {
  // The command's output arrives as an NDJSON stream of log lines while it runs.
  streaming: true,
  files: true,
  // The API has an interactive (PTY) endpoint, but its WebSocket protocol is not in @vercel/sandbox
  // (only the `sandbox` CLI speaks it), so our client cannot be proven against the SDK: not mapped.
  pty: false,
  resize: false,
  // Labels are Vercel tags (at most 5): list() filters by one tag on the server, the rest here.
  labels: true,
  // No stdin endpoint in the API the SDK speaks: stdin is uploaded whole as a file first.
  stdin: true,
  // --network none becomes the network policy { mode: "deny-all" }.
  networkIsolation: true,
  // networkPolicy { allow: domains, subnets.allow: CIDRs }; no ports.
  networkAllowHosts: true,
  networkAllowCidrs: true,
  // --ttl is the sandbox timeout: Vercel stops the session by itself after that long.
  ttl: true,
  // --cpus is `resources.vcpus`; memory is fixed by Vercel at 2048 MB per vCPU.
  resources: true,
  mounts: false,
  oneShot: false,
};

export const DEFAULT_VERCEL_URL = "https://vercel.com/api";

export interface VercelCredentials {
  token: string;
  teamId: string;
  projectId: string;
  source: string;
}

const text = (value: unknown) => (typeof value === "string" && value.trim() ? value.trim() : undefined);

/** Token, team and project: each from the environment first, then [providers.vercel] in config.toml. */
export function vercelCredentials(ctx: ProviderContext): VercelCredentials | { missing: string[] } {
  const token = text(ctx.env.VERCEL_TOKEN) ?? text(ctx.config.token);
  const teamId = text(ctx.env.VERCEL_TEAM_ID) ?? text(ctx.config.team_id);
  const projectId = text(ctx.env.VERCEL_PROJECT_ID) ?? text(ctx.config.project_id);
  const missing = [token ? "" : "VERCEL_TOKEN", teamId ? "" : "VERCEL_TEAM_ID", projectId ? "" : "VERCEL_PROJECT_ID"].filter(Boolean);
  if (!token || !teamId || !projectId) return { missing };
  return { token, teamId, projectId, source: text(ctx.env.VERCEL_TOKEN) ? "VERCEL_TOKEN" : "config.toml" };
}

export function missingVercelCredentials(missing: string[]): string {
  return `set ${missing.join(", ")} (or token, team_id, project_id under [providers.vercel] in config.toml)`;
}

/** VERCEL_API_URL beats api_url in config.toml; both exist so tests can point at a fake. */
export function vercelUrl(ctx: ProviderContext): string {
  return (text(ctx.env.VERCEL_API_URL) ?? text(ctx.config.api_url) ?? DEFAULT_VERCEL_URL).replace(/\/+$/, "");
}

export const vercelDescriptor: ProviderDescriptor = {
  name: "vercel",
  description: "Vercel Sandbox (Firecracker microVMs) through its REST API",
  capabilities: VERCEL_CAPABILITIES,
  async detect(ctx) {
    const credentials = vercelCredentials(ctx);
    if ("missing" in credentials) return { configured: false, missing: missingVercelCredentials(credentials.missing) };
    const url = vercelUrl(ctx);
    return { configured: true, source: credentials.source, details: `project ${credentials.projectId}${url !== DEFAULT_VERCEL_URL ? `, API ${url}` : ""}` };
  },
  async load(ctx) {
    const { VercelProvider } = await import("./provider");
    return new VercelProvider(ctx);
  },
};
