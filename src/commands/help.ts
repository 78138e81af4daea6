import { renderExitCodeTable } from "../core/exit-codes";
import { UsageError } from "../base/errors";
import { defineCommand } from "../cli/command";

export const TOPICS: ReadonlyMap<string, () => string> = new Map([["exit-codes", () => `Exit codes\n\n${renderExitCodeTable()}\n`]]);

export default defineCommand({
  meta: { name: "help", description: "Show help for a command, or a topic (exit-codes)", usage: "sandboxes help [COMMAND|exit-codes]" },
  args: { topic: { type: "positional", description: "A command or a topic", required: false } },
  printsDataOnly: true,
  toOptions: (args) => ({ topic: args._[0] }),
  async run({ topic }, { io }) {
    if (!topic) {
      const { topLevelHelp } = await import("../cli/help-text");
      await io.stdout.emit(topLevelHelp());
      return 0;
    }
    const render = TOPICS.get(topic);
    if (render) {
      await io.stdout.emit(render());
      return 0;
    }
    const { commandHelp } = await import("../cli/help-text");
    const text = await commandHelp(topic);
    if (!text) throw new UsageError("unknown_topic", `no help topic "${topic}": try a command name or exit-codes`);
    await io.stdout.emit(text);
    return 0;
  },
});
