import { afterAll, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runClaude } from "../../src/core/claude";
import { loadSettings } from "../../src/core/config";
import type { InteractiveIO } from "../../src/core/interactive";
import { PROVIDERS } from "../../src/providers/catalog";
import { LOCAL_CAPABILITIES } from "../../src/providers/local";
import type { ProviderDescriptor } from "../../src/providers/types";
import { FakeProvider } from "../fakes/pty/provider";

// A cloud-like provider: files but no mounts, so DIR is uploaded; claude is "preinstalled".
const cloud = new FakeProvider("fakecloud", { ...LOCAL_CAPABILITIES, mounts: false });
cloud.onCreate = (dir) => {
  mkdirSync(join(dir, ".npm-global", "bin"), { recursive: true });
  const claude = join(dir, ".npm-global", "bin", "claude");
  writeFileSync(claude, '#!/bin/sh\necho "cwd=$(pwd)"\nls -A | sort | tr "\\n" " "; echo\necho "args=$*"\necho "token=${#CLAUDE_CODE_OAUTH_TOKEN} sandbox=$IS_SANDBOX"\n');
  chmodSync(claude, 0o755);
};
const registered = PROVIDERS as ProviderDescriptor[];
registered.push(cloud.descriptor());
const root = mkdtempSync(join(tmpdir(), "sandboxes-claude-core-"));
const settings = await loadSettings({ HOME: root, XDG_STATE_HOME: join(root, "state"), PATH: process.env.PATH, CLAUDE_CODE_OAUTH_TOKEN: "oauth-secret-value" });

afterAll(() => {
  registered.splice(registered.findIndex((d) => d.name === "fakecloud"), 1);
  cloud.cleanup();
  rmSync(root, { recursive: true, force: true });
});

/** A non-interactive IO that keeps the program's output and the notices. */
function collectingIO(): { io: InteractiveIO; out: string[]; notices: string[] } {
  const out: string[] = [];
  const notices: string[] = [];
  const io: InteractiveIO = {
    interactive: false,
    size: () => ({ cols: 80, rows: 24 }),
    terminalEnv: () => ({ TERM: "xterm-test" }),
    attach: async () => 1,
    stdin: () => new Response("").body!,
    sink: { stdout: (c) => out.push(new TextDecoder().decode(c)), stderr: (c) => out.push(new TextDecoder().decode(c)), info: (m) => notices.push(m) },
  };
  return { io, out, notices };
}

test("on a provider without mounts, DIR is uploaded respecting .gitignore and becomes claude's working directory", async () => {
  const project = join(root, "webapp");
  mkdirSync(join(project, "node_modules", "x"), { recursive: true });
  writeFileSync(join(project, ".gitignore"), "node_modules/\n.env\n");
  writeFileSync(join(project, "index.ts"), "export {};\n");
  writeFileSync(join(project, ".env"), "SECRET=1\n");
  const { io, out, notices } = collectingIO();
  const code = await runClaude(settings, { dir: project, provider: "fakecloud", keep: false, env: {}, args: ["--model", "x y"], signal: new AbortController().signal }, io);
  expect(code).toBe(0);
  const [cwd, listing, args, secrets] = out.join("").trimEnd().split("\n");
  expect(cwd).toMatch(/^cwd=.*\/fakecloud-\d+\/webapp$/);
  expect(listing).toBe(".gitignore index.ts ");
  expect(args).toBe("args=--model x y");
  expect(secrets).toBe(`token=${"oauth-secret-value".length} sandbox=1`);
  expect(notices).toHaveLength(1);
  expect(notices[0]).toMatch(new RegExp(`^uploading ${project} \\(respecting \\.gitignore\\) to (/.*/fakecloud-\\d+)/webapp; copy changes back with \`sandboxes cp fakecloud-\\d+:\\1/webapp DEST\`$`));
  expect(notices.join("") + out.join("")).not.toContain("oauth-secret-value");
  expect(cloud.alive.size).toBe(0);
  expect(existsSync(join(project, ".env"))).toBe(true);
});

test("the copy-back hint quotes a project directory's name for the shell it is pasted into", async () => {
  const project = join(root, "odd $(touch pwned) 'dir'");
  mkdirSync(project, { recursive: true });
  writeFileSync(join(project, "index.ts"), "export {};\n");
  const { io, notices } = collectingIO();
  expect(await runClaude(settings, { dir: project, provider: "fakecloud", keep: false, env: {}, args: [], signal: new AbortController().signal }, io)).toBe(0);
  const hint = /copy changes back with `sandboxes cp (.*) DEST`$/.exec(notices[0]!)?.[1];
  expect(hint).toBeDefined();
  // What a shell makes of it: one word, the sandbox's path to the project, nothing run.
  const words = Bun.spawnSync(["sh", "-c", `printf '%s\\n' ${hint}`], { cwd: root });
  expect(words.stdout.toString()).toMatch(/^fakecloud-\d+:\/.*\/odd \$\(touch pwned\) 'dir'\n$/);
  expect(existsSync(join(root, "pwned"))).toBe(false);
});
