/**
 * The strict flag parser behind main.ts. Our own rather than node:util's parseArgs: importing
 * node:util costs about a millisecond of start-up on every command (bench/startup.ts), and we
 * want our own messages anyway. Semantics follow parseArgs with strict: true and positionals
 * allowed: `--name value`, `--name=value`, `-n value`, `-nvalue`, boolean groups like `-ab`,
 * and flags may come before or after positionals. The caller splits off everything after `--`.
 */

export interface FlagSpec {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
}

export type FlagValues = Record<string, string | boolean | string[] | undefined>;

/** What went wrong, with the flag as the user spelled it; main.ts turns it into one line. */
export class FlagError extends Error {
  constructor(
    readonly reason: "unknown" | "missing_value" | "value_looks_like_flag" | "unexpected_value" | "repeated",
    readonly flag: string,
    readonly value?: string,
  ) {
    super(`${reason}: ${flag}`);
  }
}

export function parseFlags(args: readonly string[], specs: Record<string, FlagSpec>): { values: FlagValues; positionals: string[] } {
  // Maps, not plain objects: `--constructor` must be unknown, not Object.prototype's.
  const long = new Map(Object.entries(specs));
  const short = new Map<string, string>();
  for (const [name, spec] of long) if (spec.short) short.set(spec.short, name);

  const values: FlagValues = Object.create(null);
  const positionals: string[] = [];
  const store = (name: string, value: string | true) => {
    const spec = long.get(name)!;
    if (spec.multiple) {
      ((values[name] as string[] | undefined) ?? (values[name] = [])).push(value as string);
    } else if (spec.type === "string" && values[name] !== undefined) {
      // parseArgs silently keeps the last one; `-t 5 -t 10` is more likely a mistake.
      throw new FlagError("repeated", `--${name}`);
    } else {
      values[name] = value;
    }
  };
  /** The value of a string flag from the next argument, refusing one that looks like a flag. */
  const takeNext = (index: number, name: string): string => {
    const next = args[index + 1];
    if (next === undefined) throw new FlagError("missing_value", `--${name}`);
    if (next.startsWith("-") && next !== "-") throw new FlagError("value_looks_like_flag", `--${name}`, next);
    return next;
  };

  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!;
    if (arg.startsWith("--")) {
      const equals = arg.indexOf("=");
      const name = equals === -1 ? arg.slice(2) : arg.slice(2, equals);
      const spec = long.get(name);
      if (!spec || name === "") throw new FlagError("unknown", equals === -1 ? arg : arg.slice(0, equals));
      if (equals !== -1) {
        if (spec.type === "boolean") throw new FlagError("unexpected_value", `--${name}`);
        store(name, arg.slice(equals + 1));
      } else if (spec.type === "boolean") {
        store(name, true);
      } else {
        store(name, takeNext(index, name));
        index++;
      }
      continue;
    }
    if (arg.startsWith("-") && arg !== "-") {
      // -x, -xVALUE for a string flag, or a group of switches -abc (the last may take a value).
      for (let at = 1; at < arg.length; at++) {
        const letter = arg[at]!;
        const name = short.get(letter);
        if (!name) throw new FlagError("unknown", `-${letter}`, arg);
        const spec = long.get(name)!;
        if (spec.type === "boolean") {
          store(name, true);
          continue;
        }
        if (at < arg.length - 1) {
          store(name, arg.slice(at + 1));
        } else {
          store(name, takeNext(index, name));
          index++;
        }
        break;
      }
      continue;
    }
    positionals.push(arg);
  }
  return { values, positionals };
}
