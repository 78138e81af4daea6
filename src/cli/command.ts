import type { Settings } from "../core/config";
import type { FlagsDef, ParsedArgs } from "./args";

export interface CommandContext {
  args: ParsedArgs;
  settings: Settings;
  /** Aborted with reason "SIGINT" or "SIGTERM"; core stops and cleans up. */
  signal: AbortSignal;
}

export interface Command {
  meta: { name: string; description: string; usage?: string; examples?: string[] };
  args: FlagsDef;
  /** run/exec/shell/claude pass a program's exit code through and use 125 for their own failures. */
  runsPrograms?: boolean;
  /** Returns the process exit code. */
  run(ctx: CommandContext): Promise<number>;
}

export function defineCommand(command: Command): Command {
  return command;
}
