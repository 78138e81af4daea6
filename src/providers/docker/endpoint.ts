import { xdgBaseDir } from "../../base/home";
import { hostPlatform } from "../platform";

/** Where the Docker Engine API answers; resolved without any I/O beyond checking socket paths. */
export type Endpoint =
  | { kind: "unix"; socketPath: string; source: string; engine?: string }
  | { kind: "tcp"; host: string; port: number; tls: TlsFiles | undefined; source: string };

export interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
}

export const DEFAULT_SOCKET = "/var/run/docker.sock";

/** A place where an engine usually listens, and whose engine that is ("OrbStack"), when the path says. */
interface Candidate {
  path: string;
  source: string;
  engine?: string;
}

type Lookup = (path: string) => boolean;
type Reader = (path: string) => string | undefined;

/** How long an engine may take to answer /_ping before we count it as not running. */
const PING_TIMEOUT_MS = 1000;

/**
 * DOCKER_HOST > `host` in [providers.docker] > the current docker context (DOCKER_CONTEXT or
 * `currentContext` in ~/.docker/config.json) > the usual sockets of each engine (see
 * socketCandidates). Returns the reason none was found instead of throwing. `answers` checks a
 * discovered socket (off Linux: does an engine answer there), `exists` a configured path.
 */
export function resolveEndpoint(
  env: Record<string, string | undefined>,
  config: Record<string, unknown>,
  exists: Lookup = (path) => (require("node:fs") as typeof import("node:fs")).existsSync(path),
  read: Reader = readSync,
  answers: Lookup = exists,
): Endpoint | { missing: string } {
  const configured = configuredHost(env, config);
  if (configured) return parseHost(configured.value, configured.source, env, exists);
  const context = contextHost(env, read);
  const candidates = socketCandidates(env);
  if (context) {
    const endpoint = parseHost(context.host, `docker context ${context.name}`, env, () => true);
    // A context on a socket is one more place to look (first); one on tcp is used as it is; one
    // we cannot reach (ssh://) leaves the usual places.
    if (!("missing" in endpoint)) {
      if (endpoint.kind === "tcp") return endpoint;
      const engine = candidates.find((candidate) => candidate.path === endpoint.socketPath)?.engine;
      candidates.unshift({ path: endpoint.socketPath, source: endpoint.source, ...(engine ? { engine } : {}) });
    }
  }
  // Every candidate is checked (not just up to the first hit) so probeEndpoint can check them all at once.
  const found = candidates.filter((candidate) => answers(candidate.path))[0];
  if (found) return { kind: "unix", socketPath: found.path, source: found.source, ...(found.engine ? { engine: found.engine } : {}) };
  return { missing: noEngine(env) };
}

/**
 * resolveEndpoint with files read and socket paths checked through Bun's file API, all at once:
 * for `providers`, which must not pay ~1 ms for loading node:fs (bench/startup.ts). Off Linux a
 * socket counts only if an engine answers /_ping on it (Docker Desktop and Colima can leave a
 * socket behind when they stop); on Linux its presence is enough, as for the docker CLI.
 */
export async function probeEndpoint(env: Record<string, string | undefined>, config: Record<string, unknown>): Promise<Endpoint | { missing: string }> {
  const files = new Map<string, string | undefined>();
  const present = new Map<string, boolean>();
  const answering = new Map<string, boolean>();
  const ping = hostPlatform(env) !== "linux";
  // resolveEndpoint is synchronous: run it, fetch what it asked for and did not have, run it again.
  // Each round learns one layer (config.json, then the context's meta.json, then the sockets): at most three.
  for (;;) {
    const wanted = { files: new Set<string>(), present: new Set<string>(), answering: new Set<string>() };
    const ask = (known: Map<string, boolean>, want: Set<string>) => (path: string) => known.get(path) ?? (want.add(path), false);
    const answers = ping ? ask(answering, wanted.answering) : ask(present, wanted.present);
    const read = (path: string) => (files.has(path) ? files.get(path) : (wanted.files.add(path), undefined));
    const result = resolveEndpoint(env, config, ask(present, wanted.present), read, answers);
    if (wanted.files.size + wanted.present.size + wanted.answering.size === 0) return result;
    await Promise.all([
      ...[...wanted.files].map(async (path) => files.set(path, await Bun.file(path).text().catch(() => undefined))),
      ...[...wanted.present].map(async (path) => present.set(path, await Bun.file(path).stat().then(() => true, () => false))),
      ...[...wanted.answering].map(async (path) => answering.set(path, await pingSocket(path))),
    ]);
  }
}

