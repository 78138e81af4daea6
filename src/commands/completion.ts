import { UsageError } from "../base/errors";
import { defineCommand } from "../cli/command";
import { SHELLS, type Shell } from "../cli/completion/shells";

export default defineCommand({
  meta: {
    name: "completion",
    description: "Print a shell completion script (bash, zsh or fish), generated from the command and flag tables",
    usage: "sandboxes completion bash|zsh|fish",
    examples: [
      "source <(sandboxes completion bash)                                 # in ~/.bashrc",
      'sandboxes completion zsh > "${fpath[1]}/_sandboxes"                 # then restart zsh',
      "sandboxes completion fish > ~/.config/fish/completions/sandboxes.fish",
    ],
  },
  args: { shell: { type: "positional", description: "bash, zsh or fish", required: true } },
  printsDataOnly: true,
  toOptions(args) {
    const shell = SHELLS.find((s) => s === args._[0]);
    if (!shell || args._.length > 1) throw new UsageError("unknown_shell", `unknown shell "${args._.join(" ")}": use one of ${SHELLS.join(", ")}`);
    return { shell } satisfies { shell: Shell };
  },
  async run({ shell }, { io }) {
    const [{ completionSpec }, { renderCompletion }] = await Promise.all([import("../cli/completion/spec"), import("../cli/completion/render")]);
    await io.stdout.emit(renderCompletion(shell, await completionSpec()));
    return 0;
  },
});
