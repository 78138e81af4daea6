import type { ConsolaInstance } from "consola";
import { isTerminal, writeStdout } from "../stdio";

// consola pulls in node:tty and node:util: loaded on the first ui() call, so commands that only
// print data (providers, --json) do not pay for it at start-up.
const createConsola: typeof import("consola").createConsola = (options) => (require("consola") as typeof import("consola")).createConsola(options);

/** One colour policy: NO_COLOR, FORCE_COLOR, TERM=dumb and non-TTY stderr turn colour off. */
export function useColor(env = process.env, isTTY = isTerminal(2)): boolean {
  if (env.NO_COLOR) return false;
  if (env.FORCE_COLOR && env.FORCE_COLOR !== "0") return true;
  if (env.TERM === "dumb") return false;
  return isTTY;
}

let instance: ConsolaInstance | undefined;

/** True once consola (which writes through Node's process.stderr stream) has been created. */
export function humanOutputUsed(): boolean {
  return instance !== undefined;
}

/** Human messages: every level to stderr (consola's defaults send info to stdout). */
export function ui(): ConsolaInstance {
  instance ??= createConsola({
    // Explicit: consola lowers its level under NODE_ENV=test or CI, which would hide "kept sandbox <id>".
    level: process.env.SANDBOXES_QUIET ? 1 : 3,
    stdout: process.stderr,
    stderr: process.stderr,
    formatOptions: { date: false, colors: useColor(), compact: true },
  });
  return instance;
}

export { brokenPipe, writeStderr, writeStdout } from "../stdio";

export function printJson(document: unknown): void {
  writeStdout(JSON.stringify(document, null, 2) + "\n");
}

/** Plain, tab-separated rows when not a TTY; aligned columns on a TTY. Never truncates. */
export function renderTable(headers: string[], rows: string[][], tty = isTerminal(1)): string {
  if (!tty) return [headers, ...rows].map((r) => r.join("\t")).join("\n") + "\n";
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ").trimEnd();
  return [line(headers), ...rows.map(line)].join("\n") + "\n";
}

export function formatAge(createdAt: string | undefined, now = Date.now()): string {
  if (!createdAt) return "-";
  const seconds = Math.max(0, Math.round((now - Date.parse(createdAt)) / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

export function formatLabels(labels: Record<string, string>): string {
  const entries = Object.entries(labels);
  return entries.length ? entries.map(([k, v]) => `${k}=${v}`).join(",") : "-";
}
