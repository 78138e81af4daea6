import { COMMANDS, SUMMARIES, type CommandName } from "../registry";
import type { FlagDef } from "../args";
import { languageNames } from "../../lang/languages";
import { providerNames } from "../../providers/catalog";
import { SHELLS } from "./shells";

/** What the shell scripts are generated from: the command registry and each command's flag table. */
export interface CompletionFlag {
  long: string;
  short?: string;
  description: string;
  takesValue: boolean;
  repeatable: boolean;
  /** Fixed set of values; undefined means "complete paths". */
  values?: string[];
}

export interface CompletionCommand {
  name: string;
  summary: string;
  flags: CompletionFlag[];
  /** Values offered for positional arguments; undefined means "complete paths". */
  positionalValues?: string[];
  hasPositionals: boolean;
}

export interface CompletionSpec {
  program: string;
  commands: CompletionCommand[];
  /** Flags accepted before any command. */
  globalFlags: CompletionFlag[];
}

export type { Shell } from "./shells";

/** Where a flag's values come from, by flag name: registries, not copies of them. */
const FLAG_VALUES: Record<string, () => string[]> = {
  provider: providerNames,
  lang: languageNames,
};

/** Where a command's positional values come from. */
const POSITIONAL_VALUES: Record<string, () => Promise<string[]>> = {
  help: async () => [...Object.keys(COMMANDS), ...(await import("../../commands/help")).TOPICS.keys()],
  completion: async () => [...SHELLS],
  mcp: async () => ["config", ...(await import("../../mcp/clients")).CLIENTS],
};

const HELP_FLAG: CompletionFlag = { long: "help", short: "h", description: "Show help", takesValue: false, repeatable: false };

function flag(name: string, def: FlagDef): CompletionFlag {
  const fromHint = def.valueHint && /^[a-z]+(\|[a-z]+)+$/.test(def.valueHint) ? def.valueHint.split("|") : undefined;
  return {
    long: name,
    ...(def.alias ? { short: def.alias } : {}),
    description: def.description,
    takesValue: def.type === "string",
    repeatable: Boolean(def.multiple),
    ...(def.type === "string" ? { values: FLAG_VALUES[name]?.() ?? fromHint } : {}),
  };
}

export async function completionSpec(): Promise<CompletionSpec> {
  const commands = await Promise.all(
    (Object.keys(COMMANDS) as CommandName[]).map(async (name): Promise<CompletionCommand> => {
      const { args } = (await COMMANDS[name]()).default;
      const entries = Object.entries(args);
      return {
        name,
        summary: SUMMARIES[name] ?? "",
        flags: [...entries.filter(([, d]) => d.type !== "positional").map(([n, d]) => flag(n, d)), HELP_FLAG],
        hasPositionals: entries.some(([, d]) => d.type === "positional"),
        ...(POSITIONAL_VALUES[name] ? { positionalValues: await POSITIONAL_VALUES[name]!() } : {}),
      };
    }),
  );
  return {
    program: "sandboxes",
    commands,
    globalFlags: [HELP_FLAG, { long: "version", short: "v", description: "Print the version", takesValue: false, repeatable: false }],
  };
}
