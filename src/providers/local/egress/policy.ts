/**
 * The egress policy of a local sandbox: which destinations its egress proxy may connect to.
 *
 * The decision is taken on the address a name resolved to, at connect time, so a public name
 * that resolves to 10.x is denied like 10.x itself. With no allow list, every public address is
 * reachable and the ranges below are not; with one, only listed destinations are reachable, and a
 * denied-range address only when an IP or CIDR entry covers it or an exact hostname entry resolved
 * to it (a `*.example.com` entry opens public addresses only: a wildcard is not an explicit
 * choice of an internal host). Range checks use node:net's BlockList, which also matches the
 * IPv4-mapped IPv6 forms (::ffff:10.0.0.5) of IPv4 rules.
 */
import { BlockList, isIP } from "node:net";
import { HOST_ALIAS, HOST_ALIAS_ADDRESS } from "./environment";

export { HOST_ALIAS, HOST_ALIAS_ADDRESS };

export type DeniedRange = "loopback" | "link-local" | "private" | "shared" | "unspecified" | "multicast";

const DENIED: ReadonlyArray<[DeniedRange, string, number]> = [
  ["loopback", "127.0.0.0", 8],
  ["loopback", "::1", 128],
  ["link-local", "169.254.0.0", 16],
  ["link-local", "fe80::", 10],
  ["private", "10.0.0.0", 8],
  ["private", "172.16.0.0", 12],
  ["private", "192.168.0.0", 16],
  ["private", "fc00::", 7],
  ["shared", "100.64.0.0", 10],
  ["unspecified", "0.0.0.0", 32],
  ["unspecified", "::", 128],
  ["multicast", "224.0.0.0", 4],
  ["multicast", "ff00::", 8],
];

let deniedLists: Map<DeniedRange, BlockList> | undefined;

function family(address: string): "ipv4" | "ipv6" {
  return isIP(address) === 4 ? "ipv4" : "ipv6";
}

/** The denied range an address is in, or undefined for a public address. */
export function deniedRange(address: string): DeniedRange | undefined {
  if (!deniedLists) {
    deniedLists = new Map();
    for (const [range, network, prefix] of DENIED) {
      let list = deniedLists.get(range);
      if (!list) deniedLists.set(range, (list = new BlockList()));
      list.addSubnet(network, prefix, family(network));
    }
  }
  const bare = stripZone(address);
  if (!isIP(bare)) throw new Error(`not an IP address: ${address}`);
  for (const [range, list] of deniedLists) if (list.check(bare, family(bare))) return range;
  return undefined;
}

function stripZone(address: string): string {
  const percent = address.indexOf("%");
  return percent === -1 ? address : address.slice(0, percent);
}

export type AllowEntry =
  | { kind: "host"; host: string; port?: number; text: string }
  | { kind: "wildcard"; suffix: string; port?: number; text: string }
  | { kind: "net"; list: BlockList; cidr: string; port?: number; text: string };

/** Thrown for an --allow-net entry that is none of the accepted forms; the message is one line. */
export class AllowEntryError extends Error {}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

function parsePort(text: string, entry: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) < 1 || Number(text) > 65535) {
    throw new AllowEntryError(`--allow-net ${entry}: the port must be a number from 1 to 65535`);
  }
  return Number(text);
}

/** An address or CIDR: its matcher, and the CIDR written out (an address gets /32 or /128). */
function parseNet(text: string, entry: string): { list: BlockList; cidr: string } {
  const slash = text.indexOf("/");
  const address = slash === -1 ? text : text.slice(0, slash);
  const version = isIP(address);
  if (!version) throw new AllowEntryError(`--allow-net ${entry}: "${address}" is not an IP address`);
  const list = new BlockList();
  if (slash === -1) {
    list.addAddress(address, family(address));
    return { list, cidr: `${address}/${version === 4 ? 32 : 128}` };
  }
  const prefixText = text.slice(slash + 1);
  const max = version === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) {
    throw new AllowEntryError(`--allow-net ${entry}: the prefix length after "/" must be 0 to ${max}`);
  }
  list.addSubnet(address, Number(prefixText), family(address));
  return { list, cidr: `${address}/${Number(prefixText)}` };
}

function isHostname(name: string): boolean {
  return name.length <= 253 && name.split(".").every((label) => LABEL.test(label));
}

/**
 * One --allow-net entry: `host`, `*.host`, an IPv4 address, an IPv6 address (bare, or in brackets
 * when a port follows: `[::1]:8080`), or a CIDR, each with an optional `:PORT`.
 */
