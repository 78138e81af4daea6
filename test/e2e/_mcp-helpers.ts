/**
 * An MCP client on the official SDK (Client + StdioClientTransport) driving the compiled binary's
 * `sandboxes mcp`, and the checks the mcp tests share.
 */
import { expect } from "bun:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { BINARY } from "../helpers";

export interface ToolResult {
  isError?: boolean;
  content: Array<{ type: string; text?: string }>;
  structuredContent?: Record<string, unknown>;
}

export class McpSession {
  readonly client = new Client({ name: "sandboxes-e2e", version: "0" });
  stderr = "";

  private constructor(readonly transport: StdioClientTransport) {}

  static async start(args: string[], env: Record<string, string>): Promise<McpSession> {
    const transport = new StdioClientTransport({ command: BINARY, args: ["mcp", ...args], env, stderr: "pipe" });
    const session = new McpSession(transport);
    transport.stderr?.on("data", (chunk: Buffer) => (session.stderr += chunk.toString("utf8")));
    await session.client.connect(transport);
    return session;
  }

  get pid(): number {
    return this.transport.pid!;
  }

  async call(name: string, args: Record<string, unknown>, options: { signal?: AbortSignal; timeout?: number } = {}): Promise<ToolResult> {
    return (await this.client.callTool({ name, arguments: args }, undefined, { signal: options.signal, timeout: options.timeout ?? 120_000 })) as ToolResult;
  }

  /** A successful call's structured result, checked against its text twin. */
  async ok<T = Record<string, unknown>>(name: string, args: Record<string, unknown>): Promise<T> {
    const result = await this.call(name, args);
    expect(result.isError ?? false, JSON.stringify(result.content)).toBe(false);
    expect(JSON.parse(result.content[0]!.text!)).toEqual(result.structuredContent);
    return result.structuredContent as T;
  }

  /** A failed call: one line, starting with the error code. */
  async fails(name: string, args: Record<string, unknown>, code: string): Promise<string> {
    const result = await this.call(name, args);
    expect(result.isError).toBe(true);
    expect(result.structuredContent).toBeUndefined();
    const text = result.content[0]!.text!;
    expect(text.split("\n")).toHaveLength(1);
    expect(text).toStartWith(`${code}: `);
    return text;
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

/** Polls `condition` until it holds (or fails the test after `limitMs`). */
export async function waitFor(condition: () => boolean | Promise<boolean>, what: string, limitMs = 30_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `sandboxes list --json` through the binary: what the CLI sees is left behind. */
export async function listed(env: Record<string, string>, provider: string, labels: Record<string, string> = {}): Promise<Array<{ id: string; labels: Record<string, string> }>> {
  const child = Bun.spawn([BINARY, "list", "-p", provider, "--json", ...Object.entries(labels).flatMap(([k, v]) => ["-l", `${k}=${v}`])], { env, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  if (code !== 0) throw new Error(`list failed (${code}): ${stderr}`);
  return (JSON.parse(stdout) as { sandboxes: Array<{ id: string; labels: Record<string, string> }> }).sandboxes;
}
