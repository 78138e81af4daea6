import { openShell } from "../core/interactive";
import { processIO, withHangup } from "../pty/io";
import { defineCommand } from "../cli/command";
import { envArgs, labelArg, parseEnv, parseLabels, providerArg, workdirArg } from "../cli/args";

export default defineCommand({
  meta: {
    name: "shell",
    description: "Open an interactive login shell in a sandbox (new, named, or existing)",
    usage: "sandboxes shell [ID|NAME] [-p NAME] [-n NAME] [--keep] [-i IMAGE] [-e KEY=VALUE]",
    examples: [
      "sandboxes shell",
      "sandboxes shell -n dev            # attach to (or create) the kept sandbox named dev",
      "sandboxes shell local-1a2b3c4d5e6f",
      "echo 'uname -a' | sandboxes shell -p docker",
    ],
  },
  runsPrograms: true,
  args: {
    sandbox: { type: "positional", description: "Existing sandbox id or name to attach to", required: false },
    ...providerArg,
    name: { type: "string", alias: "n", description: "Attach to the sandbox with this name, creating it if missing (kept)", valueHint: "name" },
    keep: { type: "boolean", description: "Keep a new sandbox after the shell exits and print its id" },
    image: { type: "string", alias: "i", description: "Image or template for a new sandbox", valueHint: "image" },
    ...envArgs,
    ...labelArg,
    ...workdirArg,
  },
  toOptions: (args, env) => ({
    target: {
      command: "shell" as const,
      ref: args._[0],
      name: args.name,
      provider: args.provider,
      keep: args.keep,
      image: args.image,
      labels: parseLabels(args.label),
    },
    env: parseEnv(args.env, env.vars),
    workdir: args.workdir,
  }),
  async run(options, { io, settings, signal }) {
    const hangup = withHangup(signal);
    try {
      return await openShell(
        settings,
        {
          ...options,
          signal: hangup.signal,
        },
        processIO(io.program.sink(false)),
      );
    } finally {
      hangup.dispose();
    }
  },
});
