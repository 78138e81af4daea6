import { UsageError } from "../base/errors";
import { networkPolicy } from "../core/network";
import { isTerminal } from "../cli/stdio";
import { defineCommand } from "../cli/command";
import { emitStdout, writeStderr } from "../cli/output";
import { ui } from "../cli/ui";
import { labelArg, networkArgs, parseCount, parseLabels, parseMemory, parsePositiveNumber, parseSeconds, providerArg, strings, type ParsedArgs } from "../cli/args";

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
  async run({ args, settings, signal }) {
    const [action, client, ...extra] = args._;
    const defaults = {
      provider: args.provider as string | undefined,
      image: args.image as string | undefined,
      labels: parseLabels(strings(args.label)),
      network: networkPolicy(args.network as string | undefined, strings(args["allow-net"])),
      cpus: parsePositiveNumber(args.cpus, "--cpus"),
      memoryMb: parseMemory(args.memory),
      pids: parseCount(args.pids, "--pids"),
      ttlSeconds: parseSeconds(args.ttl, "--ttl"),
    };
    if (action === "config") {
      if (extra.length) throw new UsageError("unexpected_argument", `unexpected argument "${extra[0]}": usage: sandboxes mcp config [claude|cursor|vscode|json]`);
      return configure(client ?? "json", args, settings.env);
    }
    if (action !== undefined) throw new UsageError("unexpected_argument", `unknown action "${action}": \`sandboxes mcp\` serves, \`sandboxes mcp config\` prints the client snippet`);
    if (args.write || args.yes) throw new UsageError("conflicting_arguments", "--write and --yes go with `sandboxes mcp config`");
    if (defaults.provider) (await import("../providers/index")).findDescriptor(defaults.provider);
    // The SDK is loaded here only: no other command pays for it (bench/startup.ts).
    const { serve } = await import("../mcp/server");
    const log = (line: string) => writeStderr(`sandboxes mcp: ${line}\n`);
    if (isTerminal(0)) log("this speaks MCP on stdin/stdout for an agent; register it with a client instead: see `sandboxes mcp config`");
    const { kept } = await serve(settings, defaults, signal, log);
    if (kept.length) log(`kept sandboxes: ${kept.map((k) => `${k.id} (${k.provider})`).join(", ")}; remove them with \`sandboxes destroy ID\``);
    return 0;
  },
});

async function configure(clientName: string, args: ParsedArgs, env: Record<string, string | undefined>): Promise<number> {
  const { CLIENTS, applyChange, describeChange, launchCommand, planChange, snippet } = await import("../mcp/clients");
  const client = CLIENTS.find((c) => c === clientName);
  if (!client) throw new UsageError("bad_value", `unknown client "${clientName}": choose one of ${CLIENTS.join(", ")}`);
  const serveArgs = SERVE_FLAGS.flatMap((flag) => strings(args[flag]).flatMap((value) => [`--${flag}`, value]));
  const launch = launchCommand(serveArgs);
  if (!args.write) {
    if (args.yes) throw new UsageError("conflicting_arguments", "--yes goes with --write");
    await emitStdout(snippet(client, launch));
    return 0;
  }
  const change = planChange(client, launch, env, process.cwd());
  if (change.unchanged) {
    ui().info(`${change.path} already registers the server; nothing to change`);
    return 0;
  }
  writeStderr(describeChange(change, client));
  if (!args.yes) {
    if (!isTerminal(0) || !isTerminal(2)) throw new UsageError("confirmation_required", `refusing to change ${change.path} without confirmation: add --yes`);
    const { confirm, isCancel } = await import("@clack/prompts");
    const answer = await confirm({ message: `Write this to ${change.path}?`, initialValue: true });
    if (isCancel(answer) || !answer) {
      ui().info("nothing written");
      return 1;
    }
  }
  applyChange(change);
  ui().success(`registered the server "sandboxes" in ${change.path}`);
  return 0;
}
