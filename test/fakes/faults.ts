/**
 * Faults the HTTP fakes (E2B, Sprites, Hopx, Vercel, Cloudflare) can inject, matched against the
 * request line "METHOD /path" ("*" matches any run of characters, in the middle as at the end):
 * an HTTP status with the service's error body, a dropped connection before or after the request did its work, or a slow
 * answer. Each fault fires `times` times (once by default). A status fault can carry a
 * `Retry-After` (e.g. a 429 with "1"), and every request line is logged with when it arrived, so
 * a test can see that the next try came after the wait the refusal asked for.
 */
export type Fault = { match: string; times?: number } & (
  | { kind: "status"; status: number; retryAfter?: string }
  | { kind: "drop" }
  | { kind: "drop-after" }
  | { kind: "slow"; delayMs: number }
);

export class Faults {
  private pending: Array<Fault & { left: number }> = [];
  /** Every request line seen, in order, with the time it arrived (ms since the epoch). */
  readonly seen: Array<{ line: string; at: number }> = [];

  add(fault: Fault): void {
    this.pending.push({ ...fault, left: fault.times ?? 1 });
  }

  clear(): void {
    this.pending = [];
  }

  /** The fault for this request line, used up once; undefined when none is left. */
  take(line: string): Fault | undefined {
    this.seen.push({ line, at: Date.now() });
    const fault = this.pending.find((f) => f.left > 0 && matchesLine(f.match, line));
    if (fault) fault.left--;
    return fault;
  }
}

/** Whether a request line matches a fault's pattern ("*" is any run of characters). */
export function matchesLine(pattern: string, line: string): boolean {
  if (!pattern.includes("*")) return line === pattern;
  const parts = pattern.split("*").map((part) => part.replace(/[.+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`^${parts.join(".*")}$`).test(line);
}

/**
 * The part of a fault that acts before the request is handled: the response to send instead
 * (the body is read first, as a server that rejects it would), or a wait. undefined: go on.
 */
export async function faultBefore(fault: Fault | undefined, req: Request, errorResponse: (status: number) => Response): Promise<Response | undefined> {
  if (fault?.kind === "status") {
    await req.arrayBuffer().catch(() => {});
    const response = errorResponse(fault.status);
    if (fault.retryAfter !== undefined) response.headers.set("retry-after", fault.retryAfter);
    return response;
  }
  if (fault?.kind === "drop") return dropped();
  if (fault?.kind === "slow") await Bun.sleep(fault.delayMs);
  return undefined;
}

/**
 * The part that acts after: a "drop-after" fault loses the answer of work that was done.
 * (undefined passes through: a WebSocket upgrade has no response.)
 */
export function faultAfter<T extends Response | undefined>(fault: Fault | undefined, response: T): T | Response {
  return fault?.kind === "drop-after" ? dropped() : response;
}

/** A response whose body fails at once: the client sees the connection reset (ECONNRESET). */
export function dropped(): Response {
  // An undefined reason makes Bun drop the socket without logging an error.
  return new Response(new ReadableStream({ start: (c) => c.error(undefined) }), { headers: { "content-type": "application/json" } });
}