/** Whether a Docker-compatible engine answers GET /_ping on this socket (or Windows named pipe). */
async function pingSocket(path: string): Promise<boolean> {
  try {
    const response = await fetch("http://docker/_ping", { unix: path, signal: AbortSignal.timeout(PING_TIMEOUT_MS) });
    await response.arrayBuffer();
    return response.ok;
  } catch {
    return false;
  }
}

function configuredHost(env: Record<string, string | undefined>, config: Record<string, unknown>): { value: string; source: string } | undefined {
  if (env.DOCKER_HOST) return { value: env.DOCKER_HOST, source: "DOCKER_HOST" };
  return typeof config.host === "string" && config.host ? { value: config.host, source: "config.toml host" } : undefined;
}

/** The docker CLI's current context, if it is not "default": DOCKER_CONTEXT, else currentContext in config.json. */
function contextHost(env: Record<string, string | undefined>, read: Reader): { name: string; host: string } | undefined {
  const dir = (env.DOCKER_CONFIG || `${home(env)}/.docker`).replace(/\/+$/, "");
  const name = env.DOCKER_CONTEXT || stringAt(parseJson(read(`${dir}/config.json`)), "currentContext");
  if (!name || name === "default") return undefined;
  // The docker CLI stores each context under the SHA-256 of its name.
  const digest = new Bun.CryptoHasher("sha256").update(name).digest("hex");
  const meta = parseJson(read(`${dir}/contexts/meta/${digest}/meta.json`)) as { Endpoints?: { docker?: unknown } } | undefined;
  const host = stringAt(meta?.Endpoints?.docker, "Host");
  return host ? { name, host } : undefined;
}

/**
 * Where engines listen when nothing says otherwise. On Linux the system socket comes first, as
 * before; elsewhere each engine's own socket comes first, so the reason can name the engine
 * (/var/run/docker.sock there is a link that Docker Desktop, OrbStack or Rancher Desktop may own).
 */
function socketCandidates(env: Record<string, string | undefined>): Candidate[] {
  const platform = hostPlatform(env);
  if (platform === "win32") {
    return [
      { path: "\\\\.\\pipe\\docker_engine", source: "Docker Desktop pipe", engine: "Docker Desktop" },
      { path: "\\\\.\\pipe\\podman-machine-default", source: "Podman machine pipe", engine: "Podman machine" },
    ];
  }
  const system: Candidate[] = [{ path: DEFAULT_SOCKET, source: "default socket" }];
  const runtimeDir = xdgBaseDir(env.XDG_RUNTIME_DIR);
  if (runtimeDir) {
    system.push(
      { path: `${runtimeDir}/docker.sock`, source: "user socket" },
      { path: `${runtimeDir}/podman/podman.sock`, source: "user socket", engine: "Podman" },
    );
  }
  const h = home(env);
  const podmanMachine = (path: string): Candidate => ({ path, source: "Podman machine socket", engine: "Podman machine" });
  const engines: Candidate[] = [
    { path: `${h}/.docker/run/docker.sock`, source: "Docker Desktop socket", engine: "Docker Desktop" },
    { path: `${h}/.docker/desktop/docker.sock`, source: "Docker Desktop socket", engine: "Docker Desktop" },
    { path: `${h}/.orbstack/run/docker.sock`, source: "OrbStack socket", engine: "OrbStack" },
    { path: `${h}/.colima/default/docker.sock`, source: "Colima socket", engine: "Colima" },
    { path: `${h}/.colima/docker.sock`, source: "Colima socket", engine: "Colima" },
    { path: `${h}/.rd/docker.sock`, source: "Rancher Desktop socket", engine: "Rancher Desktop" },
    ...["", "qemu/", "applehv/", "libkrun/"].map((dir) => podmanMachine(`${h}/.local/share/containers/podman/machine/${dir}podman.sock`)),
    ...(env.TMPDIR ? [podmanMachine(`${env.TMPDIR.replace(/\/+$/, "")}/podman/podman-machine-default-api.sock`)] : []),
  ];
  return platform === "linux" ? [...system, ...engines] : [...engines, ...system];
}

