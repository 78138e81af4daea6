import type { Capabilities, ProviderDescriptor } from "../types";
import { describeEndpoint, probeEndpoint } from "./endpoint";

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
    return { configured: true, source: endpoint.source, details: `engine at ${describeEndpoint(endpoint)}` };
  },
  async load(ctx) {
    const { DockerProvider } = await import("./provider");
    return new DockerProvider(ctx);
  },
};