export function parseAllowEntry(entry: string): AllowEntry {
  const text = entry.trim().toLowerCase();
  const hint = "expected a hostname, *.domain, an IP address or a CIDR, with an optional :PORT";
  if (text === "") throw new AllowEntryError(`--allow-net needs a destination: ${hint}`);
  let destination = text;
  let port: number | undefined;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close === -1) throw new AllowEntryError(`--allow-net ${entry}: missing "]" after the IPv6 address`);
    destination = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest !== "") {
      if (!rest.startsWith(":")) throw new AllowEntryError(`--allow-net ${entry}: expected ":PORT" after "]"`);
      port = parsePort(rest.slice(1), entry);
    }
    if (isIP(destination.split("/")[0]!) !== 6) throw new AllowEntryError(`--allow-net ${entry}: "${destination}" is not an IPv6 address`);
    return { kind: "net", ...parseNet(destination, entry), ...(port === undefined ? {} : { port }), text: entry };
  }
  const colons = text.split(":").length - 1;
  if (colons >= 2) {
    // A bare IPv6 address or CIDR; a port needs the bracketed form.
    return { kind: "net", ...parseNet(text, entry), text: entry };
  }
  if (colons === 1) {
    const colon = text.lastIndexOf(":");
    destination = text.slice(0, colon);
    port = parsePort(text.slice(colon + 1), entry);
  }
  const withPort = port === undefined ? {} : { port };
  if (/^[\d./]+$/.test(destination)) return { kind: "net", ...parseNet(destination, entry), ...withPort, text: entry };
  const name = destination.endsWith(".") ? destination.slice(0, -1) : destination;
  if (name.startsWith("*.")) {
    const suffix = name.slice(2);
    if (!isHostname(suffix) || !suffix.includes(".")) throw new AllowEntryError(`--allow-net ${entry}: a wildcard needs a domain with a dot after "*.", e.g. *.example.com`);
    return { kind: "wildcard", suffix, ...withPort, text: entry };
  }
  if (!isHostname(name)) throw new AllowEntryError(`--allow-net ${entry}: ${hint}`);
  return { kind: "host", host: name, ...withPort, text: entry };
}

export function parseAllowList(entries: readonly string[]): AllowEntry[] {
  return entries.map(parseAllowEntry);
}

/** Why a destination is blocked: its range, "not-listed" (an allow list leaves it out), or "host". */
export type BlockReason = DeniedRange | "not-listed" | "host";

export type Decision = { allowed: true; entry?: AllowEntry } | { allowed: false; reason: BlockReason };

/** Does the sandbox mean the host itself (HOST_ALIAS by name or by its stand-in address)? */
export function isHostAlias(host: string): boolean {
  const name = normalizeHost(host);
  return name === HOST_ALIAS || name === HOST_ALIAS_ADDRESS;
}

/** The host's own services: only an entry naming HOST_ALIAS (with a matching port or none) opens them. */
export function decideHostAlias(allow: readonly AllowEntry[], port: number): Decision {
  const entry = allow.find((e) => e.kind === "host" && e.host === HOST_ALIAS && (e.port === undefined || e.port === port));
  return entry ? { allowed: true, entry } : { allowed: false, reason: "host" };
}

/** The requested name as the policy compares it: lower case, no trailing dot, no brackets. */
export function normalizeHost(host: string): string {
  let name = host.toLowerCase();
  if (name.startsWith("[") && name.endsWith("]")) name = name.slice(1, -1);
  if (name.endsWith(".")) name = name.slice(0, -1);
  return name;
}

/**
 * May the proxy connect to `address`:`port`, which `host` (a name, or the same address) resolved
 * to? An empty allow list opens every public address and nothing else.
 */
export function decide(allow: readonly AllowEntry[], host: string, port: number, address: string): Decision {
  const range = deniedRange(address);
  if (allow.length === 0) return range ? { allowed: false, reason: range } : { allowed: true };
  const name = normalizeHost(host);
  const bare = stripZone(address);
  for (const entry of allow) {
    if (entry.port !== undefined && entry.port !== port) continue;
    if (entry.kind === "net" && entry.list.check(bare, family(bare))) return { allowed: true, entry };
    if (entry.kind === "host" && entry.host === name) return { allowed: true, entry };
    if (entry.kind === "wildcard" && !range && name.endsWith(`.${entry.suffix}`)) return { allowed: true, entry };
  }
  return { allowed: false, reason: range ?? "not-listed" };
}

/** "private address", "not in the --allow-net list"… as the blocked line says it. */
export function describeReason(reason: BlockReason): string {
  if (reason === "not-listed") return "not in the --allow-net list";
  if (reason === "host") return "the host";
  return reason === "shared" ? "shared address space (100.64.0.0/10)" : `${reason} address`;
}
