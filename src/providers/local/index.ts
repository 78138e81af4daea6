import { hostPlatform } from "../platform";
import type { Capabilities, ProviderDescriptor } from "../types";
import { bubblewrapPath } from "./bubblewrap";
import { cgroupSites, describeLimits } from "./limits-host";

export const LOCAL_CAPABILITIES: Capabilities = {
  streaming: true,
  files: true,
  pty: true,
  resize: true,
  labels: true,
  stdin: true,
  networkIsolation: true,
  networkHost: true,
  // Enforced by the egress proxy every default-policy sandbox goes through.
  networkAllowHosts: true,
  networkAllowCidrs: true,
  networkAllowPorts: true,
  ttl: false,
  resources: true,
  pids: true,
  mounts: true,
  oneShot: true,
  // A kept sandbox is stopped after a reboot; its next exec starts it over its files.
  startsStopped: true,
};

export const localDescriptor: ProviderDescriptor = {
  name: "local",
  description: "Linux namespaces on this machine (bubblewrap or util-linux); no account, no daemon",
  capabilities: LOCAL_CAPABILITIES,
  async detect(ctx) {
    if (hostPlatform(ctx.env) !== "linux") {
      return { configured: false, missing: "the local provider is Linux-only: use -p docker or a cloud provider" };
    }
    const bwrap = bubblewrapPath(ctx.env);
    const isolation = bwrap ? `isolation: bubblewrap (${bwrap})` : "isolation: util-linux unshare (install bubblewrap for the preferred mechanism)";
    return { configured: true, source: "built in", details: `${isolation}; ${describeLimits(await cgroupSites(ctx.env))}` };
  },
  async load(ctx) {
    const { LocalProvider } = await import("./provider");
    return new LocalProvider(ctx);
  },
};
