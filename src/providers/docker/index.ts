import { capabilities, defineProvider } from "../define";
import { hostPlatform } from "../platform";
import { describeEndpoint, describeEngine, probeEndpoint } from "./endpoint";

// --network host is the engine's NetworkMode host; allow lists have no Docker equivalent.
export const DOCKER_CAPABILITIES = capabilities("streaming", "files", "pty", "resize", "labels", "stdin", "networkIsolation", "networkHost", "ttl", "resources", "pids", "mounts", "oneShot");

/** Used when neither --image nor `image` in [providers.docker] names one: Python 3 and Node on Debian slim. */
export const DEFAULT_IMAGE = "nikolaik/python-nodejs:python3.12-nodejs22-slim";

export const dockerDescriptor = defineProvider({
  name: "docker",
  description: "Containers on a Docker Engine (or Podman's Docker-compatible socket) through its HTTP API",
  capabilities: DOCKER_CAPABILITIES,
  settings: (ctx) => probeEndpoint(ctx.env, ctx.config),
  // Off Linux the engine was pinged, and the details say which one answered: the default provider's reason.
  describe: (endpoint, ctx) =>
    "missing" in endpoint ? endpoint : { source: endpoint.source, details: hostPlatform(ctx.env) === "linux" ? `engine at ${describeEndpoint(endpoint)}` : describeEngine(endpoint, ctx.env) },
  // The engine detect() found (off Linux: the one that answered), not merely the first socket file.
  load: async (endpoint, ctx) => new (await import("./provider")).DockerProvider(ctx, "missing" in endpoint ? undefined : endpoint),
});
