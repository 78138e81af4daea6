import { describe, expect, test } from "bun:test";
import { FlagError, parseFlags, type FlagSpec } from "../../src/cli/argv";

const specs: Record<string, FlagSpec> = {
  provider: { type: "string", short: "p" },
  env: { type: "string", short: "e", multiple: true },
  timeout: { type: "string", short: "t" },
  json: { type: "boolean" },
  keep: { type: "boolean", short: "k" },
  interactive: { type: "boolean", short: "i" },
};

const reasonOf = (args: string[]) => {
  try {
    parseFlags(args, specs);
  } catch (error) {
    if (error instanceof FlagError) return [error.reason, error.flag, error.value];
    throw error;
  }
  return undefined;
};

describe("parseFlags", () => {
  test("long, long=value, short, short+value, switch groups, flags after positionals", () => {
    const { values, positionals } = parseFlags(
      ["python3", "--provider", "docker", "-e", "A=1", "--env=B=2=3", "-eC=4", "--json", "-ki", "main.py", "-t5"],
      specs,
    );
    expect({ ...values }).toEqual({ provider: "docker", env: ["A=1", "B=2=3", "C=4"], json: true, keep: true, interactive: true, timeout: "5" });
    expect(positionals).toEqual(["python3", "main.py"]);
  });

  test("a switch group may end in a flag that takes the next argument", () => {
    expect({ ...parseFlags(["-kt", "9"], specs).values }).toEqual({ keep: true, timeout: "9" });
    expect({ ...parseFlags(["-kt9"], specs).values }).toEqual({ keep: true, timeout: "9" });
  });

  test("a lone dash and an empty =value are values, not flags", () => {
    expect(parseFlags(["-"], specs).positionals).toEqual(["-"]);
    expect({ ...parseFlags(["--provider", "-"], specs).values }).toEqual({ provider: "-" });
    expect({ ...parseFlags(["--timeout="], specs).values }).toEqual({ timeout: "" });
    expect({ ...parseFlags(["--timeout=-1"], specs).values }).toEqual({ timeout: "-1" });
  });

  test("mistakes are named with the flag as it was meant", () => {
    expect(reasonOf(["--bogus"])).toEqual(["unknown", "--bogus", undefined]);
    expect(reasonOf(["--bogus=1"])).toEqual(["unknown", "--bogus", undefined]);
    expect(reasonOf(["-x"])).toEqual(["unknown", "-x", "-x"]);
    expect(reasonOf(["-kx"])).toEqual(["unknown", "-x", "-kx"]);
    expect(reasonOf(["-5"])).toEqual(["unknown", "-5", "-5"]);
    expect(reasonOf(["--constructor"])).toEqual(["unknown", "--constructor", undefined]);
    expect(reasonOf(["--"])).toEqual(["unknown", "--", undefined]);
    expect(reasonOf(["-t"])).toEqual(["missing_value", "--timeout", undefined]);
    expect(reasonOf(["--timeout"])).toEqual(["missing_value", "--timeout", undefined]);
    expect(reasonOf(["--timeout", "-1"])).toEqual(["value_looks_like_flag", "--timeout", "-1"]);
    expect(reasonOf(["--json=yes"])).toEqual(["unexpected_value", "--json", undefined]);
    expect(reasonOf(["-t", "1", "--timeout", "2"])).toEqual(["repeated", "--timeout", undefined]);
  });

  test("a repeated switch is harmless; repeatable flags keep every value in order", () => {
    expect({ ...parseFlags(["--json", "--json"], specs).values }).toEqual({ json: true });
    expect(parseFlags(["-e", "A", "-e", "A"], specs).values.env).toEqual(["A", "A"]);
  });
});
