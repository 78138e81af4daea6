/** node:buffer's isUtf8, loaded on first use: a top-level node: import costs every command start-up time. */
function isUtf8(bytes: Uint8Array): boolean {
  return (require("node:buffer") as typeof import("node:buffer")).isUtf8(bytes);
}

/**
 * Bounded capture of a program's output, for every path that keeps it rather than streaming it
 * (`run --json`, `exec --json`, the library's run()/exec() results, `test`, the MCP run).
 *
 * At the cap we stop keeping bytes but keep draining the stream, so the program is never
 * blocked on a full pipe and runs to its own end (or to --timeout): its exit code stays its own.
 * The counts say how much it wrote, so a reader knows what was cut.
 *
 * 16 MiB per stream by default: far more than a person or a model reads back from one command,
 * and a --json document of two full streams stays within a few dozen MiB of memory.
 */
export const DEFAULT_MAX_OUTPUT_BYTES = 16 * 1024 * 1024;
/** The largest cap: one stream's text must fit in one JavaScript string (the library's `stdout`). */
export const MAX_OUTPUT_LIMIT = 1024 ** 3;

export interface Captured {
  /** What was kept, as received: at most the cap, cut at a UTF-8 character boundary where the cut fell inside one. */
  chunks: readonly Uint8Array[];
  /** Every byte the program wrote to this stream, kept or not. */
  totalBytes: number;
  truncated: boolean;
}

export class StreamCapture {
  private chunks: Uint8Array[] = [];
  private kept = 0;
  private total = 0;
  private full = false;

  constructor(readonly limit: number = DEFAULT_MAX_OUTPUT_BYTES) {}

  push(chunk: Uint8Array): void {
    this.total += chunk.length;
    if (this.full) return;
    const room = this.limit - this.kept;
    if (chunk.length <= room) {
      this.chunks.push(chunk);
      this.kept += chunk.length;
      return;
    }
    this.full = true;
    const part = chunk.subarray(0, utf8Boundary(chunk, room));
    // A copy: the rest of a large chunk need not stay alive for the sake of its head.
    if (part.length) this.chunks.push(part.slice());
    this.kept += part.length;
  }

  /** The kept chunks, unjoined: a writer can encode them one by one without a second copy. */
  result(): Captured {
    return { chunks: this.chunks, totalBytes: this.total, truncated: this.total > this.kept };
  }

  /** The kept bytes joined (once; later calls reuse them), for a caller that needs one array. */
  bytes(): Uint8Array {
    if (this.chunks.length !== 1) this.chunks = [Buffer.concat(this.chunks, this.kept)];
    return this.chunks[0]!;
  }
}

/** The largest cut at or before `at` that does not split a UTF-8 sequence starting in `bytes`. */
function utf8Boundary(bytes: Uint8Array, at: number): number {
  let lead = at;
  // Back over at most three continuation bytes (10xxxxxx) to the sequence's first byte.
  while (lead > 0 && at - lead < 3 && (bytes[lead]! & 0xc0) === 0x80) lead--;
  return lead;
}

/** How long the UTF-8 sequence that starts with `lead` is (1 for a byte that starts none). */
function sequenceLength(lead: number): number {
  return lead >= 0xf0 && lead < 0xf8 ? 4 : lead >= 0xe0 && lead < 0xf0 ? 3 : lead >= 0xc0 && lead < 0xe0 ? 2 : 1;
}

/** Whether chunks, joined, are valid UTF-8, checked without joining them. */
export function isUtf8Chunks(chunks: readonly Uint8Array[]): boolean {
  let carry = new Uint8Array(0);
  for (const chunk of chunks) {
    let start = 0;
    if (carry.length) {
      // The sequence split by the previous chunk's end, completed from this one's start.
      const need = sequenceLength(carry[0]!) - carry.length;
      const joined = Buffer.concat([carry, chunk.subarray(0, need)]);
      if (chunk.length < need) {
        carry = joined;
        continue;
      }
      if (!isUtf8(joined)) return false;
      start = need;
    }
    // A sequence cut off at the chunk's end waits for the next chunk.
    let end = chunk.length;
    for (let at = chunk.length - 1; at >= Math.max(start, chunk.length - 3); at--) {
      if ((chunk[at]! & 0xc0) === 0x80) continue;
      if (sequenceLength(chunk[at]!) > chunk.length - at) end = at;
      break;
    }
    if (!isUtf8(chunk.subarray(start, end))) return false;
    carry = chunk.slice(end);
  }
  return carry.length === 0;
}

/** Parses a size such as 1048576, 512k, 16m or 1g (powers of 1024); undefined when malformed. */
export function parseSize(text: string): number | undefined {
  const match = /^(\d+)([kmg]?)(?:i?b)?$/i.exec(text.trim());
  if (!match) return undefined;
  const factor = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[match[2]!.toLowerCase() as "" | "k" | "m" | "g"];
  return Number(match[1]) * factor;
}
