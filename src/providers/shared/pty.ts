/**
 * The output side of a remote terminal, written once for every provider: chunks that arrive
 * before the first onData listener are kept, not lost, and handed to it in order.
 */
export class PtyOutput {
  private readonly listeners: Array<(chunk: Uint8Array) => void> = [];
  private readonly pending: Uint8Array[] = [];

  /** One chunk of terminal output, from whichever transport the provider speaks. */
  readonly push = (chunk: Uint8Array): void => {
    if (this.listeners.length === 0) this.pending.push(chunk);
    for (const listener of this.listeners) listener(chunk);
  };

  /** PtySession.onData. */
  readonly onData = (listener: (chunk: Uint8Array) => void): void => {
    this.listeners.push(listener);
    for (const chunk of this.pending.splice(0)) listener(chunk);
  };
}

/** What only printf's output contains: the echoed command line shows `\036` as text. */
const MARKER = "\x1e\x1esandboxes\x1e\x1e";

/**
 * For providers whose terminal starts a shell of its own: the line typed into that shell to
 * start `program`. The leading space keeps it out of bash's history (HISTCONTROL=ignorespace);
 * the printf makes the marker that StartGate waits for.
 */
export function startLine(program: string): string {
  return ` printf '\\036\\036sandboxes\\036\\036'; ${program}\n`;
}

/**
 * Hides what such a shell prints before our program starts (its prompt, the echoed line):
 * everything up to the marker. Bytes are kept as latin1 text, so any bytes pass through unchanged.
 */
export class StartGate {
  private seen = "";
  private started = false;

  constructor(private readonly output: PtyOutput) {}

  readonly push = (chunk: Uint8Array): void => {
    if (this.started) return this.output.push(chunk);
    this.seen += Buffer.from(chunk).toString("latin1");
    const at = this.seen.indexOf(MARKER);
    if (at === -1) return;
    this.started = true;
    const rest = this.seen.slice(at + MARKER.length);
    this.seen = "";
    if (rest) this.output.push(Buffer.from(rest, "latin1"));
  };

  /** The terminal ended: if the marker never came, show what arrived rather than swallow it. */
  end(): void {
    if (!this.started && this.seen) this.output.push(Buffer.from(this.seen, "latin1"));
    this.seen = "";
  }
}
