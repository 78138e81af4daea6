import { parseRetryAfter } from "../retry";

/** A non-2xx answer from a REST API that one of our own clients speaks (Sprites, Vercel, Hopx, the Cloudflare bridge). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code?: string,
    readonly requestId?: string,
    /** What a Retry-After on the answer asked for (ms), read by withRetry. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "HttpError";
  }

  /** The error for `response`, whose body said `message` (and maybe a `code`); the request id is the first of `idHeaders` present. */
  static of(response: Response, message: string, code?: string, idHeaders: string[] = ["x-request-id"]): HttpError {
    const requestId = idHeaders.map((name) => response.headers.get(name)).find((value) => value !== null) ?? undefined;
    return new HttpError(response.status, message, code, requestId, parseRetryAfter(response.headers.get("retry-after")));
  }
}

/** A request's body, with its Content-Type added to `headers`: `json` as JSON, else the raw bytes of `body` (streamed when it is a stream). */
export function requestBody(options: { json?: unknown; body?: Uint8Array | Blob | ReadableStream<Uint8Array> }, headers: Record<string, string>): BodyInit | undefined {
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    return JSON.stringify(options.json);
  }
  if (!options.body) return undefined;
  headers["Content-Type"] = "application/octet-stream";
  return options.body as Uint8Array<ArrayBuffer> | Blob | ReadableStream<Uint8Array>;
}

/** A response's body as a stream (an empty one when it has none). */
export function streamOf(response: Response): AsyncIterable<Uint8Array> {
  return response.body ?? (async function* () {})();
}

/**
 * Hands a streamed body to `onChunk` in order, awaiting each returned promise before it reads on
 * (Provider.getArchive's backpressure). When onChunk rejects, the loop's end cancels the body:
 * the transfer stops rather than buffering what is left.
 */
export async function pumpBody(body: AsyncIterable<Uint8Array>, onChunk: (chunk: Uint8Array) => unknown): Promise<void> {
  for await (const chunk of body) await onChunk(chunk);
}
