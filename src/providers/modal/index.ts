import { capabilities, defineProvider } from "../define";
import { findModalCredentials, MISSING_CREDENTIALS } from "./credentials";

// Not resize: the JS SDK (0.11) fixes the terminal size at start and has no call to change it.
// Allow lists are outboundCidrAllowlist and outboundDomainAllowlist, without ports.
export const MODAL_CAPABILITIES = capabilities("streaming", "files", "pty", "labels", "stdin", "networkIsolation", "networkAllowHosts", "networkAllowCidrs", "ttl", "resources");

export const modalDescriptor = defineProvider({
  name: "modal",
  description: "Modal sandboxes (gVisor containers from any registry image), through the official modal SDK",
  capabilities: MODAL_CAPABILITIES,
  settings: (ctx) => findModalCredentials(ctx.env, ctx.config),
  describe: (credentials, ctx) => {
    if (!credentials) return { missing: MISSING_CREDENTIALS };
    const server = ctx.env.MODAL_SERVER_URL || credentials.serverUrl;
    return { source: credentials.source, details: server && `server ${server}` };
  },
  load: async (_credentials, ctx) => new (await import("./provider")).ModalProvider(ctx),
});
