/**
 * Our own client of the bridge HTTP API (`@cloudflare/sandbox/bridge` 0.12.x, served by the user's
 * Worker under /v1): fetch for the JSON and file routes, server-sent events for exec. There is no
 * official JS client; the OpenAPI document the bridge serves (GET /v1/openapi.json) is the contract.
 */
import { ProviderError, SandboxesError } from "../../base/errors";
import { isNetworkFailure, isTransientStatus } from "../retry";
import { HttpError, requestBody } from "../shared/http";

const REQUEST_TIMEOUT_MS = 60_000;

export interface RequestOptions {
  json?: unknown;
  /** Bytes, or a file of ours (a spooled part: Bun sends it as it reads it). */
  body?: Uint8Array | Blob;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface SseEvent {
  event: string;
  data: string;
}

export class BridgeApi {
  constructor(
    readonly baseUrl: string,
    private readonly apiKey: string | undefined,
  ) {}

  headers(): Record<string, string> {
    return this.apiKey ? { Authorization: `Bearer ${this.apiKey}` } : {};
  }

  url(path: string): string {
    return `${this.baseUrl}${path}`;
  }

  /** One HTTP call; a non-2xx answer becomes an HttpError (or, for a refused key, a ProviderError). */
  async request(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const headers = this.headers();
    const body = requestBody(options, headers);
    const timeout = options.timeoutMs === 0 ? undefined : AbortSignal.timeout(options.timeoutMs ?? REQUEST_TIMEOUT_MS);
    const signals = [timeout, options.signal].filter((s): s is AbortSignal => !!s);
    const response = await fetch(this.url(path), { method, headers, body, signal: signals.length ? AbortSignal.any(signals) : undefined });
    if (response.ok) return response;
    throw await httpError(response);
  }
}

export async function httpError(response: Response): Promise<Error> {
  const text = await response.text().catch(() => "");
  let message = text.trim().split("\n")[0] || response.statusText || "no details";
  let code: string | undefined;
  try {
    const parsed = JSON.parse(text) as { error?: unknown; code?: unknown };
    if (typeof parsed.error === "string") message = parsed.error;
    if (typeof parsed.code === "string") code = parsed.code;
  } catch {}
  const answer = HttpError.of(response, message, code, ["cf-ray", "x-request-id"]);
  if (response.status === 401) {
    return new ProviderError(
      "cloudflare",
      `the Worker refused the API key: ${message}`,
      401,
      answer.requestId,
      "set CLOUDFLARE_SANDBOX_API_KEY (or api_key under [providers.cloudflare]) to the Worker's SANDBOX_API_KEY secret",
      "auth_failed",
    );
  }
  return answer;
}

/** Server-sent events from a response body, one at a time, until the body ends. */
export async function* readEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true }).replace(/\r\n?/g, "\n");
    for (let end = buffer.indexOf("\n\n"); end !== -1; end = buffer.indexOf("\n\n")) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        const value = colon === -1 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event = value;
        else if (field === "data") data.push(value);
      }
      if (data.length) yield { event, data: data.join("\n") };
    }
  }
}

/** 408/429/5xx answers, timeouts and dropped or refused connections are worth another try. */
export function isTransient(error: unknown): boolean {
  if (error instanceof SandboxesError) return false;
  if (error instanceof HttpError) return isTransientStatus(error.status);
  return isNetworkFailure(error);
}

/** The request cannot have reached the Worker: sending it again cannot run anything twice. */
export function neverDelivered(error: unknown): boolean {
  const code = (error as { code?: string })?.code;
  return code === "ECONNREFUSED" || code === "ConnectionRefused";
}
