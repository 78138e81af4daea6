/**
 * Property-based fuzzing of the compiled binary, generated from each command's flag table
 * (src/commands/*.ts args): random flags (long, short, `--flag=value`), hostile values and
 * positionals, on a fresh HOME each time. Invariants:
 *   - the exit code is in the documented set for that command;
 *   - no stack trace and no "internal error" on stderr;
 *   - with --json, exactly one JSON document on stdout;
 *   - no sandbox left behind unless one was kept (--keep, --reuse);
 *   - user keys (labels) round-trip through list --json and filter exactly.
 * A fixed seed and a small number of runs in CI; FUZZ_RUNS raises the count, FUZZ_SEED changes it.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { COMMANDS, type CommandName } from "../../src/cli/registry";
import type { FlagDef } from "../../src/cli/args";
import { BINARY, localSandboxesLeft, machines } from "../helpers";

const SEED = Number(process.env.FUZZ_SEED ?? 20261213);
const RUNS = Number(process.env.FUZZ_RUNS ?? 30);
const { machine, removeAll } = machines();
afterAll(removeAll);

/** shell and claude need a terminal and are fuzzed by their PTY tests instead. */
const FUZZED = ["run", "exec", "list", "destroy", "cp", "providers", "test", "help", "completion"] as const satisfies readonly CommandName[];
const TABLES = Object.fromEntries(await Promise.all(FUZZED.map(async (name) => [name, (await COMMANDS[name]()).default.args as Record<string, FlagDef>] as const)));

/** Exit codes each command may give: run/exec pass the program's through (the pool's programs exit 0-3, 126, 127). */
const PROGRAMS = new Set([0, 1, 2, 3, 124, 125, 126, 127]);
const PLAIN = new Set([0, 1, 2]);
const allowedCodes = (name: string) => (name === "run" || name === "exec" ? PROGRAMS : PLAIN);

const HOSTILE = ["__proto__", "constructor", "toString", "hasOwnProperty", "", "-", "--", "-x", "=", "é\tx\n", "a".repeat(300)];
/** Values for a flag: the hostile pool plus ones that make sense for it. */
function valuesFor(flag: string, files: { script: string; env: string }): string[] {
  const pools: Record<string, string[]> = {
    provider: ["local", "bogus", "e2b", "docker", "__proto__"],
    env: ["A=b", "__proto__=1", "constructor", "1BAD=x", "=x", "PATH=/nonexistent"],
    label: ["k=v", "__proto__=x", "constructor=y", "sandboxes.x=1", "novalue", "=v"],
    timeout: ["0.5", "1ms", "3d", "2147484", "0", "-1", "abc"],
    "max-output": ["0", "10", "1k", "2g", "x", "-5"],
    file: [files.script, "missing.py", "."],
    "env-file": [files.env, "missing.env"],
    lang: ["python", "bogus", "__proto__"],
    name: ["box", "__proto__", "constructor"],
    upload: [`${files.script}:/tmp/main.py`, "missing", ":x"],
    download: ["/etc/hostname:out.txt", "/nonexistent", ":x"],
    network: ["none", "default", "bogus"],
    cpus: ["1", "0", "-2", "x"],
    memory: ["512m", "0", "lots"],
    ttl: ["60", "0", "x"],
    workdir: ["/tmp/w", "relative", "/"],
    image: ["sandboxes-test/busybox", "__proto__"],
  };
  return [...(pools[flag] ?? []), ...HOSTILE];
}

const POSITIONALS: Record<string, string[]> = {
  run: ["true", "echo hi", "exit 3", "printf '\\377\\376'", "echo err >&2; exit 1", "nosuchprogram"],
  exec: ["nope", "__proto__", "local-000000000000", "true"],
  list: ["extra"],
  destroy: ["nope", "__proto__", "constructor"],
  cp: ["nope:/tmp/x", "a", "local-0:/etc/hostname"],
  providers: ["extra"],
  test: ["extra"],
  help: ["exit-codes", "run", "toString", "__proto__", "nope"],
  completion: ["bash", "zsh", "fish", "constructor"],
};

