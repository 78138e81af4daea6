import type { Settings } from "../core/config";
import type { FlagsDef, ParsedArgs } from "./args";
import type { IO } from "./io";

/** What toOptions may read besides the arguments: facts of the caller, never I/O. */
export interface CommandEnv {
  /** The caller's environment variables (settings.env): `-e KEY` takes its value from here. */
  readonly vars: Readonly<Record<string, string | undefined>>;
  /** Whether stdin is a terminal: `run` reads code from stdin only when it is not. */
  readonly stdinIsTTY: boolean;
}

export interface CommandContext {
  io: IO;
  settings: Settings;
  /** Aborted with reason "SIGINT" or "SIGTERM"; core stops and cleans up. */
  signal: AbortSignal;
}

export interface CommandMeta {
  name: string;
  description: string;
  usage?: string;
  examples?: string[];
}

/**
 * A command as gh writes one: its flag table, a pure `toOptions` that does every check of the
 * arguments (throwing a UsageError) and returns the options, and `run`, which does the work.
 * Tests call both in-process with a fake IO (test/cli/).
 */
export interface Command<A extends FlagsDef = FlagsDef, O = unknown> {
  meta: CommandMeta;
  args: A;
  /** run/exec/shell/claude pass a program's exit code through and use 125 for their own failures. */
  runsPrograms?: boolean;
  /** Prints only documents (tables, JSON, help): the boundary need not load the message layer. */
  printsDataOnly?: boolean;
  toOptions(args: ParsedArgs<A>, env: CommandEnv): O;
  /** Returns the process exit code. */
  run(options: O, context: CommandContext): Promise<number>;
}

/** A command of any table, as the registry and the boundary hold them (each checks its own types in defineCommand). */
export interface AnyCommand extends Omit<Command<FlagsDef, any>, "toOptions"> {
  toOptions(args: any, env: CommandEnv): any;
}

/** Infers the argument types from the flag table (`const`, so "boolean" stays a literal). */
export function defineCommand<const A extends FlagsDef, O>(command: Command<A, O>): Command<A, O> {
  return command;
}
