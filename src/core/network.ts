/**
 * --network and --allow-net: one validation for the CLI and the library, and the check of a
 * policy against what a provider can enforce (its capabilities), made before anything is
 * created. A policy a provider cannot express is refused, never weakened.
 */
import type { AllowEntry } from "../providers/local/egress/policy";
import type { Capabilities, NetworkMode, NetworkPolicy } from "../providers/types";
import { SandboxesError, UsageError } from "../base/errors";

const MODES: readonly NetworkMode[] = ["default", "none", "host"];

// Loaded only when there are entries to read: node:net is not free, and most runs have none.
function parseEntries(allow: readonly string[]): AllowEntry[] {
  if (allow.length === 0) return [];
  const { parseAllowEntry, AllowEntryError } = require("../providers/local/egress/policy") as typeof import("../providers/local/egress/policy");
  return allow.map((entry) => {
    try {
      return parseAllowEntry(entry);
    } catch (error) {
      if (error instanceof AllowEntryError) throw new UsageError("bad_allow_net", error.message);
      throw error;
    }
  });
}

/** The policy from --network and --allow-net (undefined when neither was given); throws UsageError. */
export function networkPolicy(mode: string | undefined, allow: readonly string[]): NetworkPolicy | undefined {
  if (mode === undefined && allow.length === 0) return undefined;
  const policy = { mode: (mode ?? "default") as NetworkMode, allow: [...allow] };
  checkPolicy(policy);
  return policy;
}

/** Validates a policy as the library or the CLI gave it; returns its parsed entries. */
export function checkPolicy(policy: NetworkPolicy): AllowEntry[] {
  if (!MODES.includes(policy.mode)) throw new UsageError("bad_value", `--network must be default, none or host, got "${policy.mode}"`);
  if (policy.allow.length > 0 && policy.mode !== "default") {
    throw new UsageError("conflicting_arguments", `--allow-net cannot be combined with --network ${policy.mode}: drop one of them`);
  }
  return parseEntries(policy.allow);
}

function unsupported(message: string, hint: string): SandboxesError {
  return new SandboxesError("unsupported", message, "user", hint);
}

/**
 * Refuses a policy the provider cannot enforce, naming the first entry it cannot express. The
 * capabilities are the provider's declared data (src/providers/<name>/index.ts).
 */
export function checkNetworkSupport(providerName: string, capabilities: Capabilities, policy: NetworkPolicy | undefined): void {
  if (!policy) return;
  const entries = checkPolicy(policy);
  if (policy.mode === "none" && !capabilities.networkIsolation) {
    throw unsupported(`provider ${providerName} cannot cut a sandbox off the network (--network none)`, "use -p local or -p docker");
  }
  if (policy.mode === "host" && !capabilities.networkHost) {
    throw unsupported(`provider ${providerName} cannot share this machine's network (--network host)`, "use -p local or -p docker");
  }
  for (const entry of entries) {
    if (entry.kind === "net" ? !capabilities.networkAllowCidrs : !capabilities.networkAllowHosts) {
      const what = entry.kind === "net" ? "IP addresses or CIDRs" : "host names";
      const instead = capabilities.networkAllowCidrs ? "list IP addresses or CIDRs instead" : capabilities.networkAllowHosts ? "list host names instead" : "`sandboxes providers` shows which providers can (networkAllowHosts, networkAllowCidrs)";
      throw unsupported(`provider ${providerName} cannot allow ${what} (--allow-net ${entry.text})`, instead);
    }
    if (entry.port !== undefined && !capabilities.networkAllowPorts) {
      throw unsupported(`provider ${providerName} cannot limit --allow-net to a port (${entry.text})`, "drop the :PORT");
    }
  }
}

/** The one line core prints when a sandbox shares the host's network. */
export const HOST_NETWORK_WARNING = "warning: --network host shares this machine's network with the sandbox";