function noEngine(env: Record<string, string | undefined>): string {
  const engines = "Docker Desktop, OrbStack, Colima, Podman or Rancher Desktop";
  if (hostPlatform(env) !== "linux") return `no Docker engine answers (looked for ${engines} and at the docker context): start one of them or set DOCKER_HOST`;
  const system = socketCandidates(env).filter((c) => c.source === "default socket" || c.source === "user socket");
  return `no Docker Engine socket at ${system.map((c) => c.path).join(" or ")} (nor ${engines}'s): start dockerd (or Podman's socket) or set DOCKER_HOST`;
}

function home(env: Record<string, string | undefined>): string {
  return (env.HOME || env.USERPROFILE || "").replace(/\/+$/, "");
}

function readSync(path: string): string | undefined {
  try {
    return (require("node:fs") as typeof import("node:fs")).readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

function parseJson(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function stringAt(value: unknown, key: string): string | undefined {
  const field = value && typeof value === "object" ? (value as Record<string, unknown>)[key] : undefined;
  return typeof field === "string" && field ? field : undefined;
}

function parseHost(value: string, source: string, env: Record<string, string | undefined>, exists: (path: string) => boolean): Endpoint | { missing: string } {
  if (value.startsWith("unix://")) {
    const socketPath = value.slice("unix://".length);
    if (!exists(socketPath)) return { missing: `${source}=${value}, but ${socketPath} does not exist: start the engine or fix ${source}` };
    return { kind: "unix", socketPath, source };
  }
  // Windows named pipes, written as the docker CLI writes them: npipe:////./pipe/docker_engine.
  if (value.startsWith("npipe://")) return { kind: "unix", socketPath: value.slice("npipe://".length).replaceAll("/", "\\"), source };
  const match = /^(?:tcp|http|https):\/\/\[?([^\]/]+?)\]?(?::(\d+))?\/?$/.exec(value);
  if (!match) return { missing: `${source}=${value} is not unix:///path, npipe:////./pipe/NAME or tcp://host:port` };
  const verify = env.DOCKER_TLS_VERIFY !== undefined && env.DOCKER_TLS_VERIFY !== "" && env.DOCKER_TLS_VERIFY !== "0";
  const tls = verify || value.startsWith("https://") ? tlsFiles(env) : undefined;
  const port = match[2] ? Number(match[2]) : tls ? 2376 : 2375;
  return { kind: "tcp", host: match[1]!, port, tls, source };
}

function tlsFiles(env: Record<string, string | undefined>): TlsFiles {
  const dir = (env.DOCKER_CERT_PATH || `${env.HOME ?? ""}/.docker`).replace(/\/+$/, "");
  return { ca: `${dir}/ca.pem`, cert: `${dir}/cert.pem`, key: `${dir}/key.pem` };
}

/**
 * The engine for people, for `providers`: which one, where, and how it was found, e.g.
 * "OrbStack's engine answers at ~/.orbstack/run/docker.sock" (off Linux, where it was pinged).
 */
export function describeEngine(endpoint: Endpoint, env: Record<string, string | undefined>): string {
  if (endpoint.kind === "tcp" || endpoint.source === "DOCKER_HOST" || endpoint.source === "config.toml host") return `${endpoint.source} is ${describeEndpoint(endpoint)}`;
  const h = home(env);
  const where = h && endpoint.socketPath.startsWith(`${h}/`) ? `~${endpoint.socketPath.slice(h.length)}` : describeEndpoint(endpoint);
  return `${endpoint.engine ? `${endpoint.engine}'s engine` : "a Docker engine"} answers at ${where}${endpoint.source.startsWith("docker context") ? ` (${endpoint.source})` : ""}`;
}

export function describeEndpoint(endpoint: Endpoint): string {
  if (endpoint.kind === "unix" && endpoint.socketPath.startsWith("\\\\")) return `npipe://${endpoint.socketPath.replaceAll("\\", "/")}`;
  return endpoint.kind === "unix" ? `unix://${endpoint.socketPath}` : `${endpoint.tls ? "https" : "tcp"}://${endpoint.host}:${endpoint.port}`;
}
