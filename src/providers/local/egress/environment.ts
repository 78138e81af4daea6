/**
 * What a sandbox is told about its egress path: the proxy variables and the host's name. Free of
 * node: imports, so a one-shot run can set its sandbox up before it loads the proxy (node:net).
 */

/**
 * The name under which a sandbox reaches the host's own services (the host's 127.0.0.1), and the
 * address the sandbox's /etc/hosts gives that name (link-local, used by nothing real; it never
 * leaves the proxy). Reachable only through an entry naming HOST_ALIAS, with or without a port.
 */
export const HOST_ALIAS = "host.sandboxes.internal";
export const HOST_ALIAS_ADDRESS = "169.254.77.77";

/** The environment that points a sandbox's programs at the proxy bridged to 127.0.0.1:port. */
export function proxyEnvironment(port: number): Record<string, string> {
  const http = `http://127.0.0.1:${port}`;
  const socks = `socks5h://127.0.0.1:${port}`;
  const noProxy = "localhost,127.0.0.1,::1";
  return {
    HTTP_PROXY: http,
    HTTPS_PROXY: http,
    ALL_PROXY: socks,
    NO_PROXY: noProxy,
    http_proxy: http,
    https_proxy: http,
    all_proxy: socks,
    no_proxy: noProxy,
  };
}
