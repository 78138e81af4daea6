/**
 * `sandboxes mcp config`: the snippet that registers the server with an MCP client, and the
 * merge of that entry into the client's config file (other entries untouched, atomic rename).
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, realpathSync, renameSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { homeDir } from "../core/config";
import { SandboxesError } from "../base/errors";
import { shellQuote } from "../base/quote";

export const CLIENTS = ["claude", "cursor", "vscode", "json"] as const;
export type Client = (typeof CLIENTS)[number];

/** The server's registered name in every client. */
export const SERVER_NAME = "sandboxes";

export interface Launch {
  command: string;
  args: string[];
}

interface ClientFormat {
  /** The config file --write merges into; undefined: printing only. */
  file?(env: Record<string, string | undefined>, cwd: string): string;
  /** The key under which servers live in that file. */
  key: "mcpServers" | "servers";
  entry(launch: Launch): Record<string, unknown>;
}

const FORMATS: Record<Client, ClientFormat> = {
  // What `claude mcp add --scope user` writes: top-level mcpServers in ~/.claude.json.
  claude: {
    file: (env) => join(env.CLAUDE_CONFIG_DIR || homeDir(env), ".claude.json"),
    key: "mcpServers",
    entry: (launch) => ({ type: "stdio", command: launch.command, args: launch.args, env: {} }),
  },
  cursor: { file: (env) => join(homeDir(env), ".cursor", "mcp.json"), key: "mcpServers", entry: (launch) => ({ command: launch.command, args: launch.args }) },
  vscode: { file: (_env, cwd) => join(cwd, ".vscode", "mcp.json"), key: "servers", entry: (launch) => ({ type: "stdio", command: launch.command, args: launch.args }) },
  json: { key: "mcpServers", entry: (launch) => ({ command: launch.command, args: launch.args }) },
};

/**
 * How a client starts this server: `sandboxes` when that is us on PATH, else this binary's own
 * path (a compiled binary that is not on PATH), so the entry works as written.
 */
export function launchCommand(serveArgs: string[], path = process.env.PATH): Launch {
  const onPath = Bun.which("sandboxes", { PATH: path ?? "" });
  const compiled = Bun.main.startsWith("/$bunfs/") || Bun.main.startsWith("B:/~BUN/");
  let command = "sandboxes";
  if (compiled && (!onPath || realpathSync(onPath) !== realpathSync(process.execPath))) command = process.execPath;
  return { command, args: ["mcp", ...serveArgs] };
}

/** What to print on stdout for `mcp config CLIENT`. */
export function snippet(client: Client, launch: Launch): string {
  if (client === "claude") return `claude mcp add --scope user ${SERVER_NAME} -- ${[launch.command, ...launch.args].map(shellQuote).join(" ")}\n`;
  const format = FORMATS[client];
  return `${JSON.stringify({ [format.key]: { [SERVER_NAME]: format.entry(launch) } }, null, 2)}\n`;
}

export interface ConfigChange {
  path: string;
  /** The entry as the file has it now (undefined: none). */
  before?: unknown;
  after: Record<string, unknown>;
  /** The whole new document. */
  document: Record<string, unknown>;
  unchanged: boolean;
}

/** Reads the client's file and merges our entry in, without writing. */
export function planChange(client: Client, launch: Launch, env: Record<string, string | undefined>, cwd: string): ConfigChange {
  const format = FORMATS[client];
  if (!format.file) throw new SandboxesError("bad_value", `--write needs a client with a config file: ${CLIENTS.filter((c) => FORMATS[c].file).join(", ")}`, "usage");
  const path = format.file(env, cwd);
  let document: Record<string, unknown> = {};
  if (existsSync(path)) {
    const text = readFileSync(path, "utf8");
    try {
      document = text.trim() ? (JSON.parse(text) as Record<string, unknown>) : {};
    } catch (error) {
      throw new SandboxesError("bad_config", `cannot parse ${path}: ${(error as Error).message}`, "user", "fix the JSON (comments are not supported) or add the entry by hand from `sandboxes mcp config`");
    }
    if (typeof document !== "object" || document === null || Array.isArray(document)) throw new SandboxesError("bad_config", `${path} is not a JSON object`, "user");
  }
  const servers = document[format.key];
  if (servers !== undefined && (typeof servers !== "object" || servers === null || Array.isArray(servers))) {
    throw new SandboxesError("bad_config", `"${format.key}" in ${path} is not an object`, "user", "fix it by hand");
  }
  const before = (servers as Record<string, unknown> | undefined)?.[SERVER_NAME];
  const after = format.entry(launch);
  const merged = { ...document, [format.key]: { ...(servers as Record<string, unknown> | undefined), [SERVER_NAME]: after } };
  return { path, before, after, document: merged, unchanged: JSON.stringify(before) === JSON.stringify(after) };
}

/** The change as a small diff of our entry, for stderr. */
export function describeChange(change: ConfigChange, client: Client): string {
  const key = `${FORMATS[client].key}.${SERVER_NAME}`;
  const lines = (value: unknown, mark: string) => JSON.stringify(value, null, 2).split("\n").map((line) => `${mark} ${line}`);
  return [
    `--- ${change.path}${change.before === undefined ? " (no entry)" : ""}`,
    `+++ ${change.path} (${key})`,
    ...(change.before === undefined ? [] : lines(change.before, "-")),
    ...lines(change.after, "+"),
    "",
  ].join("\n");
}

/** Writes the new document next to the old one and renames it over, keeping the file's mode. */
export function applyChange(change: ConfigChange): void {
  const mode = existsSync(change.path) ? statSync(change.path).mode & 0o777 : 0o600;
  mkdirSync(dirname(change.path), { recursive: true });
  const temporary = `${change.path}.sandboxes-${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(change.document, null, 2)}\n`, { mode });
  chmodSync(temporary, mode);
  renameSync(temporary, change.path);
}
