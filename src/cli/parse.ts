import { closest, UsageError } from "../base/errors";
import { FlagError, parseFlags, type FlagSpec } from "./argv";
import type { FlagsDef, ParsedArgs } from "./args";
import type { Command } from "./command";

/**
 * Strict parse against the command's flag table, into the typed arguments its toOptions takes:
 * every flag present (a switch false, a repeatable flag [] when not given). Unknown flags get a
 * "did you mean".
 */
export function parseCommandArgs<A extends FlagsDef>(command: Pick<Command<A>, "meta" | "args">, rawArgs: readonly string[]): ParsedArgs<A> {
  const dashDash = rawArgs.indexOf("--");
  const before = dashDash === -1 ? rawArgs : rawArgs.slice(0, dashDash);
  const after = dashDash === -1 ? [] : rawArgs.slice(dashDash + 1);
  const flags = Object.entries(command.args).filter(([, def]) => def.type !== "positional");
  const specs: Record<string, FlagSpec> = {};
  for (const [name, def] of flags) {
    specs[name] = { type: def.type === "boolean" ? "boolean" : "string", ...(def.alias ? { short: def.alias } : {}), ...(def.multiple ? { multiple: true } : {}) };
  }
  let parsed;
  try {
    parsed = parseFlags(before, specs);
  } catch (error) {
    if (error instanceof FlagError) throw flagUsageError(error, command);
    throw error;
  }
  const positionals = parsed.positionals;
  const required = Object.entries(command.args).filter(([, d]) => d.type === "positional" && d.required);
  if (positionals.length < required.length) {
    const missing = required[positionals.length]![0];
    throw new UsageError("missing_argument", `missing ${missing.toUpperCase()}: usage: ${command.meta.usage ?? `sandboxes ${command.meta.name}`}`);
  }
  const values: Record<string, string | boolean | string[] | undefined> = Object.create(null);
  for (const [name, def] of flags) values[name] = parsed.values[name] ?? (def.type === "boolean" ? false : def.multiple ? [] : undefined);
  // The one place the table's types meet the parser's values: each field above follows its def.
  return Object.assign(values, { _: positionals, "--": after }) as unknown as ParsedArgs<A>;
}

function flagUsageError(error: FlagError, command: Pick<Command, "meta" | "args">): UsageError {
  const name = command.meta.name;
  switch (error.reason) {
    case "unknown": {
      const long = Object.entries(command.args).filter(([, d]) => d.type !== "positional").map(([flag]) => `--${flag}`);
      // One letter is too short to guess from, but "-json" (unknown from its first letter on)
      // most likely meant "--json"; in a group like "-yz" the known -y shows it was a group.
      const singleDashWord = error.value !== undefined && error.value.length > 2 && error.value[1] === error.flag[1];
      const suggestion = error.flag.startsWith("--") ? closest(error.flag, long) : singleDashWord ? closest(`-${error.value}`, long) : undefined;
      return new UsageError("unknown_flag", `unknown flag ${error.flag} for "${name}"${suggestion ? `; did you mean ${suggestion}?` : ""} (see sandboxes ${name} --help)`);
    }
    case "missing_value":
      return new UsageError("missing_value", `${error.flag} needs a value (see sandboxes ${name} --help)`);
    case "value_looks_like_flag":
      return new UsageError("missing_value", `${error.flag} needs a value, not the flag-like ${error.value}: to pass a value that starts with "-", write ${error.flag}=${error.value}`);
    case "unexpected_value":
      return new UsageError("unexpected_value", `${error.flag} is a switch and takes no value`);
    case "repeated":
      return new UsageError("repeated_flag", `${error.flag} given more than once (it takes one value)`);
  }
}
