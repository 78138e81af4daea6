import { UsageError } from "../base/errors";
import { networkPolicy } from "../core/network";
import { defineCommand } from "../cli/command";
import type { IO } from "../cli/io";
import { CLIENTS, type Client } from "../mcp/clients";
import { labelArg, networkArgs, parseCount, parseLabels, parseMemory, parsePositiveNumber, parseSeconds, providerArg } from "../cli/args";

/** The flags that shape what the session creates; `mcp config` writes them into the entry. */
const SERVE_FLAGS = ["provider", "image", "label", "network", "allow-net", "cpus", "memory", "pids", "ttl"] as const;

export default defineCommand({
  meta: {
    name: "mcp",
    description: "Serve every provider as tools for AI agents over the Model Context Protocol (stdio)",
    usage: "sandboxes mcp [-p NAME] [-i IMAGE] [-l key=value] [--network MODE] [--allow-net ENTRY]… | sandboxes mcp config [claude|cursor|vscode|json] [--write [--yes]]",
    examples: [
      "claude mcp add sandboxes -- sandboxes mcp",
      "sandboxes mcp config cursor --write",
      "sandboxes mcp config vscode -p docker --network none",
    ],
  },
  args: {
    action: { type: "positional", description: "config: print the snippet that registers the server", required: false },
    client: { type: "positional", description: "claude, cursor, vscode or json", required: false },
    ...providerArg,
    image: { type: "string", alias: "i", description: "Image or template for the sandboxes the session creates", valueHint: "image" },
    ...labelArg,
    ...networkArgs,
    cpus: { type: "string", description: "CPUs for each sandbox (providers with resources)", valueHint: "n" },
    memory: { type: "string", description: "Memory for each sandbox, e.g. 512m, 2g", valueHint: "size" },
    pids: { type: "string", description: "Most processes and threads in each sandbox (local default: 2048)", valueHint: "n" },
    ttl: { type: "string", description: "Lifetime of each sandbox, in seconds (providers with ttl)", valueHint: "seconds" },
    write: { type: "boolean", description: "config: merge the entry into the client's config file" },
    yes: { type: "boolean", alias: "y", description: "config --write: do not ask (required without a terminal)" },
  },
  toOptions(args) {
    const [action, client, ...extra] = args._;
    const defaults = {
      provider: args.provider,
      image: args.image,
      labels: parseLabels(args.label),
      network: networkPolicy(args.network, args["allow-net"]),
      cpus: parsePositiveNumber(args.cpus, "--cpus"),
      memoryMb: parseMemory(args.memory),
      pids: parseCount(args.pids, "--pids"),
      ttlSeconds: parseSeconds(args.ttl, "--ttl"),
    };
    if (action === "config") {
      if (extra.length) throw new UsageError("unexpected_argument", `unexpected argument "${extra[0]}": usage: sandboxes mcp config [claude|cursor|vscode|json]`);
      const chosen = CLIENTS.find((c) => c === (client ?? "json"));
      if (!chosen) throw new UsageError("bad_value", `unknown client "${client}": choose one of ${CLIENTS.join(", ")}`);
      if (args.yes && !args.write) throw new UsageError("conflicting_arguments", "--yes goes with --write");
      // The flags that shape the session, as given, for the entry that launches it.
      const serveArgs = SERVE_FLAGS.flatMap((flag) => [args[flag] ?? []].flat().flatMap((value) => [`--${flag}`, value]));
      return { action: "config" as const, client: chosen, serveArgs, write: args.write, yes: args.yes };
    }
    if (action !== undefined) throw new UsageError("unexpected_argument", `unknown action "${action}": \`sandboxes mcp\` serves, \`sandboxes mcp config\` prints the client snippet`);
    if (args.write || args.yes) throw new UsageError("conflicting_arguments", "--write and --yes go with `sandboxes mcp config`");
    return { action: "serve" as const, defaults };
  },
  async run(options, { io, settings, signal }) {
    if (options.action === "config") return configure(options, settings.env, io);
    const { defaults } = options;
    if (defaults.provider) (await import("../providers/catalog")).findDescriptor(defaults.provider);
    // The SDK is loaded here only: no other command pays for it (bench/startup.ts).
    const { serve } = await import("../mcp/server");
    const log = (line: string) => io.stderr.write(`sandboxes mcp: ${line}\n`);
    if (io.stdin.isTTY) log("this speaks MCP on stdin/stdout for an agent; register it with a client instead: see `sandboxes mcp config`");
    const { kept } = await serve(settings, defaults, signal, log);
    if (kept.length) log(`kept sandboxes: ${kept.map((k) => `${k.id} (${k.provider})`).join(", ")}; remove them with \`sandboxes destroy ID\``);
    return 0;
  },
});

async function configure(options: { client: Client; serveArgs: string[]; write: boolean; yes: boolean }, env: Record<string, string | undefined>, io: IO): Promise<number> {
  const { applyChange, describeChange, launchCommand, planChange, snippet } = await import("../mcp/clients");
  const { client } = options;
  const launch = launchCommand(options.serveArgs);
  if (!options.write) {
    await io.stdout.emit(snippet(client, launch));
    return 0;
  }
  const change = planChange(client, launch, env, process.cwd());
  if (change.unchanged) {
    io.ui().info(`${change.path} already registers the server; nothing to change`);
    return 0;
  }
  io.stderr.write(describeChange(change, client));
  if (!options.yes) {
    if (!io.stdin.isTTY || !io.stderr.isTTY) throw new UsageError("confirmation_required", `refusing to change ${change.path} without confirmation: add --yes`);
    if (!(await io.confirm(`Write this to ${change.path}?`, true))) {
      io.ui().info("nothing written");
      return 1;
    }
  }
  applyChange(change);
  io.ui().success(`registered the server "sandboxes" in ${change.path}`);
  return 0;
}
