import { hostPlatform } from "../platform";
import type { Capabilities, ProviderDescriptor } from "../types";
import { bubblewrapPath } from "./bubblewrap";

export const LOCAL_CAPABILITIES: Capabilities = {
  streaming: true,
  files: true,
  pty: true,
  resize: true,
  labels: true,
  stdin: true,
  networkIsolation: true,
  networkHost: true,
  // Enforced by the egress proxy once the local runtime routes the sandbox through it.
  networkAllowHosts: false,
  networkAllowCidrs: false,
  networkAllowPorts: false,
  ttl: false,
  resources: false,
  mounts: true,
  oneShot: false,
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
    return {
      configured: true,
      source: "built in",
      details: bwrap ? `isolation: bubblewrap (${bwrap})` : "isolation: util-linux unshare (install bubblewrap for the preferred mechanism)",
    };
  },
  async load(ctx) {
    const { LocalProvider } = await import("./provider");
    return new LocalProvider(ctx);
  },
};
