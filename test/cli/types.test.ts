/**
 * The promises the types make, checked by the compiler on fixtures: the command name type is the
 * union of the registry's names (so tables keyed by it must name every command, and
 * Object.prototype's names are not commands), and defineCommand infers each flag's type.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import ts from "typescript";
import { COMMANDS } from "../../src/cli/registry";

const ROOT = resolve(import.meta.dir, "../..");
const dir = mkdtempSync(join(tmpdir(), "sandboxes-types-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const header = `
import { COMMANDS, SUMMARIES, type CommandName } from ${JSON.stringify(join(ROOT, "src/cli/registry"))};
import { defineCommand } from ${JSON.stringify(join(ROOT, "src/cli/command"))};
import { jsonArg, envArgs } from ${JSON.stringify(join(ROOT, "src/cli/args"))};
export {};
`;

/** Compiles the fixtures together with the project's options; returns each fixture's errors. */
function compile(fixtures: Record<string, string>): Record<string, string[]> {
  const config = ts.readConfigFile(join(ROOT, "tsconfig.json"), ts.sys.readFile).config;
  const { options } = ts.parseJsonConfigFileContent(config, ts.sys, ROOT);
  const files = Object.fromEntries(Object.entries(fixtures).map(([name, body]) => [name, join(dir, `${name}.ts`)]));
  for (const [name, body] of Object.entries(fixtures)) writeFileSync(files[name]!, header + body);
  const program = ts.createProgram(Object.values(files), { ...options, incremental: false, noEmit: true });
  const errors: Record<string, string[]> = Object.fromEntries(Object.keys(fixtures).map((name) => [name, []]));
  for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
    const owner = Object.keys(files).find((name) => diagnostic.file?.fileName === files[name]);
    const text = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n").split("\n")[0]!;
    if (owner) errors[owner]!.push(`TS${diagnostic.code}: ${text}`);
    else throw new Error(`the project itself does not type-check: ${diagnostic.file?.fileName}: ${text}`);
  }
  return errors;
}

const names = Object.keys(COMMANDS);
const table = (keys: string[]) => `{ ${keys.map((k) => `${JSON.stringify(k)}: true`).join(", ")} }`;

describe("the type check", () => {
  // One program for every fixture: building it costs seconds.
  const errors = compile({
    complete: `const covered: Record<CommandName, true> = ${table(names)};`,
    missingEntry: `const covered: Record<CommandName, true> = ${table(names.filter((n) => n !== "cp"))};`,
    prototypeName: `const name: CommandName = "constructor";`,
    newCommandWithoutHelp: `
      const EXTENDED = { ...COMMANDS, extra: COMMANDS.run };
      const summaries: Readonly<Record<keyof typeof EXTENDED, string>> = SUMMARIES;`,
    inferred: `
      defineCommand({
        meta: { name: "x", description: "x" },
        args: { ...jsonArg, ...envArgs, name: { type: "string", description: "n" }, target: { type: "positional", description: "t" } },
        toOptions(args) {
          const json: boolean = args.json;
          const env: string[] = args.env;
          const name: string | undefined = args.name;
          const rest: string[] = args._;
          return { json, env, name, rest };
        },
        run: async (options) => (options.json ? options.env.length : 0),
      });`,
    misused: `
      defineCommand({
        meta: { name: "x", description: "x" },
        args: { ...jsonArg, name: { type: "string", description: "n" } },
        toOptions(args) {
          const name: string = args.name;
          return { flag: args.nosuchflag };
        },
        run: async () => 0,
      });`,
  });

  test("a table keyed by CommandName that names every command compiles, as does flag use that follows the table", () => {
    expect(errors.complete).toEqual([]);
    expect(errors.inferred).toEqual([]);
  });

  test("a new command without a help entry (SUMMARIES), or without an entry in any such table, fails the type check", () => {
    expect(errors.newCommandWithoutHelp).toEqual([expect.stringMatching(/^TS2741: Property 'extra' is missing/)]);
    expect(errors.missingEntry).toEqual([expect.stringMatching(/^TS2741: Property 'cp' is missing/)]);
  });

  test("Object.prototype names are not command names", () => {
    // The name type is the union of the registry's names, not string.
    expect(errors.prototypeName).toEqual([expect.stringMatching(/^TS2322: Type '"constructor"' is not assignable to type '"\w+"( \| "\w+")+'\.$/)]);
  });

  test("defineCommand types each flag from its table: an optional string is not a string, an undeclared flag does not exist", () => {
    expect(errors.misused).toEqual([
      expect.stringMatching(/^TS2322: Type 'string \| undefined' is not assignable to type 'string'/),
      expect.stringMatching(/^TS2339: Property 'nosuchflag' does not exist/),
    ]);
  });
});
