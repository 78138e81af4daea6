import { describe, expect, test } from "bun:test";
import { jsonArg, envArgs, timeoutArg } from "../../src/cli/args";
import { parseCommandArgs } from "../../src/cli/parse";

const command = {
  meta: { name: "demo", description: "demo", usage: "sandboxes demo TARGET" },
  args: { target: { type: "positional", description: "t", required: true }, ...jsonArg, ...envArgs, ...timeoutArg },
} as const;

describe("parseCommandArgs", () => {
  test("every flag of the table is present: a switch false, a repeatable flag [], a value undefined", () => {
    const args = parseCommandArgs(command, ["box"]);
    expect({ ...args }).toEqual({ json: false, env: [], timeout: undefined, _: ["box"], "--": [] });
  });

  test("values as given: every -e kept in order, words after -- apart", () => {
    const args = parseCommandArgs(command, ["-e", "A=1", "box", "--json", "-e", "B", "-t5", "--", "-e", "x"]);
    expect({ ...args }).toEqual({ json: true, env: ["A=1", "B"], timeout: "5", _: ["box"], "--": ["-e", "x"] });
  });

  test("unknown flags (Object.prototype's names too), a repeated single-value flag and a missing positional are usage errors", () => {
    expect(() => parseCommandArgs(command, ["box", "--constructor"])).toThrow('unknown flag --constructor for "demo" (see sandboxes demo --help)');
    expect(() => parseCommandArgs(command, ["box", "--jsn"])).toThrow("did you mean --json?");
    expect(() => parseCommandArgs(command, ["box", "-t", "1", "-t", "2"])).toThrow("--timeout given more than once (it takes one value)");
    expect(() => parseCommandArgs(command, [])).toThrow("missing TARGET: usage: sandboxes demo TARGET");
  });
});
