import type { Capabilities, ProviderDescriptor } from "../types";
import { findModalCredentials, MISSING_CREDENTIALS } from "./credentials";

export const MODAL_CAPABILITIES: Capabilities = {
  streaming: true,
  files: true,
  pty: true,
  // The JS SDK (0.11) fixes the terminal size at start and has no call to change it.
  resize: false,
  labels: true,
  stdin: true,
  networkIsolation: true,
  // outboundCidrAllowlist and outboundDomainAllowlist; no ports.
  networkAllowHosts: true,
  networkAllowCidrs: true,
  ttl: true,
  resources: true,
  mounts: false,
  oneShot: false,
};

export const modalDescriptor: ProviderDescriptor = {
  name: "modal",
  description: "Modal sandboxes (gVisor containers from any registry image), through the official modal SDK",
  capabilities: MODAL_CAPABILITIES,
  async detect(ctx) {
    const credentials = await findModalCredentials(ctx.env, ctx.config);
    if (!credentials) return { configured: false, missing: MISSING_CREDENTIALS };
    const server = ctx.env.MODAL_SERVER_URL || credentials.serverUrl;
    return { configured: true, source: credentials.source, ...(server ? { details: `server ${server}` } : {}) };
  },
  async load(ctx) {
    const { ModalProvider } = await import("./provider");
    return new ModalProvider(ctx);
  },
};