/** One command line for `name`: some flags from its table (in any spelling), some positionals, maybe `--` and words. */
function commandLine(name: (typeof FUZZED)[number], files: { script: string; env: string }): fc.Arbitrary<string[]> {
  const flags = Object.entries(TABLES[name]!).filter(([, def]) => def.type !== "positional");
  if (flags.length === 0) return fc.array(fc.constantFrom(...POSITIONALS[name]!), { maxLength: 2 }).map((positionals) => [name, ...positionals]);
  const flagArg = fc.constantFrom(...flags).chain(([flag, def]) => {
    const spellings = [`--${flag}`, ...(def.alias ? [`-${def.alias}`] : [])];
    if (def.type === "boolean") return fc.constantFrom(...spellings).map((s) => [s]);
    return fc.tuple(fc.constantFrom(...spellings), fc.constantFrom(...valuesFor(flag, files)), fc.boolean()).map(([spelling, value, joined]) =>
      joined && spelling.startsWith("--") ? [`${spelling}=${value}`] : [spelling, value],
    );
  });
  return fc
    .tuple(
      fc.array(flagArg, { maxLength: 4 }),
      fc.array(fc.constantFrom(...POSITIONALS[name]!), { maxLength: 2 }),
      fc.option(fc.array(fc.constantFrom("a b", "-x", "--json", "__proto__"), { maxLength: 2 }), { nil: undefined }),
    )
    .map(([flagArgs, positionals, after]) => [name, ...positionals, ...flagArgs.flat(), ...(after ? ["--", ...after] : [])]);
}

/** Runs the binary; a hang is killed and reported rather than stalling the suite. */
async function sandboxes(args: string[], env: Record<string, string>, cwd: string) {
  const child = Bun.spawn([BINARY, ...args], { env, cwd, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const guard = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  clearTimeout(guard);
  return { code, stdout, stderr };
}

/** Where `--json` counts: a flag of the command, before `--`, and not a request for help. */
function wantsJson(args: string[]): boolean {
  const before = args.includes("--") ? args.slice(0, args.indexOf("--")) : args;
  return before.includes("--json") && !before.includes("--help") && !before.includes("-h") && "json" in TABLES[args[0]!]!;
}

function kept(args: string[]): boolean {
  const before = args.includes("--") ? args.slice(0, args.indexOf("--")) : args;
  return before.includes("--keep") || before.includes("--reuse");
}

describe("fuzzing the CLI from its flag tables", () => {
  test(`every command line keeps the contract (${RUNS} runs, seed ${SEED})`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...FUZZED).chain((name) => {
          const { env, home } = machine();
          const files = { script: join(home, "main.py"), env: join(home, "vars.env") };
          return commandLine(name, files).map((args) => ({ args, env, home, files }));
        }),
        async ({ args, env, home, files }) => {
          writeFileSync(files.script, "print('from a file')\n");
          writeFileSync(files.env, "FROM_FILE=1\n# comment\n");
          mkdirSync(join(home, "work"), { recursive: true });
          const r = await sandboxes(args, env, join(home, "work"));
          const context = { args, code: r.code, stderr: r.stderr.slice(0, 500) };
          expect({ ...context, allowed: allowedCodes(args[0]!).has(r.code) }).toEqual({ ...context, allowed: true });
          expect(r.stderr).not.toMatch(/^\s+at .+[:(]\d+:\d+\)?$/m);
          expect(r.stderr).not.toMatch(/internal error|this is a bug/);
          if (wantsJson(args)) expect(() => JSON.parse(r.stdout)).not.toThrow();
          if (!kept(args)) expect({ args, left: localSandboxesLeft(env) }).toEqual({ args, left: [] });
        },
      ),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
  }, 600_000);

  test("label keys and values round-trip through list --json and filter exactly", async () => {
    const key = fc.oneof(fc.constantFrom("__proto__", "constructor", "toString", "valueOf", "hasOwnProperty"), fc.stringMatching(/^[a-z_][a-z0-9_.-]{0,12}$/));
    const value = fc.stringMatching(/^[A-Za-z0-9_.=-]{0,16}$/);
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(fc.tuple(key, value), { minLength: 1, maxLength: 3, selector: ([k]) => k }), async (labels) => {
        const { env, home } = machine();
        const made = await sandboxes(["run", "--keep", "--json", ...labels.flatMap(([k, v]) => ["-l", `${k}=${v}`]), "true"], env, home);
        const id = JSON.parse(made.stdout).sandbox_id as string;
        const listed = JSON.parse((await sandboxes(["list", "--json"], env, home)).stdout).sandboxes as Array<{ id: string; labels: Record<string, string> }>;
        expect(listed.map((s) => [s.id, Object.entries(s.labels).sort()])).toEqual([[id, [...labels].sort()]]);
        const [k, v] = labels[0]!;
        const filtered = JSON.parse((await sandboxes(["list", "--json", "-l", `${k}=${v}`], env, home)).stdout).sandboxes as Array<{ id: string }>;
        expect(filtered.map((s) => s.id)).toEqual([id]);
        const other = JSON.parse((await sandboxes(["list", "--json", "-l", `${k}=${v}-other`], env, home)).stdout).sandboxes as unknown[];
        expect(other).toEqual([]);
      }),
      { seed: SEED, numRuns: Math.max(3, Math.round(RUNS / 6)), endOnFailure: true },
    );
  }, 600_000);
});
