import { printable } from "../base/quote";
import type { IO } from "./io";

export { brokenPipe, emitStdout, writeStderr, writeStdout } from "./stdio";

export function printJson(io: IO, document: unknown): Promise<void> {
  return io.stdout.emit(JSON.stringify(document, null, 2) + "\n");
}

/**
 * Plain, tab-separated rows when not a TTY; aligned columns on a TTY. Never truncates. A cell's
 * control characters are written as escapes (printable): a value that came from elsewhere (a
 * provider's name or label, a label given by anyone) must neither split a row or a column nor
 * reach the terminal as an escape sequence. --json has the values as they are.
 */
export function renderTable(headers: string[], rawRows: string[][], tty: boolean): string {
  const rows = rawRows.map((row) => row.map((cell) => printable(cell)));
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
