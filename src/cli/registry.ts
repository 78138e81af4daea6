import type { AnyCommand } from "./command";

/**
 * One lazy registry: static specifiers so the bundler sees every command. Without a prototype,
 * so `sandboxes constructor` is an unknown command like any other word (see isCommandName).
 */
export const COMMANDS = Object.assign(Object.create(null) as {}, {
  run: () => import("../commands/run"),
  exec: () => import("../commands/exec"),
  shell: () => import("../commands/shell"),
  claude: () => import("../commands/claude"),
  list: () => import("../commands/list"),
  destroy: () => import("../commands/destroy"),
  cp: () => import("../commands/cp"),
  mcp: () => import("../commands/mcp"),
  providers: () => import("../commands/providers"),
  test: () => import("../commands/test"),
  help: () => import("../commands/help"),
  completion: () => import("../commands/completion"),
} satisfies Record<string, () => Promise<{ default: AnyCommand }>>);

/**
 * One-line descriptions for the top-level help, without importing every command. Keyed by the
 * union of command names, so a command without one fails the type check (test/cli/types.test.ts).
 */
export const SUMMARIES: Readonly<Record<CommandName, string>> = {
  run: "Run a command, a file or stdin code in a new (or reused) sandbox",
  exec: "Run a command in an existing sandbox",
  shell: "Open an interactive shell in a sandbox",
  claude: "Run Claude Code inside a sandbox",
  list: "List sandboxes across providers",
  destroy: "Destroy sandboxes by id, name or labels",
  cp: "Copy files and directories to or from a sandbox",
  mcp: "Serve sandboxes as tools for AI agents (Model Context Protocol)",
  providers: "Show providers, their configuration and capabilities",
  test: "Check that each configured provider works end to end",
  help: "Show help for a command, or a topic: exit-codes",
  completion: "Print a shell completion script: bash, zsh or fish",
};

export type CommandName = keyof typeof COMMANDS;

/** Whether a word the user typed names a command (an own key: never `toString` or `__proto__`). */
export function isCommandName(name: string): name is CommandName {
  return Object.hasOwn(COMMANDS, name);
}
