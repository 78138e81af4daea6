/** One word for sh: left bare when it is plainly safe, otherwise single-quoted. */
export function shellQuote(value: string): string {
  return /^[A-Za-z0-9_\/.,:=@%+-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
}

/**
 * Characters a terminal acts on rather than shows: C0 controls (escape sequences that retitle,
 * clear or write to the clipboard start with ESC; a carriage return writes over the line), DEL,
 * C1 controls (CSI as one byte), and the bidirectional overrides and isolates that show a name
 * in another order than it is.
 */
const TERMINAL_CONTROLS = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Record<string, string> = { "\n": "\\n", "\t": "\\t", "\r": "\\r" };

/**
 * `text` as a person's terminal should show it when a sandbox (or a provider) chose it: every
 * character a terminal would act on is written as an escape (\x1b, \n, \u202e), so a file name
 * cannot retitle, clear or rewrite the user's terminal, nor add a line of its own to ours.
 * `lines`: newlines (ours, between lines of one message) stay.
 */
export function printable(text: string, { lines = false }: { lines?: boolean } = {}): string {
  return text.replace(TERMINAL_CONTROLS, (c) => {
    if (lines && c === "\n") return c;
    const code = c.charCodeAt(0);
    return NAMED[c] ?? (code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`);
  });
}
