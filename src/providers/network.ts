/**
 * An allow list split the way cloud APIs take it. Core has already refused what the provider's
 * capabilities cannot express (ports, hosts on a CIDR-only API, …), so this only reshapes.
 */
import { parseAllowList } from "./local/egress/policy";
import type { NetworkPolicy } from "./types";

export interface AllowListParts {
  /** `example.com`, `*.example.com` (lower case). */
  hosts: string[];
  /** CIDRs; a single address becomes /32 or /128. */
  cidrs: string[];
}

/** The allow list of a "default" policy with entries, or undefined when there is none. */
export function allowListParts(policy: NetworkPolicy | undefined): AllowListParts | undefined {
  if (!policy || policy.mode !== "default" || policy.allow.length === 0) return undefined;
  const hosts: string[] = [];
  const cidrs: string[] = [];
  for (const entry of parseAllowList(policy.allow)) {
    if (entry.kind === "net") cidrs.push(entry.cidr);
    else hosts.push(entry.kind === "host" ? entry.host : `*.${entry.suffix}`);
  }
  return { hosts, cidrs };
}
