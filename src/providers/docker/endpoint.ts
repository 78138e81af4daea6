/** Where the Docker Engine API answers; resolved without any I/O beyond checking socket paths. */
export type Endpoint =
  | { kind: "unix"; socketPath: string; source: string }
  | { kind: "tcp"; host: string; port: number; tls: TlsFiles | undefined; source: string };

export interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
}

export const DEFAULT_SOCKET = "/var/run/docker.sock";

/**
 * DOCKER_HOST > `host` in [providers.docker] > the system socket > the rootless Docker socket >
 * Podman's Docker-compatible socket. Returns the reason none was found instead of throwing.
 */
export function resolveEndpoint(
  env: Record<string, string | undefined>,
  config: Record<string, unknown>,
  exists: (path: string) => boolean = (path) => (require("node:fs") as typeof import("node:fs")).existsSync(path),
): Endpoint | { missing: string } {
  const configured = configuredHost(env, config);
  if (configured) return parseHost(configured.value, configured.source, env, exists);
  const candidates = socketCandidates(env);
  const found = candidates.find((path) => exists(path));
  if (found) return { kind: "unix", socketPath: found, source: found === DEFAULT_SOCKET ? "default socket" : "user socket" };
  return { missing: `no Docker Engine socket at ${candidates.join(" or ")}: start dockerd (or Podman's socket) or set DOCKER_HOST` };
}

/**
 * resolveEndpoint with the socket paths checked through Bun's file API, all at once: for
 * `providers`, which must not pay ~1 ms for loading node:fs (bench/startup.ts).
 */
export async function probeEndpoint(env: Record<string, string | undefined>, config: Record<string, unknown>): Promise<Endpoint | { missing: string }> {
  const configured = configuredHost(env, config);
  const paths = configured ? (configured.value.startsWith("unix://") ? [configured.value.slice("unix://".length)] : []) : socketCandidates(env);
  const present = await Promise.all(paths.map((path) => Bun.file(path).stat().then(() => true, () => false)));
  return resolveEndpoint(env, config, (path) => present[paths.indexOf(path)] === true);
}

function configuredHost(env: Record<string, string | undefined>, config: Record<string, unknown>): { value: string; source: string } | undefined {
  if (env.DOCKER_HOST) return { value: env.DOCKER_HOST, source: "DOCKER_HOST" };
  return typeof config.host === "string" && config.host ? { value: config.host, source: "config.toml host" } : undefined;
}

function socketCandidates(env: Record<string, string | undefined>): string[] {
  const candidates = [DEFAULT_SOCKET];
  if (env.XDG_RUNTIME_DIR) candidates.push(`${env.XDG_RUNTIME_DIR}/docker.sock`, `${env.XDG_RUNTIME_DIR}/podman/podman.sock`);
  return candidates;
}

function parseHost(value: string, source: string, env: Record<string, string | undefined>, exists: (path: string) => boolean): Endpoint | { missing: string } {
  if (value.startsWith("unix://")) {
    const socketPath = value.slice("unix://".length);
    if (!exists(socketPath)) return { missing: `${source}=${value}, but ${socketPath} does not exist: start the engine or fix ${source}` };
    return { kind: "unix", socketPath, source };
  }
  const match = /^(?:tcp|http|https):\/\/\[?([^\]/]+?)\]?(?::(\d+))?\/?$/.exec(value);
  if (!match) return { missing: `${source}=${value} is not unix:///path or tcp://host:port` };
  const verify = env.DOCKER_TLS_VERIFY !== undefined && env.DOCKER_TLS_VERIFY !== "" && env.DOCKER_TLS_VERIFY !== "0";
  const tls = verify || value.startsWith("https://") ? tlsFiles(env) : undefined;
  const port = match[2] ? Number(match[2]) : tls ? 2376 : 2375;
  return { kind: "tcp", host: match[1]!, port, tls, source };
}

function tlsFiles(env: Record<string, string | undefined>): TlsFiles {
  const dir = (env.DOCKER_CERT_PATH || `${env.HOME ?? ""}/.docker`).replace(/\/+$/, "");
  return { ca: `${dir}/ca.pem`, cert: `${dir}/cert.pem`, key: `${dir}/key.pem` };
}

export function describeEndpoint(endpoint: Endpoint): string {
  return endpoint.kind === "unix" ? `unix://${endpoint.socketPath}` : `${endpoint.tls ? "https" : "tcp"}://${endpoint.host}:${endpoint.port}`;
}
