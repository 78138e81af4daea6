import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { ensureBinary, makeHome, run, sandboxIds, Terminal, type TestHome } from "./_pty-helpers";
import { requireMachine } from "../helpers";

let home: TestHome;
let terminal: Terminal | undefined;

requireMachine({ commands: ["tmux", "npm"] });
beforeAll(() => {
  ensureBinary();
  home = makeHome("sandboxes-claude-");
});
afterEach(() => {
  terminal?.close();
  terminal = undefined;
});
afterAll(() => home.cleanup());

const VERSION_LINE = /^\d+\.\d+\.\d+ \(Claude Code\)$/m;

describe("sandboxes claude on the local provider (real npm package)", () => {
  test("installs @anthropic-ai/claude-code from npm and runs `--version` through the PTY", async () => {
    terminal = new Terminal(home, ["claude", "-p", "local", "--", "--version"]);
    const code = await terminal.exitCode(240_000);
    const screen = terminal.screen();
    expect(screen).toContain("installing Claude Code (@anthropic-ai/claude-code) from npm into the sandbox");
    expect(screen).toMatch(VERSION_LINE);
    expect(code).toBe(0);
    expect(terminal.sttyAfter()).toBe(terminal.sttyBefore());
    expect(await sandboxIds(home)).toEqual([]);
  }, 300_000);

  test("DIR is mounted read-write as the working directory of a named sandbox that --list shows and -n resumes", async () => {
    const project = join(home.dir, "myproject");
    mkdirSync(project);
    writeFileSync(join(project, "README.md"), "hello\n");
    // As root the local provider runs programs as an unprivileged uid: let it write here.
    if (process.getuid?.() === 0) chmodSync(project, 0o777);

    const first = await run(home, ["claude", project, "-n", "proj", "--", "--version"]);
    expect(first.stdout).toMatch(VERSION_LINE);
    expect(first.code).toBe(0);
    expect(first.stderr).toContain("attach again with sandboxes claude -n proj");
    expect(first.stderr).not.toContain("not writable");

    const plain = await run(home, ["claude", "--list"]);
    expect(plain.code).toBe(0);
    const [header, row] = plain.stdout.trimEnd().split("\n");
    expect(header).toBe("NAME\tID\tPROVIDER\tSTATE\tWORKDIR\tAGE");
    expect(row).toMatch(new RegExp(`^proj\\tlocal-[0-9a-f]{12}\\tlocal\\trunning\\t/workspace/${basename(project)}\\t\\d+[smhd]$`));
    const json = JSON.parse((await run(home, ["claude", "--list", "--json"])).stdout);
    expect(json).toMatchObject({ sandboxes: [{ name: "proj", provider: "local", state: "running", workdir: `/workspace/${basename(project)}` }], warnings: [] });

    // Swap the installed claude for a probe that reports where and how it was started.
    const probe = [
      "#!/bin/sh",
      'echo "cwd=$(pwd)"',
      'for a in "$@"; do echo "arg=$a"; done',
      'echo "key-length=${#ANTHROPIC_API_KEY}"',
      'echo "written by the sandbox" > from-sandbox.txt',
    ].join("\n");
    const install = await run(home, ["exec", "proj", 'cat > "$HOME/.npm-global/bin/claude.probe" && chmod +x "$HOME/.npm-global/bin/claude.probe" && ln -sf claude.probe "$HOME/.npm-global/bin/claude"'], { stdin: probe });
    expect(install.code).toBe(0);

    const secret = "sk-ant-test-not-a-real-key-0123456789";
    const resumed = await run(home, ["claude", "-n", "proj", "--", "-p", "two words"], { env: { ANTHROPIC_API_KEY: secret } });
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toBe(`cwd=/workspace/${basename(project)}\narg=-p\narg=two words\nkey-length=${secret.length}\n`);
    expect(resumed.stderr).toMatch(/attaching to sandbox proj \(local-[0-9a-f]{12}\) on local/);
    expect(resumed.stderr + resumed.stdout).not.toContain(secret);
    expect(readFileSync(join(project, "from-sandbox.txt"), "utf8")).toBe("written by the sandbox\n");

    const other = join(home.dir, "other");
    mkdirSync(other);
    const mismatch = await run(home, ["claude", other, "-n", "proj", "--", "--version"]);
    expect(mismatch.code).toBe(125);
    expect(mismatch.stderr).toContain(`sandbox proj works on ${project}; a directory is mounted only when the sandbox is created`);

    expect((await run(home, ["destroy", "proj"])).code).toBe(0);
    expect(await sandboxIds(home)).toEqual([]);
    expect(existsSync(join(project, "README.md"))).toBe(true);
  }, 300_000);
});

describe("sandboxes claude: arguments", () => {
  test("--list with nothing to show: a hint on stderr, an empty JSON list", async () => {
    const fresh = makeHome("sandboxes-claude-empty-");
    try {
      const plain = await run(fresh, ["claude", "--list"]);
      expect(plain).toMatchObject({ code: 0, stdout: "" });
      expect(plain.stderr).toContain("no Claude sandboxes");
      const json = await run(fresh, ["claude", "--list", "--json"]);
      expect(JSON.parse(json.stdout)).toEqual({ sandboxes: [], warnings: [] });
    } finally {
      fresh.cleanup();
    }
  });

  test("a missing DIR fails before any sandbox is created", async () => {
    const result = await run(home, ["claude", join(home.dir, "does-not-exist")]);
    expect(result.code).toBe(125);
    expect(result.stderr).toMatch(/^sandboxes: .*does-not-exist: no such directory/);
    expect(await sandboxIds(home)).toEqual([]);
  });

  test("--list takes no DIR", async () => {
    const result = await run(home, ["claude", "--list", "."]);
    expect(result.code).toBe(125);
    expect(result.stderr).toContain("--list takes no DIR");
  });
});
