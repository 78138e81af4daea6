import { UsageError } from "../base/errors";
import { defineCommand } from "../cli/command";
import { emitStdout } from "../cli/output";

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
  async run({ args }) {
    const { SHELLS, completionSpec } = await import("../cli/completion/spec");
    const shell = args._[0]!;
    if (!(SHELLS as readonly string[]).includes(shell) || args._.length > 1) {
      throw new UsageError("unknown_shell", `unknown shell "${args._.join(" ")}": use one of ${SHELLS.join(", ")}`);
    }
    const { renderCompletion } = await import("../cli/completion/render");
    await emitStdout(renderCompletion(shell as (typeof SHELLS)[number], await completionSpec()));
    return 0;
  },
});
