/**
 * `sandboxes mcp`: the tools over stdio. stdout carries MCP messages only; people read stderr.
 * The session ends when the client closes stdin, when we get SIGINT/SIGTERM, or when the client
 * disappears (stdout breaks, or we are orphaned); then the session's sandboxes not kept go.
 */
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import type { Settings } from "../core/config";
import { VERSION } from "../cli/help-text";
import type { SessionDefaults } from "./core";
import { Session } from "./session";
import { registerTools } from "./tools";

const INSTRUCTIONS = [
  "Run untrusted code in isolated sandboxes: the local machine's namespace sandbox, Docker, or a cloud provider.",
  "Use run for one-off commands or code (a fresh sandbox each time).",
  "For work that spans calls (files, installed packages), create_sandbox once, pass its sandbox_id to run, write_file and read_file, and destroy_sandbox when done.",
  "Sandboxes this session creates are destroyed when it ends unless created with keep.",
].join(" ");

/** How often we look whether our parent (the client) is still there. */
const ORPHAN_CHECK_MS = 2000;

export interface ServeResult {
  /** Sandboxes created with keep, left running on purpose. */
  kept: Array<{ id: string; provider: string }>;
}

export async function serve(settings: Settings, defaults: SessionDefaults, signal: AbortSignal, log: (line: string) => void): Promise<ServeResult> {
  const session = new Session(settings, defaults);
  const server = new McpServer({ name: "sandboxes", version: VERSION }, { instructions: INSTRUCTIONS, capabilities: { tools: {} } });
  // Schema violations reach the client as one line, with the code our own errors carry.
  (server as unknown as { createToolError(message: string): unknown }).createToolError = (message: string) => ({
    content: [{ type: "text", text: `bad_arguments: ${message.replace(/^(MCP error -?\d+: )?(Input validation error: )?/, "").replace(/\s*\n\s*/g, "; ")}` }],
    isError: true,
  });
  registerTools(server, session);

  const transport = new StdioServerTransport();
  let finish!: (why: string) => void;
  const ended = new Promise<string>((resolve) => (finish = resolve));
  const onAbort = () => finish(String(signal.reason ?? "signal"));
  signal.addEventListener("abort", onAbort, { once: true });
  const onStdinEnd = () => finish("stdin closed");
  process.stdin.on("end", onStdinEnd);
  process.stdin.on("close", onStdinEnd);
  const onStdoutError = () => finish("stdout closed");
  process.stdout.on("error", onStdoutError);
  transport.onclose = () => finish("transport closed");
  const parent = process.ppid;
  const orphanCheck = setInterval(() => process.ppid !== parent && finish("client gone"), ORPHAN_CHECK_MS);

  try {
    await server.connect(transport);
    log(`serving MCP on stdio (session ${session.id}; sandboxes it creates carry the label mcp-session=${session.id})`);
    log(`session ending (${await ended}): removing its sandboxes`);
  } finally {
    clearInterval(orphanCheck);
    signal.removeEventListener("abort", onAbort);
    process.stdin.off("end", onStdinEnd);
    process.stdin.off("close", onStdinEnd);
    process.stdout.off("error", onStdoutError);
  }
  const kept = await session.end((message) => log(`warning: ${message}`));
  await server.close().catch(() => {});
  process.stdin.destroy();
  return { kept: kept.map((k) => ({ id: k.record.id, provider: k.provider.name })) };
}
