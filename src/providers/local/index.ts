import { capabilities, defineProvider } from "../define";
import { hostPlatform } from "../platform";
import { bubblewrapPath } from "./bubblewrap";
import { cgroupSites, describeLimits, ownCount } from "./limits-host";

// Allow lists (hosts, CIDRs, ports) are enforced by the egress proxy every default-policy sandbox goes through.
export const LOCAL_CAPABILITIES = capabilities(
  "streaming", "files", "pty", "resize", "labels", "stdin", "networkIsolation", "networkHost", "networkAllowHosts", "networkAllowCidrs", "networkAllowPorts", "resources", "pids", "mounts", "oneShot", "oneShotFiles",
  // A kept sandbox is stopped after a reboot; its next exec starts it over its files.
  "startsStopped",
);

const notHere = (env: Record<string, string | undefined>) =>
  hostPlatform(env) === "linux" ? undefined : "the local provider is Linux-only: use -p docker or a cloud provider";

export const localDescriptor = defineProvider({
  name: "local",
  description: "Linux namespaces on this machine (bubblewrap or util-linux); no account, no daemon",
  capabilities: LOCAL_CAPABILITIES,
  settings: (ctx) => ctx,
  missing: (ctx) => notHere(ctx.env),
  async describe(ctx) {
    const missing = notHere(ctx.env);
    if (missing) return { missing };
    const bwrap = bubblewrapPath(ctx.env);
    // Without bubblewrap, sandbox-start makes the sandbox when this build carries it (else the
    // util-linux programs alone, setpriv and nsenter among them).
    const started = ctx.env.SANDBOXES_LOCAL_START !== "off" && (await import("./carried-start")).carriedHelper() !== undefined;
    const isolation = bwrap
      ? `isolation: bubblewrap (${bwrap})`
      : `isolation: util-linux unshare${started ? " with sandbox-start" : ""} (install bubblewrap for the preferred mechanism)`;
    const release = await Bun.file("/proc/sys/kernel/osrelease").text().catch(() => "");
    return { source: "built in", details: `${isolation}; ${describeLimits(await cgroupSites(ctx.env), ownCount(process.getuid?.() === 0, release))}` };
  },
  load: async (ctx) => new (await import("./provider")).LocalProvider(ctx),
});
