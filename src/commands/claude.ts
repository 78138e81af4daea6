import { listClaudeSandboxes, runClaude } from "../core/claude";
import { UsageError } from "../base/errors";
import { processIO, withHangup } from "../pty/io";
import { defineCommand } from "../cli/command";
import { formatAge, printJson, renderTable } from "../cli/output";
import { envArgs, jsonArg, parseEnv, providerArg } from "../cli/args";

export default defineCommand({
  meta: {
    name: "claude",
    description: "Run Claude Code inside a sandbox, on a project directory",
    usage: "sandboxes claude [DIR] [-p NAME] [-n NAME] [--keep] [--list] [-- CLAUDE-ARGS…]",
    examples: [
      "sandboxes claude .                 # this project, mounted (local, docker) or uploaded (cloud)",
      "sandboxes claude -n myproject .    # a kept sandbox; run it again to resume",
      "sandboxes claude --list",
      "sandboxes claude -p local -- --version",
    ],
  },
  runsPrograms: true,
  args: {
    dir: { type: "positional", description: "Project directory to work on", required: false },
    ...providerArg,
    name: { type: "string", alias: "n", description: "Resume the Claude sandbox with this name, creating it if missing (kept)", valueHint: "name" },
    keep: { type: "boolean", description: "Keep the sandbox afterwards (it gets a name to resume it by)" },
    list: { type: "boolean", description: "List Claude sandboxes across providers" },
    image: { type: "string", alias: "i", description: "Image or template for a new sandbox (default: one with Claude Code or Node.js)", valueHint: "image" },
    ...envArgs,
    ...jsonArg,
  },
  toOptions(args, env) {
    if (args.list) {
      if (args._.length || args["--"].length) throw new UsageError("conflicting_arguments", "--list takes no DIR and no claude arguments");
      return { list: true as const, provider: args.provider, json: args.json };
    }
    if (args.json) throw new UsageError("conflicting_arguments", "--json applies to --list only");
    if (args._.length > 1) throw new UsageError("too_many_arguments", "one DIR at most; arguments for claude go after --");
    return {
      list: false as const,
      dir: args._[0],
      name: args.name,
      provider: args.provider,
      keep: args.keep,
      image: args.image,
      env: parseEnv(args.env, env.vars),
      args: args["--"],
    };
  },
  async run(options, { io, settings, signal }) {
    if (options.list) {
      const { sandboxes, warnings } = await listClaudeSandboxes(settings, options.provider);
      if (options.json) {
        await printJson(io, {
          sandboxes: sandboxes.map((s) => ({ id: s.id, provider: s.provider, name: s.name ?? null, state: s.state, workdir: s.workdir ?? null, created_at: s.createdAt ?? null })),
          warnings,
        });
        return 0;
      }
      for (const warning of warnings) io.ui().warn(`${warning.provider}: ${warning.message}`);
      if (sandboxes.length === 0) {
        io.ui().info("no Claude sandboxes; start one with `sandboxes claude -n NAME [DIR]`");
        return 0;
      }
      const rows = sandboxes.map((s) => [s.name ?? "-", s.id, s.provider, s.state, s.workdir ?? "-", formatAge(s.createdAt)]);
      await io.stdout.emit(renderTable(["NAME", "ID", "PROVIDER", "STATE", "WORKDIR", "AGE"], rows, io.stdout.isTTY));
      return 0;
    }
    const { list: _, ...session } = options;
    const hangup = withHangup(signal);
    try {
      return await runClaude(
        settings,
        {
          ...session,
          signal: hangup.signal,
        },
        processIO(io.program.sink(false)),
      );
    } finally {
      hangup.dispose();
    }
  },
});
