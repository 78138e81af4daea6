/**
 * The egress policy as pure functions: addresses are parsed and decided on, never connected to
 * (no socket is opened in this file).
 */
import { describe, expect, test } from "bun:test";
import { AllowEntryError, decide, decideHostAlias, deniedRange, HOST_ALIAS, isHostAlias, parseAllowEntry, parseAllowList } from "../../src/providers/local/egress/policy";
import { formatBlocked, proxyEnvironment } from "../../src/providers/local/egress/proxy";

describe("deniedRange", () => {
  const cases: Array<[string, string | undefined]> = [
    ["127.0.0.1", "loopback"],
    ["127.255.255.254", "loopback"],
    ["::1", "loopback"],
    ["169.254.169.254", "link-local"],
    ["fe80::1", "link-local"],
    ["febf:ffff::1", "link-local"],
    ["fe80::1%eth0", "link-local"],
    ["10.0.0.5", "private"],
    ["10.255.255.255", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["192.168.1.1", "private"],
    ["fc00::1", "private"],
    ["fd12:3456::1", "private"],
    ["100.64.0.1", "shared"],
    ["100.127.255.255", "shared"],
    ["0.0.0.0", "unspecified"],
    ["::", "unspecified"],
    ["224.0.0.1", "multicast"],
    ["239.255.255.250", "multicast"],
    ["ff02::1", "multicast"],
    // IPv4-mapped IPv6, dotted and hex.
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:7f00:1", "loopback"],
    ["::ffff:10.0.0.5", "private"],
    ["::ffff:169.254.169.254", "link-local"],
    ["::ffff:a9fe:a9fe", "link-local"],
    ["::ffff:192.168.0.1", "private"],
    ["::ffff:100.64.0.1", "shared"],
    ["::ffff:0.0.0.0", "unspecified"],
    ["::ffff:224.0.0.1", "multicast"],
    // Public, including the edges of the denied ranges.
    ["203.0.113.7", undefined],
    ["8.8.8.8", undefined],
    ["172.15.255.255", undefined],
    ["172.32.0.0", undefined],
    ["100.63.255.255", undefined],
    ["100.128.0.0", undefined],
    ["11.0.0.0", undefined],
    ["169.255.0.1", undefined],
    ["223.255.255.255", undefined],
    ["2001:db8::1", undefined],
    ["2606:4700::1111", undefined],
    ["fec0::1", undefined],
    ["::ffff:203.0.113.7", undefined],
  ];
  for (const [address, range] of cases) {
    test(`${address} is ${range ?? "public"}`, () => {
      expect(deniedRange(address)).toBe(range as never);
    });
  }
  test("a non-address throws", () => {
    expect(() => deniedRange("example.com")).toThrow("not an IP address");
  });
});

describe("parseAllowEntry", () => {
  test("hostnames, lower-cased, with and without a port and a trailing dot", () => {
    expect(parseAllowEntry("Example.COM")).toMatchObject({ kind: "host", host: "example.com" });
    expect(parseAllowEntry("Example.COM").port).toBeUndefined();
    expect(parseAllowEntry("api.example.com:443")).toMatchObject({ kind: "host", host: "api.example.com", port: 443 });
    expect(parseAllowEntry("example.com.")).toMatchObject({ kind: "host", host: "example.com" });
    expect(parseAllowEntry("localhost")).toMatchObject({ kind: "host", host: "localhost" });
    expect(parseAllowEntry("host.sandboxes.internal:8080")).toMatchObject({ kind: "host", host: HOST_ALIAS, port: 8080 });
  });
  test("wildcards", () => {
    expect(parseAllowEntry("*.example.com")).toMatchObject({ kind: "wildcard", suffix: "example.com" });
    expect(parseAllowEntry("*.example.com:8443")).toMatchObject({ kind: "wildcard", suffix: "example.com", port: 8443 });
  });
  test("IPv4 and IPv6 addresses and CIDRs, with ports", () => {
    expect(parseAllowEntry("10.0.0.5")).toMatchObject({ kind: "net" });
    expect(parseAllowEntry("10.0.0.5:5432")).toMatchObject({ kind: "net", port: 5432 });
    expect(parseAllowEntry("10.0.0.0/8")).toMatchObject({ kind: "net" });
    expect(parseAllowEntry("10.0.0.0/8:22")).toMatchObject({ kind: "net", port: 22 });
    expect(parseAllowEntry("::1")).toMatchObject({ kind: "net" });
    expect(parseAllowEntry("::1").port).toBeUndefined();
    expect(parseAllowEntry("fc00::/7")).toMatchObject({ kind: "net" });
    expect(parseAllowEntry("[::1]:8080")).toMatchObject({ kind: "net", port: 8080 });
    expect(parseAllowEntry("[2001:db8::1]")).toMatchObject({ kind: "net" });
    expect(parseAllowEntry("[2001:db8::1]").port).toBeUndefined();
    expect(parseAllowEntry("[fd00::/8]:53")).toMatchObject({ kind: "net", port: 53 });
  });
  const bad: Array<[string, string]> = [
    ["", "needs a destination"],
    ["exa mple.com", "expected a hostname"],
    ["-bad.example.com", "expected a hostname"],
    ["under_score.example", "expected a hostname"],
    ["example.com:0", "port must be a number from 1 to 65535"],
    ["example.com:65536", "port must be a number from 1 to 65535"],
    ["example.com:http", "port must be a number"],
    ["example.com:", "port must be a number"],
    ["1.2.3", "is not an IP address"],
    ["256.1.1.1", "is not an IP address"],
    ["10.0.0.0/33", "prefix length"],
    ["10.0.0.0/", "prefix length"],
    ["fc00::/129", "prefix length"],
    ["[::1", 'missing "]"'],
    ["[::1]8080", 'expected ":PORT"'],
    ["[example.com]:80", "is not an IPv6 address"],
    ["[10.0.0.1]:80", "is not an IPv6 address"],
    ["*.com", "wildcard needs a domain with a dot"],
    ["*example.com", "expected a hostname"],
    ["a.*.example.com", "expected a hostname"],
    ["http://example.com", "port must be a number"],
    [`${"a".repeat(64)}.com`, "expected a hostname"],
  ];
  for (const [entry, message] of bad) {
    test(`refuses ${JSON.stringify(entry)} with one line`, () => {
      let error: unknown;
      try {
        parseAllowEntry(entry);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(AllowEntryError);
      expect((error as Error).message).toContain(message);
      expect((error as Error).message).not.toContain("\n");
    });
  }
});

describe("decide", () => {
  const none = parseAllowList([]);
  test("no allow list: public addresses are allowed, every denied range is not", () => {
    expect(decide(none, "203.0.113.7", 443, "203.0.113.7")).toEqual({ allowed: true });
    expect(decide(none, "example.com", 80, "2001:db8::1")).toEqual({ allowed: true });
    expect(decide(none, "10.0.0.5", 5432, "10.0.0.5")).toEqual({ allowed: false, reason: "private" });
    expect(decide(none, "169.254.169.254", 80, "169.254.169.254")).toEqual({ allowed: false, reason: "link-local" });
    expect(decide(none, "localhost", 80, "127.0.0.1")).toEqual({ allowed: false, reason: "loopback" });
    expect(decide(none, "[::ffff:10.0.0.5]", 80, "::ffff:10.0.0.5")).toEqual({ allowed: false, reason: "private" });
  });
  test("a public name that resolves to a private address is denied", () => {
    expect(decide(none, "internal.example", 443, "10.1.2.3")).toEqual({ allowed: false, reason: "private" });
  });
  test("with an allow list only listed destinations are reachable", () => {
    const allow = parseAllowList(["api.example.com", "203.0.113.0/24:443"]);
    expect(decide(allow, "api.example.com", 443, "198.51.100.1").allowed).toBe(true);
    expect(decide(allow, "API.Example.com.", 80, "198.51.100.1").allowed).toBe(true);
    expect(decide(allow, "other.example.com", 443, "198.51.100.1")).toEqual({ allowed: false, reason: "not-listed" });
    expect(decide(allow, "203.0.113.7", 443, "203.0.113.7").allowed).toBe(true);
    expect(decide(allow, "203.0.113.7", 80, "203.0.113.7")).toEqual({ allowed: false, reason: "not-listed" });
    // A name that resolves into a listed CIDR is reachable through it.
    expect(decide(allow, "www.example.org", 443, "203.0.113.9").allowed).toBe(true);
  });
  test("ports: an entry with a port allows that port only", () => {
    const allow = parseAllowList(["example.com:443"]);
    expect(decide(allow, "example.com", 443, "198.51.100.1").allowed).toBe(true);
    expect(decide(allow, "example.com", 80, "198.51.100.1")).toEqual({ allowed: false, reason: "not-listed" });
  });
  test("a denied-range address opens only by being listed", () => {
    expect(decide(parseAllowList(["example.com"]), "10.0.0.5", 5432, "10.0.0.5")).toEqual({ allowed: false, reason: "private" });
    expect(decide(parseAllowList(["10.0.0.5:5432"]), "10.0.0.5", 5432, "10.0.0.5").allowed).toBe(true);
    expect(decide(parseAllowList(["10.0.0.5:5432"]), "10.0.0.5", 22, "10.0.0.5")).toEqual({ allowed: false, reason: "private" });
    expect(decide(parseAllowList(["10.0.0.0/8"]), "db.internal", 5432, "10.9.8.7").allowed).toBe(true);
    expect(decide(parseAllowList(["169.254.169.254"]), "169.254.169.254", 80, "169.254.169.254").allowed).toBe(true);
    expect(decide(parseAllowList(["::1"]), "[::1]", 80, "::1").allowed).toBe(true);
  });
  test("an IPv4 entry matches the IPv4-mapped IPv6 form of its address", () => {
    expect(decide(parseAllowList(["10.0.0.5"]), "[::ffff:10.0.0.5]", 80, "::ffff:10.0.0.5").allowed).toBe(true);
    expect(decide(parseAllowList(["10.0.0.5"]), "[::ffff:10.0.0.6]", 80, "::ffff:10.0.0.6")).toEqual({ allowed: false, reason: "private" });
  });
  test("an exact hostname entry opens the private address it resolves to", () => {
    expect(decide(parseAllowList(["db.internal:5432"]), "db.internal", 5432, "10.0.0.5").allowed).toBe(true);
    expect(decide(parseAllowList(["localhost"]), "localhost", 8080, "127.0.0.1").allowed).toBe(true);
  });
  test("a wildcard matches subdomains only, and public addresses only", () => {
    const allow = parseAllowList(["*.example.com"]);
    expect(decide(allow, "a.example.com", 443, "198.51.100.1").allowed).toBe(true);
    expect(decide(allow, "a.b.example.com", 443, "198.51.100.1").allowed).toBe(true);
    expect(decide(allow, "example.com", 443, "198.51.100.1")).toEqual({ allowed: false, reason: "not-listed" });
    expect(decide(allow, "badexample.com", 443, "198.51.100.1")).toEqual({ allowed: false, reason: "not-listed" });
    expect(decide(allow, "a.example.com", 443, "10.0.0.5")).toEqual({ allowed: false, reason: "private" });
  });
});

describe("the host alias", () => {
  test("is the name and its stand-in address", () => {
    expect(isHostAlias("host.sandboxes.internal")).toBe(true);
    expect(isHostAlias("HOST.sandboxes.internal.")).toBe(true);
    expect(isHostAlias("169.254.77.77")).toBe(true);
    expect(isHostAlias("169.254.77.78")).toBe(false);
  });
  test("opens only through an entry naming it", () => {
    expect(decideHostAlias(parseAllowList([]), 8080)).toEqual({ allowed: false, reason: "host" });
    expect(decideHostAlias(parseAllowList(["169.254.0.0/16"]), 8080)).toEqual({ allowed: false, reason: "host" });
    expect(decideHostAlias(parseAllowList(["host.sandboxes.internal"]), 8080).allowed).toBe(true);
    expect(decideHostAlias(parseAllowList(["host.sandboxes.internal:8080"]), 8080).allowed).toBe(true);
    expect(decideHostAlias(parseAllowList(["host.sandboxes.internal:8080"]), 22)).toEqual({ allowed: false, reason: "host" });
  });
});

describe("formatBlocked", () => {
  test("an address", () => {
    expect(formatBlocked({ host: "10.0.0.5", port: 5432, address: "10.0.0.5", reason: "private" })).toBe("blocked 10.0.0.5:5432 (private address); allow it with --allow-net 10.0.0.5:5432");
  });
  test("a name and what it resolved to", () => {
    expect(formatBlocked({ host: "internal.example", port: 443, address: "10.1.2.3", reason: "private" })).toBe(
      "blocked internal.example:443 (resolves to 10.1.2.3, a private address); allow it with --allow-net internal.example:443",
    );
    expect(formatBlocked({ host: "other.example", port: 443, address: "203.0.113.7", reason: "not-listed" })).toBe(
      "blocked other.example:443 (resolves to 203.0.113.7, not in the --allow-net list); allow it with --allow-net other.example:443",
    );
  });
  test("an IPv6 address in brackets", () => {
    expect(formatBlocked({ host: "::1", port: 8080, address: "::1", reason: "loopback" })).toBe("blocked [::1]:8080 (loopback address); allow it with --allow-net [::1]:8080");
  });
  test("the host", () => {
    expect(formatBlocked({ host: "host.sandboxes.internal", port: 8080, address: "127.0.0.1", reason: "host" })).toBe(
      "blocked host.sandboxes.internal:8080 (the host); allow it with --allow-net host.sandboxes.internal:8080",
    );
  });
});

test("proxyEnvironment points every client at the bridge and keeps the sandbox's localhost direct", () => {
  expect(proxyEnvironment(3128)).toEqual({
    HTTP_PROXY: "http://127.0.0.1:3128",
    HTTPS_PROXY: "http://127.0.0.1:3128",
    ALL_PROXY: "socks5h://127.0.0.1:3128",
    NO_PROXY: "localhost,127.0.0.1,::1",
    http_proxy: "http://127.0.0.1:3128",
    https_proxy: "http://127.0.0.1:3128",
    all_proxy: "socks5h://127.0.0.1:3128",
    no_proxy: "localhost,127.0.0.1,::1",
  });
});
