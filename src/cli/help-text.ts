import pkg from "../../package.json" with { type: "json" };
import { COMMANDS, isCommandName, SUMMARIES } from "./registry";
import type { FlagDef } from "./args";

export const VERSION: string = pkg.version;

export function topLevelHelp(): string {
  const width = Math.max(...Object.keys(SUMMARIES).map((n) => n.length));
  return [
    `sandboxes ${VERSION}: run code in isolated sandboxes, locally or on any cloud provider`,
    "",
    "Usage: sandboxes <command> [flags]",
    "",
    "Commands:",
    ...Object.entries(SUMMARIES).map(([name, summary]) => `  ${name.padEnd(width)}  ${summary}`),
    "",
    "Flags:",
    "  -h, --help     Show help (also: sandboxes <command> --help)",
    "  -v, --version  Print the version",
    "",
    "Exit codes: sandboxes help exit-codes",
    "",
  ].join("\n");
}

function flagLine(name: string, def: FlagDef): string {
  const short = def.alias ? `-${def.alias}, ` : "    ";
  const value = def.type === "string" ? ` ${def.valueHint ?? "value"}` : "";
  return `  ${short}--${name}${value}`;
}

export async function commandHelp(name: string): Promise<string | undefined> {
  if (!isCommandName(name)) return undefined;
  const command = (await COMMANDS[name]()).default;
  const flags = Object.entries(command.args).filter(([, def]) => def.type !== "positional");
  const lines = flags.map(([flag, def]) => [flagLine(flag, def), def.description + (def.multiple ? " (repeatable)" : "")] as const);
  const width = Math.max(0, ...lines.map(([left]) => left.length));
  return [
    command.meta.description,
    "",
    `Usage: ${command.meta.usage ?? `sandboxes ${name} [flags]`}`,
    "",
    ...(lines.length ? ["Flags:", ...lines.map(([left, right]) => `${left.padEnd(width)}  ${right}`), `  ${"-h, --help".padEnd(width - 2)}  Show this help`, ""] : []),
    ...(command.meta.examples?.length ? ["Examples:", ...command.meta.examples.map((e) => `  ${e}`), ""] : []),
  ].join("\n");
}
