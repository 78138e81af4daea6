import type { Capabilities, ProviderDescriptor } from "../types";
import { hostPlatform } from "../platform";
import { describeEndpoint, describeEngine, probeEndpoint } from "./endpoint";

export const DOCKER_CAPABILITIES: Capabilities = {
  streaming: true,
  files: true,
  pty: true,
  resize: true,
  labels: true,
  stdin: true,
  networkIsolation: true,
  // --network host is the engine's NetworkMode host; allow lists have no Docker equivalent.
  networkHost: true,
  ttl: true,
  resources: true,
  pids: true,
  mounts: true,
  oneShot: true,
};

/** Used when neither --image nor `image` in [providers.docker] names one: Python 3 and Node on Debian slim. */
export const DEFAULT_IMAGE = "nikolaik/python-nodejs:python3.12-nodejs22-slim";

export const dockerDescriptor: ProviderDescriptor = {
  name: "docker",
  description: "Containers on a Docker Engine (or Podman's Docker-compatible socket) through its HTTP API",
  capabilities: DOCKER_CAPABILITIES,
  async detect(ctx) {
    const endpoint = await probeEndpoint(ctx.env, ctx.config);
    if ("missing" in endpoint) return { configured: false, missing: endpoint.missing };
    // Off Linux the engine was pinged, and the details say which one answered: the default provider's reason.
    return { configured: true, source: endpoint.source, details: hostPlatform(ctx.env) === "linux" ? `engine at ${describeEndpoint(endpoint)}` : describeEngine(endpoint, ctx.env) };
  },
  async load(ctx) {
    const [{ DockerProvider }, endpoint] = await Promise.all([import("./provider"), probeEndpoint(ctx.env, ctx.config)]);
    // The engine detect() found (off Linux: the one that answered), not merely the first socket file.
    return new DockerProvider(ctx, "missing" in endpoint ? undefined : endpoint);
  },
};
