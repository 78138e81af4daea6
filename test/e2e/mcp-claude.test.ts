/**
 * Claude Code itself (from npm) registers `sandboxes mcp` and reports it connected.
 *
 * Claude runs inside a network namespace of its own (`unshare -rn`, only loopback): even for
 * `mcp add` and `mcp list` it tries api.anthropic.com (policy limits, remote settings), which it
 * does not need for either; in the namespace those attempts fail at once and nothing leaves the
 * machine. npm itself runs outside, to reach the npm registry.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureBinary } from "./_docker-helpers";
import { BINARY, cli } from "../helpers";

setDefaultTimeout(120_000);

const canIsolate = Bun.spawnSync(["unshare", "-rn", "true"]).exitCode === 0;
const work = mkdtempSync(join(tmpdir(), "sandboxes-mcp-claude-"));
const prefix = join(work, "npm");
const home = join(work, "home");
const project = join(home, "project");
let claude = "";

beforeAll(async () => {
  await ensureBinary();
  mkdirSync(project, { recursive: true });
  const install = Bun.spawn(["npm", "install", "--prefix", prefix, "--no-audit", "--no-fund", "--loglevel=error", "@anthropic-ai/claude-code"], { stdout: "pipe", stderr: "pipe", env: { ...process.env, npm_config_cache: join(work, "npm-cache") } });
  if ((await install.exited) !== 0) throw new Error(`npm install @anthropic-ai/claude-code failed:\n${await new Response(install.stderr).text()}`);
  claude = join(prefix, "node_modules", ".bin", "claude");
}, 300_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

const ENV = {
  HOME: home,
  XDG_CONFIG_HOME: join(home, ".config"),
  XDG_STATE_HOME: join(home, ".local/state"),
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  NO_COLOR: "1",
  DISABLE_TELEMETRY: "1",
  DISABLE_ERROR_REPORTING: "1",
  DISABLE_AUTOUPDATER: "1",
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
};

/** `claude ARGS` in a network namespace with only loopback, in the project directory (by default). */
async function runClaude(args: string[], cwd = project): Promise<{ code: number; output: string }> {
  const script = 'ip link set lo up 2>/dev/null; exec "$@"';
  const child = Bun.spawn(["unshare", "-rn", "sh", "-c", script, "sh", claude, ...args], { cwd, env: ENV, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { code, output: stdout + stderr };
}

const line = (output: string, name: string) => output.split("\n").find((l) => l.startsWith(`${name}: `));

describe.skipIf(!canIsolate)("Claude Code registers `sandboxes mcp`", () => {
  test("`claude mcp add` then `claude mcp list` reports the server connected", async () => {
    const added = await runClaude(["mcp", "add", "sandboxes", "--", BINARY, "mcp", "--provider", "local"]);
    expect(added.code).toBe(0);
    expect(added.output).toContain("Added stdio MCP server sandboxes");
    // A server that cannot start, as the control: the health check tells them apart.
    expect((await runClaude(["mcp", "add", "broken", "--", "/nonexistent/server"])).code).toBe(0);

    const listed = await runClaude(["mcp", "list"]);
    expect(listed.code).toBe(0);
    expect(line(listed.output, "sandboxes")).toMatch(new RegExp(`^sandboxes: ${BINARY} mcp --provider local - . Connected$`));
    expect(line(listed.output, "broken")).toContain("Failed to connect");
    expect((await runClaude(["mcp", "remove", "broken"])).code).toBe(0);
  });

  test("the entry that `sandboxes mcp config claude --write` merges into ~/.claude.json is one Claude Code connects to", async () => {
    const written = await cli(["mcp", "config", "claude", "--write", "--yes", "--network", "none"], { env: ENV, cwd: home });
    expect(written.code).toBe(0);
    const config = JSON.parse(readFileSync(join(home, ".claude.json"), "utf8")) as { mcpServers: Record<string, unknown>; projects: Record<string, { mcpServers?: Record<string, unknown> }> };
    expect(config.mcpServers.sandboxes).toEqual({ type: "stdio", command: BINARY, args: ["mcp", "--network", "none"], env: {} });
    // What Claude Code wrote before (the project-scoped server of the test above) is still there.
    expect(config.projects[project]?.mcpServers?.sandboxes).toBeDefined();

    // Outside that project only the user-scoped entry applies.
    const listed = await runClaude(["mcp", "list"], home);
    expect(listed.code).toBe(0);
    expect(line(listed.output, "sandboxes")).toMatch(new RegExp(`^sandboxes: ${BINARY} mcp --network none - . Connected$`));
  });
});
