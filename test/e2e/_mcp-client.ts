/**
 * A client that the mcp tests kill: starts `sandboxes mcp` with the official SDK's stdio
 * transport, creates one sandbox, prints `{server_pid, sandbox_id}` and waits to be killed.
 *
 *   bun test/e2e/_mcp-client.ts BINARY [SERVER ARGS…]   (the server gets this process's env)
 */
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

const [binary, ...args] = process.argv.slice(2);
const transport = new StdioClientTransport({ command: binary!, args, env: process.env as Record<string, string>, stderr: "inherit" });
const client = new Client({ name: "killed-client", version: "0" });
await client.connect(transport);
const created = await client.callTool({ name: "create_sandbox", arguments: {} });
if (created.isError) throw new Error(JSON.stringify(created.content));
process.stdout.write(`${JSON.stringify({ server_pid: transport.pid, sandbox_id: (created.structuredContent as { sandbox_id: string }).sandbox_id })}\n`);
await new Promise(() => {});
