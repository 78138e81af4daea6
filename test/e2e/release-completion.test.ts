/**
 * `sandboxes completion bash|zsh|fish` through the compiled binary: each script parses in its
 * shell, covers every registered command, and completes commands, flags and flag values.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { COMMANDS } from "../../src/cli/registry";
import { providerNames } from "../../src/providers/catalog";
import { buildDevBinary, run, tempHome } from "./_release-helpers";

// Spawns binaries, shells and servers: independent of whichever bunfig.toml is in effect.
setDefaultTimeout(60_000);

let binary: string;
const home = tempHome("sandboxes-completion-");
const scripts: Record<string, string> = {};

beforeAll(async () => {
  binary = await buildDevBinary();
  for (const shell of ["bash", "zsh", "fish"]) {
    const result = await run([binary, "completion", shell], { env: home.env });
    if (result.code !== 0 || result.stderr) throw new Error(`completion ${shell} failed: ${result.stderr}`);
    scripts[shell] = join(home.home, `completion.${shell}`);
    writeFileSync(scripts[shell]!, result.stdout);
  }
}, 120_000);
afterAll(() => home.remove());

const sh = (argv: string[]) => run(argv, { env: home.env });

describe("completion scripts parse", () => {
  test("bash -n and shellcheck", async () => {
    expect(await sh(["bash", "-n", scripts.bash!])).toEqual({ code: 0, stdout: "", stderr: "" });
    expect(await sh(["shellcheck", "-s", "bash", scripts.bash!])).toEqual({ code: 0, stdout: "", stderr: "" });
  });
  test("zsh -n, and compinit registers it", async () => {
    expect(await sh(["zsh", "-n", scripts.zsh!])).toEqual({ code: 0, stdout: "", stderr: "" });
    const loaded = await sh(["zsh", "-f", "-c", `autoload -U compinit && compinit -u -D && source ${scripts.zsh} && print -r -- $_comps[sandboxes]`]);
    expect(loaded).toEqual({ code: 0, stdout: "_sandboxes\n", stderr: "" });
  });
  test("fish -n", async () => {
    expect(await sh(["fish", "--no-config", "-n", scripts.fish!])).toEqual({ code: 0, stdout: "", stderr: "" });
  });
});

describe("completion scripts cover the command registry", () => {
  test.each(["bash", "zsh", "fish"])("%s names every command", async (shell) => {
    const text = await Bun.file(scripts[shell]!).text();
    for (const name of Object.keys(COMMANDS)) expect(text).toMatch(new RegExp(`\\b${name}\\b`));
  });
});

/** What bash offers for a command line ending in `words` (the last word is being completed). */
async function bashComplete(...words: string[]): Promise<string[]> {
  const quoted = ["sandboxes", ...words].map((w) => `'${w}'`).join(" ");
  const result = await sh(["bash", "-c", `source ${scripts.bash}; COMP_WORDS=(${quoted}); COMP_CWORD=${words.length}; _sandboxes; printf '%s\\n' "\${COMPREPLY[@]}"`]);
  expect(result.stderr).toBe("");
  return result.stdout.split("\n").filter(Boolean);
}

async function fishComplete(line: string): Promise<string[]> {
  const result = await sh(["fish", "--no-config", "-c", `source ${scripts.fish}; complete -C '${line}'`]);
  expect(result.stderr).toBe("");
  return result.stdout.split("\n").filter(Boolean).map((l) => l.split("\t")[0]!);
}

describe("bash completes", () => {
  test("commands", async () => {
    expect(await bashComplete("pro")).toEqual(["providers"]);
    expect(await bashComplete("")).toEqual(expect.arrayContaining([...Object.keys(COMMANDS), "--help", "--version"]));
  });
  test("flags from the command's flag table", async () => {
    expect(await bashComplete("run", "--pro")).toEqual(["--provider"]);
    expect(await bashComplete("exec", "--wo")).toEqual(["--workdir"]);
  });
  test("flag values from the provider registry and from value hints", async () => {
    expect(await bashComplete("run", "-p", "")).toEqual(providerNames());
    expect(await bashComplete("run", "--provider", "=", "")).toEqual(providerNames());
    expect(await bashComplete("run", "--network", "")).toEqual(["default", "none", "host"]);
  });
  test("positional values for help and completion; nothing after --", async () => {
    expect(await bashComplete("help", "exit")).toEqual(["exit-codes"]);
    expect(await bashComplete("completion", "")).toEqual(["bash", "zsh", "fish"]);
    expect(await bashComplete("run", "--", "--pro")).toEqual([]);
  });
});

/** What zsh offers: an interactive zsh on a pty (zsh/zpty) with compadd wrapped to print matches. */
async function zshComplete(line: string): Promise<string[]> {
  const result = await run(["zsh", "-f", join(import.meta.dir, "_release-zsh-complete.zsh")], {
    env: { ...home.env, COMP_SCRIPT: scripts.zsh!, COMP_LINE: line },
  });
  expect(result.code).toBe(0);
  return result.stdout.split("\n").filter(Boolean);
}

describe("zsh completes", () => {
  test("commands and global flags", async () => {
    expect(await zshComplete("sandboxes ")).toEqual(Object.keys(COMMANDS).sort());
    expect(await zshComplete("sandboxes -")).toEqual(["--help", "--version", "-h", "-v"]);
  });
  test("flags, including those whose descriptions need escaping", async () => {
    // run's flag table has quotes, brackets and colons in descriptions.
    expect(await zshComplete("sandboxes run --pro")).toEqual(["--provider"]);
    expect(await zshComplete("sandboxes exec --w")).toEqual(["--workdir"]);
  });
  test("values", async () => {
    expect(await zshComplete("sandboxes run -p ")).toEqual(providerNames().sort());
    expect(await zshComplete("sandboxes run --network ")).toEqual(["default", "host", "none"]);
    expect(await zshComplete("sandboxes completion ")).toEqual(["bash", "fish", "zsh"]);
  });
});

describe("fish completes", () => {
  test("commands, flags and values", async () => {
    expect(await fishComplete("sandboxes pro")).toEqual(["providers"]);
    expect(await fishComplete("sandboxes run --pro")).toEqual(["--provider"]);
    expect((await fishComplete("sandboxes run -p ")).sort()).toEqual(providerNames().sort());
    expect((await fishComplete("sandboxes completion ")).sort()).toEqual(["bash", "fish", "zsh"]);
  });
});

test("an unknown shell is a usage error naming the supported ones", async () => {
  const result = await run([binary, "completion", "powershell"], { env: home.env });
  expect(result).toEqual({ code: 2, stdout: "", stderr: 'sandboxes: unknown shell "powershell": use one of bash, zsh, fish\n' });
  const missing = await run([binary, "completion"], { env: home.env });
  expect(missing.code).toBe(2);
  expect(missing.stderr).toBe("sandboxes: missing SHELL: usage: sandboxes completion bash|zsh|fish\n");
});
